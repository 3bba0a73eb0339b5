//! [`StartError`]: why an isolated plugin could not be started.

use fidius::host::LoadError;
use std::path::PathBuf;

/// Why an isolated plugin could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The plugin process started, but the library or the plugin in it was refused:
    /// the same error an in-process load gives.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The plugin process could not be started, or did not behave as one.
    #[error(
        "the plugin process {} failed: {reason}. The plugin process is this program started \
         again (or the runner set with `IsolatedBuilder::runner`): it must link fidius-isolated \
         with its default feature `auto-runner`, or call \
         `fidius_isolated::run_if_plugin_process()` first thing in `main`",
        runner.display()
    )]
    Runner {
        /// The executable started as the plugin process.
        runner: PathBuf,
        /// What went wrong, with the end of its standard error when there is one.
        reason: String,
    },
    /// A system call the host needs failed.
    #[error("cannot set up a plugin process: {0}")]
    Io(#[from] std::io::Error),
}
