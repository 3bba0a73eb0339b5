//! The host side of a stream: pull one item at a time, free the producer exactly once,
//! keep the plugin's library loaded while the stream lives.

use crate::descriptor::FreeBufferFn;
use crate::descriptor::{StreamFreeFn, StreamNextFn};
use crate::error::CallError;
use crate::invoke::{lend, Lent, PluginBuffer};
use crate::status::{STATUS_BUFFER_TOO_SMALL, STATUS_OK, STREAM_END};
use std::any::Any;
use std::ffi::c_void;
use std::marker::PhantomData;

/// The first buffer lent for a stream's items.
const ITEM_LOAN_INITIAL: usize = 1024;
/// A stream's loan grows to fit items up to this size; larger ones stay handed over.
const ITEM_LOAN_MAX: usize = 1 << 20;

/// An untyped stream from a plugin: each item is its encoded bytes.
///
/// It holds whatever keeps the plugin's code loaded (its handle, or for a
/// hot-reloading plugin the version it started on), so a stream started on one
/// version finishes on that version. Dropping it early cancels the producer.
pub struct RawStream {
    source: Source,
    // Dropped in order, after the producer is freed.
    keep: Vec<Box<dyn Any + Send + Sync>>,
}

/// Where a stream's items come from.
enum Source {
    /// A producer in a library loaded in this process; null once freed.
    Library {
        state: *mut c_void,
        next: StreamNextFn,
        free: StreamFreeFn,
        free_buffer: FreeBufferFn,
        /// Lent to the producer for each item, as a call's result buffer is.
        loan: Vec<u8>,
    },
    /// Anything else (a plugin in another process); `None` once finished.
    Other(Option<Box<dyn StreamSource>>),
}

/// The items of a stream that does not come from a library loaded in this process:
/// a plugin in another process, say. See [`RawStream::from_source`].
pub trait StreamSource: Send {
    /// The next item's encoded bytes, an error (after which the stream is over), or
    /// `None` at its end.
    fn next_item(&mut self) -> Option<Result<&[u8], CallError>>;

    /// Stops the producer early; called at most once, and never after `next_item`
    /// returned `None` or an error.
    fn cancel(&mut self);
}

// SAFETY: a producer is `Send` on the plugin side and is only driven through `&mut self`.
unsafe impl Send for RawStream {}

impl std::fmt::Debug for RawStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawStream")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl RawStream {
    /// # Safety
    /// `state` must be a producer returned by a streaming slot of the library whose
    /// `stream_next`, `stream_free` and `free_buffer` are given, and `keep` must keep
    /// that library loaded.
    pub unsafe fn new(
        state: *mut c_void,
        next: StreamNextFn,
        free: StreamFreeFn,
        free_buffer: FreeBufferFn,
        keep: Box<dyn Any + Send + Sync>,
    ) -> Self {
        Self {
            source: Source::Library {
                state,
                next,
                free,
                free_buffer,
                loan: Vec::with_capacity(ITEM_LOAN_INITIAL),
            },
            keep: vec![keep],
        }
    }

    /// A stream of the items `source` yields.
    pub fn from_source(source: Box<dyn StreamSource>) -> Self {
        Self {
            source: Source::Other(Some(source)),
            keep: Vec::new(),
        }
    }

    /// Adds something to keep alive until the stream is gone; it is dropped after
    /// everything added before it.
    pub fn keep_alive(&mut self, keep: Box<dyn Any + Send + Sync>) {
        self.keep.push(keep);
    }

    /// True once the stream ended, failed, or was finished.
    pub fn is_finished(&self) -> bool {
        match &self.source {
            Source::Library { state, .. } => state.is_null(),
            Source::Other(source) => source.is_none(),
        }
    }

    /// Pulls the next item and passes its encoded bytes to `decode`.
    pub fn next_with<R>(
        &mut self,
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Option<Result<R, CallError>> {
        let (state, next, free_buffer, loan) = match &mut self.source {
            Source::Library {
                state,
                next,
                free_buffer,
                loan,
                ..
            } => (*state, *next, *free_buffer, loan),
            Source::Other(source) => {
                let item = source.as_mut()?.next_item();
                let result = match item {
                    Some(Ok(bytes)) => return Some(decode(bytes)),
                    Some(Err(e)) => Some(Err(e)),
                    None => None,
                };
                // Ended or failed: over, with nothing to cancel.
                *source = None;
                return result;
            }
        };
        if state.is_null() {
            return None;
        }
        // Lend `loan` for the item. A producer built before loans, or an item too large
        // for it, hands over a buffer of its own instead, told apart by its pointer.
        // SAFETY: the state is live (not yet freed) and this is the only user; the
        // producer may write up to `cap` bytes into the loan or hand over a buffer
        // `free_buffer` releases.
        let lent = unsafe { lend(loan, free_buffer, |out| next(state, out)) };
        // A buffer the producer handed over is released when it goes out of scope, even
        // if `decode` panics.
        let (status, handed) = match lent {
            Ok(Lent::Filled) => (STATUS_OK, None),
            Ok(Lent::InLoan(status)) => (status, None),
            Ok(Lent::Handed(status, buffer)) => (status, Some(buffer)),
            Err(e) => {
                self.finish();
                return Some(Err(e));
            }
        };
        let bytes: &[u8] = handed.as_ref().map_or(&loan[..], PluginBuffer::bytes);
        let result = match status {
            STREAM_END => None,
            STATUS_OK | STATUS_BUFFER_TOO_SMALL => Some(decode(bytes)),
            other => Some(Err(crate::invoke::interpret_error(other, bytes))),
        };
        if let Some(handed) = handed {
            let len = handed.out.len;
            drop(handed);
            if status == STATUS_BUFFER_TOO_SMALL && len <= ITEM_LOAN_MAX {
                loan.reserve(len.next_power_of_two());
            }
        }
        if status != STATUS_OK && status != STATUS_BUFFER_TOO_SMALL {
            // Ended or failed: the stream is over either way.
            self.finish();
        }
        result
    }

    /// Frees the producer now (cancelling it); later pulls return `None`.
    pub fn finish(&mut self) {
        match &mut self.source {
            Source::Library { state, free, .. } => {
                if !state.is_null() {
                    // SAFETY: freed exactly once: the pointer is cleared right after.
                    unsafe { free(*state) };
                    *state = std::ptr::null_mut();
                }
            }
            Source::Other(source) => {
                if let Some(mut source) = source.take() {
                    source.cancel();
                }
            }
        }
    }
}

impl Iterator for RawStream {
    type Item = Result<Vec<u8>, CallError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_with(|b| Ok(b.to_vec()))
    }
}

impl Drop for RawStream {
    fn drop(&mut self) {
        self.finish();
        // Then `keep` drops, in order, closing the library if it was the last user.
        while !self.keep.is_empty() {
            drop(self.keep.remove(0));
        }
    }
}

/// A typed stream from a plugin: an iterator of `Result<T, CallError>`. Returned by
/// generated clients for methods that return `Stream<T>`.
pub struct PluginStream<T> {
    raw: RawStream,
    decode: fn(&[u8]) -> Result<T, CallError>,
    _item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for PluginStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.raw.fmt(f)
    }
}

impl<T> PluginStream<T> {
    /// A typed view of `raw`, decoding items with `decode`.
    pub fn new(raw: RawStream, decode: fn(&[u8]) -> Result<T, CallError>) -> Self {
        Self {
            raw,
            decode,
            _item: PhantomData,
        }
    }

    /// The untyped stream underneath.
    pub fn into_raw(self) -> RawStream {
        self.raw
    }
}

impl<T> Iterator for PluginStream<T> {
    type Item = Result<T, CallError>;
    fn next(&mut self) -> Option<Self::Item> {
        let decode = self.decode;
        self.raw.next_with(decode)
    }
}
