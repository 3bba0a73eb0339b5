//! The plugin side of a stream: the producer a streaming slot hands the host, and the
//! `stream_next` and `stream_free` every descriptor carries.

use crate::descriptor::CallOutput;
use crate::shim::{report_panic, Reply};
use crate::status::{STATUS_OK, STREAM_END};
use serde::Serialize;
use std::panic::{catch_unwind, AssertUnwindSafe};

impl Reply<'_> {
    /// Hands the host a stream: the producer's state in `out.ptr`, no buffer. The
    /// host drives it through the descriptor's `stream_next` and `stream_free`.
    pub fn stream<T: Serialize + 'static>(&mut self, stream: crate::Stream<T>) -> i32 {
        self.producer(Producer::new(stream, |reply, item: &T| reply.value(item)))
    }

    /// As [`stream`](Self::stream), for `Vec<u8>` items, sent as MessagePack `bin`.
    pub fn bytes_stream(&mut self, stream: crate::Stream<Vec<u8>>) -> i32 {
        self.producer(Producer::new(stream, |reply, item: &Vec<u8>| {
            reply.value(&crate::wire::AsBin(item))
        }))
    }

    fn producer(&mut self, producer: Producer) -> i32 {
        *self.out = CallOutput {
            ptr: Box::into_raw(Box::new(producer)) as *mut u8,
            len: 0,
            cap: 0,
        };
        STATUS_OK
    }
}

/// A stream's producer, as the host sees it through `stream_next`.
struct Producer {
    next: Box<dyn FnMut(&mut Reply<'_>) -> i32 + Send>,
}

impl Producer {
    fn new<T: 'static>(mut stream: crate::Stream<T>, write: fn(&mut Reply<'_>, &T) -> i32) -> Self {
        Self {
            next: Box::new(move |reply| match stream.next() {
                None => STREAM_END,
                Some(Ok(item)) => write(reply, &item),
                Some(Err(e)) => reply.plugin_error(&e),
            }),
        }
    }
}

/// The `stream_next` every descriptor carries.
///
/// # Safety
/// `state` must come from a streaming slot of this library and not have been freed;
/// `out` must point at a valid [`CallOutput`].
pub unsafe extern "C" fn stream_next(state: *mut std::ffi::c_void, out: *mut CallOutput) -> i32 {
    // SAFETY: the host passes the state a streaming slot returned, used by one thread
    // at a time, and a valid output.
    let (producer, out) = unsafe { (&mut *(state as *mut Producer), &mut *out) };
    // A host lends a buffer for the item when it can (hosts built before loans pass
    // none), as for a call.
    let arena = !out.ptr.is_null();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut reply = Reply {
            out: &mut *out,
            arena,
        };
        (producer.next)(&mut reply)
    }));
    match result {
        Ok(status) => status,
        Err(payload) => report_panic(out, payload),
    }
}

/// The `stream_free` every descriptor carries: drops the producer (and with it the
/// iterator, cancelling whatever it would still have produced).
///
/// # Safety
/// `state` must come from a streaming slot of this library and be freed only once.
pub unsafe extern "C" fn stream_free(state: *mut std::ffi::c_void) {
    // SAFETY: the state is a Box<Producer> leaked by `Reply::producer`, freed once.
    let producer = unsafe { Box::from_raw(state as *mut Producer) };
    // A panicking destructor must not unwind into the host.
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(producer))) {
        std::mem::forget(payload);
    }
}
