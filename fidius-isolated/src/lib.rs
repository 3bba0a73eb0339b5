//! Isolated plugins: the same fidius plugin, run in a child process of its own.
//!
//! A plugin loaded in-process shares the host's fate: a segmentation fault, an
//! abort or a `panic = "abort"` build takes the host down, an endless loop holds a
//! host thread for good, and no call can be given a deadline (nothing can stop a
//! thread from outside). An [`IsolatedPlugin`] runs the same cdylib, built from the
//! same plugin crate, in a child process, and calls it through an [`IsolatedHandle`]
//! that the interface's typed client takes like any other handle:
//!
//! ```no_run
//! # use std::time::Duration;
//! # #[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
//! # pub trait Calculator: Send + Sync { fn add(&self, a: i64, b: i64) -> i64; }
//! use fidius_isolated::IsolatedPlugin;
//!
//! let plugin = IsolatedPlugin::builder::<dyn Calculator>("plugins/libcalc.so", "BasicCalculator")
//!     .deadline(Duration::from_millis(200))
//!     .build()?;
//! let calc = CalculatorClient::new(plugin.handle())?;
//! match calc.add(2, 3) {
//!     Ok(sum) => println!("{sum}"),
//!     // The host is unharmed; a new process is starting.
//!     Err(e) => eprintln!("{e}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What it gives
//!
//! * **Crash containment.** When the process dies (a signal, an abort, an exit), the
//!   calls in it return [`CallError::Crashed`](fidius::CallError::Crashed) with how
//!   it ended and the last lines of its standard error, and a new process starts:
//!   at once, or with a growing pause while processes keep ending before completing
//!   any call. Panics stay [`CallError::Panic`](fidius::CallError::Panic), as
//!   in-process, and the process survives them.
//! * **Deadlines.** A call that passes its deadline (set on the builder, or per
//!   handle with [`IsolatedHandle::with_deadline`]) returns
//!   [`CallError::Timeout`](fidius::CallError::Timeout); its process is killed, since
//!   that is the only way to stop the call, and replaced. Calls that were in the same
//!   process get [`CallError::ProcessKilled`](fidius::CallError::ProcessKilled).
//! * **Concurrency.** Each concurrent call has a connection and a thread of its own
//!   in the process, up to [`IsolatedBuilder::workers`]; none waits behind another's
//!   lock.
//! * **Streams** cross item by item, each item within the handle's deadline; dropping
//!   a stream early stops its producer in the process.
//! * **A memory limit** ([`IsolatedBuilder::memory_limit`]), reported as
//!   [`ProcessExit::MemoryLimit`](fidius::ProcessExit::MemoryLimit).
//! * **Exact unloading.** Letting the plugin go ends its process, and with it
//!   everything the plugin left behind (threads, thread-locals, mappings).
//! * **The same checks.** The library is opened and validated in the child, and the
//!   interface checked against the one the host expects: a refused plugin gives the
//!   same [`LoadError`](fidius::host::LoadError) as an in-process load.
//! * The process's standard output and error go to `tracing`, tagged with the
//!   plugin and the process id. It never outlives the host, even one killed with
//!   `SIGKILL`: it exits when its connection to the host closes.
//!
//! # What it costs, and when to pick it
//!
//! A call crosses two processes: a few microseconds instead of a few nanoseconds
//! (figures in the repository's `BENCHMARKS.md`). Pick isolation for plugins you do not fully trust
//! to be correct, for calls that need a deadline, and for plugins that cannot be
//! unloaded in-process; keep in-process calls for hot paths of code you trust.
//!
//! Isolation is **not a security sandbox**: the process runs as the same user with
//! the host's privileges, and can do whatever the host could. It protects the host
//! from a plugin's *bugs*, not from a hostile plugin.
//!
//! # How the plugin process starts
//!
//! The plugin process is the host's own executable, started again with the
//! environment variable [`RUNNER_ENV`] set. With the default feature `auto-runner`,
//! fidius-isolated registers a constructor that runs before `main` (through the
//! `ctor` crate): in a plugin process it serves the plugin and exits without ever
//! reaching `main`; in any other process it returns at once. So nothing needs to be
//! added to a program for isolation to work, and the same holds for test binaries
//! (`cargo test`) and examples. Without the feature, call
//! [`run_if_plugin_process`] first thing in `main`. To use another executable as the
//! plugin process (a program that cannot be started again, such as an interpreter
//! embedding the host), name it with [`IsolatedBuilder::runner`]; it must link
//! fidius-isolated the same way. A runner that does not take over (it ran `main`
//! instead, or exited) is reported as [`StartError::Runner`], which says what to do.
//!
//! # Known limitations
//!
//! * Linux only for now: elsewhere the crate is empty. macOS lacks the socket flags
//!   it uses (`MSG_NOSIGNAL`, `SOCK_CLOEXEC`, `MSG_CMSG_CLOEXEC`) and needs its own
//!   equivalents, a separate piece of work.
//! * A stream holds one of the process's workers until it ends or is dropped.
//! * Every process loads the file the plugin was started from, through a descriptor
//!   the host keeps open: a build renamed over the path later is not picked up by a
//!   restart (follow new builds with fidius-hotreload). A file rewritten in place is
//!   another matter: a restart that finds another plugin there is refused, and the
//!   plugin reports [`CallError::Unavailable`](fidius::CallError::Unavailable).
//! * Each process has three watching threads on the host side (its end, its
//!   standard output and error).
//! * Code that runs before `main` in the host program (other constructors) runs in
//!   the plugin process too.
#![cfg(target_os = "linux")]
#![warn(missing_docs)]

mod error;
mod handle;
mod plugin;
mod process;
mod protocol;
mod runner;

pub use error::StartError;
pub use handle::IsolatedHandle;
pub use plugin::{
    IsolatedBuilder, IsolatedEvent, IsolatedPlugin, IsolatedStatus, Isolation, ProcessEnd,
    DEFAULT_START_TIMEOUT, DEFAULT_WORKERS, MAX_RESTART_BACKOFF,
};
pub use protocol::RUNNER_ENV;
pub use runner::run_if_plugin_process;
