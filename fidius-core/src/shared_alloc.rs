//! Opting in to one allocator on both sides of the boundary, so that a byte or string
//! result changes owner instead of being copied.
//!
//! A host and a plugin library each carry their own Rust standard library and may each
//! pick their own global allocator, so by default a buffer allocated on one side is
//! copied before the other side owns it. When both the host program and the plugin
//! library declare [`SharedAllocator`] as their global allocator, and both reach the
//! same C library's `malloc`, the host takes the buffer a plugin's
//! `fn(Vec<u8>) -> Vec<u8>` or `fn(String) -> String` method returns as it is: one
//! copy fewer, and no second buffer of the payload's size alive during the call.
//!
//! Nothing is assumed. Each side finds out at run time whether its global allocator
//! really is [`SharedAllocator`] (it allocates a block of a shape nothing else uses
//! and checks that [`SharedAllocator`] saw that very block), and reports the address
//! of the `free` it ends up calling. The host compares the two when it opens a
//! library ([`PluginHandle::shares_allocator`](crate::host::PluginHandle)); a plugin
//! built before this existed reports nothing and is served by copies, as before.
//!
//! ```
//! // In the host program, and in each plugin library (the cdylib's lib.rs):
//! #[global_allocator]
//! static ALLOCATOR: fidius_core::SharedAllocator = fidius_core::SharedAllocator;
//! # fn main() {}
//! ```
//!
//! [`SharedAllocator`] is the system allocator (`malloc` and `free` on Unix) with one
//! comparison per allocation added for the check above. Only Unix platforms share
//! buffers for now; elsewhere everything is copied, as without it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

/// The system allocator, marked so that a host and a plugin can tell that both use it
/// (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct SharedAllocator;

/// A block shape nothing else asks for: an odd size with a large alignment.
const PROBE_SIZE: usize = 4093;
const PROBE_ALIGN: usize = 64;

/// The last probe-shaped block this allocator handed out.
static PROBE_SEEN: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

// SAFETY: every method forwards to `System` with the same arguments; recording the
// address of a probe-shaped block changes nothing about the memory returned.
unsafe impl GlobalAlloc for SharedAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from the caller, under GlobalAlloc's contract.
        let ptr = unsafe { System.alloc(layout) };
        if layout.size() == PROBE_SIZE && layout.align() == PROBE_ALIGN {
            PROBE_SEEN.store(ptr, Ordering::Relaxed);
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller: `ptr` came from this allocator, that is
        // from `System`, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded from the caller: `ptr` came from `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// True when this binary's global allocator is [`SharedAllocator`]: a probe-shaped
/// block allocated through the global allocator was seen by it. Computed once.
pub fn global_is_shared() -> bool {
    static SHARED: OnceLock<bool> = OnceLock::new();
    *SHARED.get_or_init(|| {
        let layout = Layout::from_size_align(PROBE_SIZE, PROBE_ALIGN).expect("a valid layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            return false;
        }
        // Another thread allocating a block of this shape at the same moment can only
        // make this false (no sharing), never wrongly true: the pointers must match.
        let seen = PROBE_SEEN.swap(std::ptr::null_mut(), Ordering::Relaxed) == ptr;
        // SAFETY: allocated just above with this layout.
        unsafe { std::alloc::dealloc(ptr, layout) };
        seen
    })
}

/// What this binary tells the other side of the boundary about its allocator: the
/// address of the C library's `free` its global allocator ends up calling, or 0 when
/// its global allocator is not [`SharedAllocator`] (or on platforms where buffers are
/// not shared). Two sides may exchange buffers when both report the same non-zero
/// value.
pub fn allocator_identity() -> usize {
    #[cfg(unix)]
    {
        unsafe extern "C" {
            fn free(ptr: *mut std::ffi::c_void);
        }
        if global_is_shared() {
            // Only the address is taken; the function is not called.
            return free as *const () as usize;
        }
    }
    0
}

/// The `fidius_allocator` function every plugin library built with this version
/// exports (through `fidius_plugin_registry!`): [`allocator_identity`] of the library.
pub extern "C" fn plugin_allocator_identity() -> usize {
    allocator_identity()
}

/// The name of the symbol of [`plugin_allocator_identity`] in a plugin library.
pub const ALLOCATOR_SYMBOL: &str = "fidius_allocator";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_tells_whether_it_is_the_global_allocator() {
        // One test, so that no other test swaps the probe record in between.
        let layout = Layout::from_size_align(PROBE_SIZE, PROBE_ALIGN).unwrap();
        // SAFETY: a non-zero size; freed below with the same layout.
        let ptr = unsafe { SharedAllocator.alloc(layout) };
        assert!(!ptr.is_null());
        assert_eq!(
            PROBE_SEEN.swap(std::ptr::null_mut(), Ordering::Relaxed),
            ptr
        );
        // SAFETY: allocated above by the same allocator with this layout.
        unsafe { SharedAllocator.dealloc(ptr, layout) };
        // This test binary keeps the default global allocator.
        assert!(!global_is_shared());
        assert_eq!(allocator_identity(), 0);
    }
}
