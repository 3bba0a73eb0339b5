//! One loaded version of a hot-reloading plugin, and what happens when the last
//! reference to it goes.

use crate::drain::Retirement;
use crate::events::VersionInfo;
use crate::probation::Trial;
use crate::shadow::ShadowCopy;
use fidius::descriptor::{CallOutput, ErasedFn};
use fidius::{
    CallError, InterfaceInfo, InterfaceMismatch, PluginCaller, PluginHandle, PluginInfo, RawStream,
};
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::SystemTime;

/// One version: its handle (which keeps its library loaded) and where it came from.
///
/// Calls hold it through a hazard slot (see `hazard.rs`); anything that outlives a
/// call holds an `Arc<Version>`. When the last one goes, the library is closed and
/// the plugin is told, so the unload can be checked and the copy let go (`drain.rs`).
pub(crate) struct Version {
    pub generation: u64,
    pub handle: ManuallyDrop<Backend>,
    /// The copy the library was loaded from; handed on once the library is closed.
    pub copy: ManuallyDrop<ShadowCopy>,
    pub loaded_at: SystemTime,
    pub retirement: Arc<Retirement>,
    /// Its calls while it is on probation (`probation.rs`).
    pub trial: Trial,
}

impl Version {
    pub fn info(&self) -> VersionInfo {
        VersionInfo {
            generation: self.generation,
            content_hash: self.copy.content_hash,
            interface_version: self.handle.info().interface_version,
            shadow: self.copy.map_name.clone(),
        }
    }
}

impl Drop for Version {
    fn drop(&mut self) {
        // SAFETY: taken exactly once, here, and never used after.
        let handle = unsafe { ManuallyDrop::take(&mut self.handle) };
        // SAFETY: as above.
        let copy = unsafe { ManuallyDrop::take(&mut self.copy) };
        let (generation, retirement) = (self.generation, self.retirement.clone());
        #[cfg(all(feature = "isolated", target_os = "linux"))]
        if let Backend::Isolated { .. } = &handle {
            // An isolated version's process is ended, and waited for, before the
            // version is reported retired: on a thread of its own, since this may be
            // a pool worker (which must not wait) or a caller's thread.
            let retire = move || retire_isolated(handle, copy, generation, &retirement);
            if let Err(e) = std::thread::Builder::new()
                .name("fidius-retire".into())
                .spawn(retire)
            {
                tracing::error!(error = %e, generation, "no thread to end an isolated version's process on; it is killed when its plugin is dropped");
            }
            return;
        }
        // The library is closed here, then its unload checked and reported.
        drop(handle);
        retirement.retired(generation, copy);
    }
}

/// Ends an isolated version's process (waiting until it has exited), then reports
/// the version retired.
#[cfg(all(feature = "isolated", target_os = "linux"))]
fn retire_isolated(
    handle: Backend,
    mut copy: ShadowCopy,
    generation: u64,
    retirement: &Retirement,
) {
    if let Backend::Isolated { plugin, .. } = &handle {
        if !plugin.stop() {
            copy.process_left_running();
        }
    }
    drop(handle);
    retirement.retired(generation, copy);
}

/// What a version's calls go to: its library, loaded in this process, or its own
/// plugin process (`HotPluginBuilder::isolated`).
pub(crate) enum Backend {
    Local(PluginHandle),
    #[cfg(all(feature = "isolated", target_os = "linux"))]
    Isolated {
        plugin: fidius_isolated::IsolatedPlugin,
        handle: fidius_isolated::IsolatedHandle,
    },
}

impl Backend {
    /// Whether state can be saved from and restored into this version (in its
    /// process, for an isolated one: the state crosses as bytes).
    pub fn carries_state(&self) -> bool {
        match self {
            Backend::Local(handle) => handle.info().carries_state,
            #[cfg(all(feature = "isolated", target_os = "linux"))]
            Backend::Isolated { handle, .. } => handle.info().carries_state,
        }
    }

    pub fn save_state(&self) -> Option<Result<fidius::SavedState, CallError>> {
        match self {
            Backend::Local(handle) => handle.save_state(),
            #[cfg(all(feature = "isolated", target_os = "linux"))]
            Backend::Isolated { handle, .. } => handle.save_state(),
        }
    }

    pub fn restore_state(&self, saved: &fidius::SavedState) -> Option<Result<(), CallError>> {
        match self {
            Backend::Local(handle) => handle.restore_state(saved),
            #[cfg(all(feature = "isolated", target_os = "linux"))]
            Backend::Isolated { handle, .. } => handle.restore_state(saved),
        }
    }

    /// For an isolated version: its process.
    pub fn process(&self) -> Option<crate::VersionProcess> {
        match self {
            Backend::Local(_) => None,
            #[cfg(all(feature = "isolated", target_os = "linux"))]
            Backend::Isolated { plugin, .. } => {
                let status = plugin.status();
                Some(crate::VersionProcess {
                    pid: status.pid,
                    restarts: status.restarts,
                })
            }
        }
    }

    pub fn info(&self) -> &PluginInfo {
        match self {
            Backend::Local(handle) => handle.info(),
            #[cfg(all(feature = "isolated", target_os = "linux"))]
            Backend::Isolated { handle, .. } => handle.info(),
        }
    }
}

/// Forwards to the local handle or the isolated one; the fast paths exist only
/// in-process.
impl PluginCaller for Backend {
    #[inline]
    fn call_with<R>(
        &self,
        index: usize,
        input: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        match self {
            Backend::Local(handle) => handle.call_with(index, input, decode),
            #[cfg(all(feature = "isolated", target_os = "linux"))]
            Backend::Isolated { handle, .. } => handle.call_with(index, input, decode),
        }
    }

    #[inline]
    fn call_direct(
        &self,
        index: usize,
        call: impl FnOnce(ErasedFn, *mut CallOutput) -> i32,
    ) -> Option<Result<(), CallError>> {
        match self {
            Backend::Local(handle) => handle.call_direct(index, call),
            #[cfg(all(feature = "isolated", target_os = "linux"))]
            Backend::Isolated { .. } => None,
        }
    }

    #[inline]
    fn call_bytes(&self, index: usize, input: &[u8]) -> Option<Result<Vec<u8>, CallError>> {
        match self {
            Backend::Local(handle) => handle.call_bytes(index, input),
            #[cfg(all(feature = "isolated", target_os = "linux"))]
            Backend::Isolated { .. } => None,
        }
    }

    fn call_stream(&self, index: usize, input: &[u8]) -> Result<RawStream, CallError> {
        match self {
            Backend::Local(handle) => handle.call_stream(index, input),
            #[cfg(all(feature = "isolated", target_os = "linux"))]
            Backend::Isolated { handle, .. } => handle.call_stream(index, input),
        }
    }

    fn has_method(&self, index: usize) -> bool {
        match self {
            Backend::Local(handle) => handle.has_method(index),
            #[cfg(all(feature = "isolated", target_os = "linux"))]
            Backend::Isolated { handle, .. } => handle.has_method(index),
        }
    }

    fn check_interface(&self, expected: &InterfaceInfo) -> Result<(), InterfaceMismatch> {
        self.info().check_compatible(expected)
    }
}
