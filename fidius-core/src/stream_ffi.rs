//! The FFI shape of a stream crossing the boundary: an opaque producer state with a
//! `next` function (one item per pull, written like a method result) and a `free`
//! function the host calls exactly once.

use crate::descriptor::CallOutput;
use std::ffi::c_void;

/// Produces the next item into `out`. Returns a status; [`STREAM_END`] when done.
pub type StreamNextFn = unsafe extern "C" fn(state: *mut c_void, out: *mut CallOutput) -> i32;
/// Releases the producer. Called exactly once.
pub type StreamFreeFn = unsafe extern "C" fn(state: *mut c_void);

/// Status returned by [`StreamNextFn`] when the stream has no more items.
pub const STREAM_END: i32 = 16;

/// A producer handed from plugin to host.
#[repr(C)]
#[derive(Debug)]
pub struct FfiStream {
    /// Opaque producer state, owned by the plugin.
    pub state: *mut c_void,
    /// Pulls one item.
    pub next: StreamNextFn,
    /// Frees `state`.
    pub free: StreamFreeFn,
}

#[cfg(test)]
mod tests {
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn ffi_stream_layout() {
        use super::FfiStream;
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<FfiStream>(), 24);
        assert_eq!(offset_of!(FfiStream, state), 0);
        assert_eq!(offset_of!(FfiStream, next), 8);
        assert_eq!(offset_of!(FfiStream, free), 16);
    }
}
