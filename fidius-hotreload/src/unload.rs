//! Finding out whether a closed library was really unmapped.
//!
//! `dlclose` does not promise to unmap: glibc keeps a library that registered
//! thread-local destructors on a still-running thread, macOS keeps images with
//! thread-locals, musl never unloads. So after the close, the process's own memory map
//! is the only honest source.

use std::path::Path;

/// What happened to a version's library after it was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnloadState {
    /// The library is no longer mapped: its code and data are gone.
    Unmapped,
    /// The library is still mapped after the close: something pinned it (typically a
    /// thread-local with a destructor on a thread that is still running, or a thread
    /// the plugin spawned). Its memory stays until the process exits.
    Pinned,
    /// This platform offers no way to tell.
    Unknown,
}

/// Whether `path` is mapped into this process.
#[cfg(target_os = "linux")]
pub fn mapped(path: &Path) -> Option<bool> {
    // Bytes, not text: any mapped path that is not UTF-8 must not make this fail.
    let maps = std::fs::read("/proc/self/maps").ok()?;
    let needle = path.as_os_str().as_encoded_bytes();
    Some(maps.split(|&b| b == b'\n').any(|line| {
        // The path is the last field; a file deleted while mapped gets " (deleted)".
        let line = line.strip_suffix(b" (deleted)").unwrap_or(line);
        line.ends_with(needle)
    }))
}

/// Whether `path` is mapped into this process.
#[cfg(not(target_os = "linux"))]
pub fn mapped(_path: &Path) -> Option<bool> {
    None
}

/// The state of a library that has been closed.
pub(crate) fn state_after_close(path: &Path) -> UnloadState {
    match mapped(path) {
        Some(false) => UnloadState::Unmapped,
        Some(true) => UnloadState::Pinned,
        None => UnloadState::Unknown,
    }
}
