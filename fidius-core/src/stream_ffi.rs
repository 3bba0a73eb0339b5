//! Streams across the boundary: one item per pull, freed exactly once.
//!
//! A [`METHOD_STREAMING`](crate::descriptor::METHOD_STREAMING) method's slot runs the
//! method, which builds a [`Stream`](crate::Stream), and hands the host an opaque
//! producer: [`STATUS_OK`](crate::status::STATUS_OK) with `out.ptr` set to the
//! producer's state and no buffer. The host then calls the descriptor's `stream_next`
//! with that state for each item, and `stream_free` once when it is done with the
//! stream (after the end, after an error, or when it drops the stream early, which
//! cancels the producer).
//!
//! `stream_next` writes each item like a method result. `out.ptr` is either null (no
//! loan: the item comes in a plugin-allocated buffer) or points at `out.cap` writable
//! bytes the host lends; hosts built with this version lend, older ones pass null. An
//! item that does not fit the loan is handed over in a plugin-allocated buffer (so an
//! item of any size arrives whole). `stream_next` returns:
//!
//! | status | meaning |
//! |---|---|
//! | `STATUS_OK` | one item, encoded, in `out` (in the loan, or handed over) |
//! | `STATUS_BUFFER_TOO_SMALL` | one item, handed over in a buffer of the plugin's because it did not fit the loan |
//! | [`STREAM_END`] | no more items |
//! | `STATUS_PLUGIN_ERROR` | the producer yielded `Err(PluginError)`; the stream is over |
//! | `STATUS_PANIC` | the producer panicked; the stream is over |
//! | `STATUS_SERIALIZATION_ERROR` | an item could not be encoded; the stream is over |

use crate::descriptor::CallOutput;
use std::ffi::c_void;

/// Produces the next item into `out`. Returns a status; [`STREAM_END`] when done.
pub type StreamNextFn = unsafe extern "C" fn(state: *mut c_void, out: *mut CallOutput) -> i32;
/// Releases the producer. Called exactly once.
pub type StreamFreeFn = unsafe extern "C" fn(state: *mut c_void);

/// Status returned by [`StreamNextFn`] when the stream has no more items.
pub const STREAM_END: i32 = 16;
