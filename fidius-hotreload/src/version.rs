//! One loaded version of a hot-reloading plugin, and what happens when the last
//! reference to it goes.

use crate::drain::Retirement;
use crate::events::VersionInfo;
use crate::shadow::ShadowCopy;
use fidius::PluginHandle;
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
    pub handle: ManuallyDrop<PluginHandle>,
    /// The copy the library was loaded from; handed on once the library is closed.
    pub copy: ManuallyDrop<ShadowCopy>,
    pub loaded_at: SystemTime,
    pub retirement: Arc<Retirement>,
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
        // SAFETY: the handle is dropped exactly once, here, and never used after.
        unsafe { ManuallyDrop::drop(&mut self.handle) };
        // SAFETY: taken exactly once, here, after the library was closed above, and
        // never used after.
        let copy = unsafe { ManuallyDrop::take(&mut self.copy) };
        self.retirement.retired(self.generation, copy);
    }
}
