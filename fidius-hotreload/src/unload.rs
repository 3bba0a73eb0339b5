//! Finding out whether a closed library was really unmapped.
//!
//! `dlclose` does not promise to unmap: glibc keeps a library that registered
//! thread-local destructors on a still-running thread, macOS keeps images with
//! thread-locals, musl never unloads. So after the close, the process's own memory map
//! is the only honest source.

use std::path::Path;

/// What happened to a version's library after it was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnloadState {
    /// The library is no longer mapped: its code and data are gone.
    Unmapped,
    /// The library is still mapped after the close: something pinned it (typically a
    /// thread-local with a destructor on a thread that is still running, or a thread
    /// the plugin spawned). Its memory stays until the process exits.
    Pinned,
    /// This platform offers no way to tell.
    Unknown,
    /// The version ran isolated, in a process of its own, which has exited: none of
    /// its code was ever mapped into this process, and none of it is left anywhere.
    Exited,
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

/// The state of a library that has been closed. `probe`, an address that was inside
/// the library, is asked about first: an address the system says is not mapped
/// settles it at once. Only otherwise (pinned, or the range already reused) is the
/// whole memory map read, which costs more the more libraries are loaded.
pub(crate) fn state_after_close(path: &Path, probe: Option<usize>) -> UnloadState {
    if probe.is_some_and(unmapped_address) {
        return UnloadState::Unmapped;
    }
    match mapped(path) {
        Some(false) => UnloadState::Unmapped,
        Some(true) => UnloadState::Pinned,
        None => UnloadState::Unknown,
    }
}

/// Whether the page holding `address` is certainly not mapped in this process.
#[cfg(target_os = "linux")]
fn unmapped_address(address: usize) -> bool {
    let page = rustix::param::page_size();
    let start = address & !(page - 1);
    // SAFETY: `msync` with `MS_ASYNC` reads and writes no memory of ours; the kernel
    // only looks the range up in the process's mappings (and, for a shared file
    // mapping, would schedule its writeback). An address with no mapping fails with
    // ENOMEM, which is all this asks.
    let result = unsafe { rustix::mm::msync(start as *mut _, page, rustix::mm::MsyncFlags::ASYNC) };
    matches!(result, Err(e) if e == rustix::io::Errno::NOMEM)
}

#[cfg(not(target_os = "linux"))]
fn unmapped_address(_address: usize) -> bool {
    false
}
