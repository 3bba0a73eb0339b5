//! [`PluginCaller`]: anything able to call a plugin method. Generated clients are
//! generic over it.

use crate::descriptor::{CallOutput, ErasedFn};
use crate::error::CallError;
use crate::interface::{InterfaceInfo, InterfaceMismatch};
use crate::stream::reader::{PluginStream, RawStream};
use serde::Serialize;
use std::cell::RefCell;

/// Something that can call the methods of one plugin: a loaded
/// [`PluginHandle`](crate::host::PluginHandle) (feature `host`), a hot-reloading
/// handle, or anything else that implements the trait.
///
/// The typed `{Trait}Client` that `#[plugin_interface]` generates works over any
/// `PluginCaller`, so interface crates need no feature flags.
pub trait PluginCaller {
    /// Calls method `index` (vtable order) with encoded `input` and passes the encoded
    /// result to `decode`, while the plugin's code is guaranteed to stay loaded.
    fn call_with<R>(
        &self,
        index: usize,
        input: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Result<R, CallError>;

    /// True when method `index` exists and is implemented (required methods always
    /// are; optional ones when their capability bit is set).
    fn has_method(&self, index: usize) -> bool;

    /// Checks that the plugin behind this caller implements `expected`.
    fn check_interface(&self, expected: &InterfaceInfo) -> Result<(), InterfaceMismatch>;

    /// Calls the scalar fast path of method `index` while the plugin's code stays
    /// loaded: `call` gets the type-erased entry point and the error output and returns
    /// the entry's status. `None` when there is no fast path; callers then use
    /// [`call_with`](Self::call_with). The default has none.
    ///
    /// Generated clients use this for methods whose arguments and result are all plain
    /// scalars; `call` transmutes the entry to the signature the interface declares.
    #[inline]
    fn call_direct(
        &self,
        index: usize,
        call: impl FnOnce(ErasedFn, *mut CallOutput) -> i32,
    ) -> Option<Result<(), CallError>> {
        let _ = (index, call);
        None
    }

    /// Calls the unframed entry of a `fn(Vec<u8>) -> Vec<u8>` method, a
    /// `fn(String) -> String` method (UTF-8 bytes) or a `#[wire(raw)]` method: `input`
    /// is the argument itself and the result is returned as it is, neither framed.
    /// `None` when there is no such entry; callers then use
    /// [`call_with`](Self::call_with). The default has none.
    #[inline]
    fn call_bytes(&self, index: usize, input: &[u8]) -> Option<Result<Vec<u8>, CallError>> {
        let _ = (index, input);
        None
    }

    /// Calls streaming method `index` with encoded `input`. The stream keeps the
    /// plugin's code loaded until it is dropped. The default cannot stream.
    fn call_stream(&self, index: usize, input: &[u8]) -> Result<RawStream, CallError> {
        let _ = input;
        Err(CallError::NotImplemented {
            plugin: "(this caller)".into(),
            method: format!("streaming method {index}"),
        })
    }
}

/// Implements [`PluginCaller`] for smart pointers and references by forwarding.
macro_rules! forward_plugin_caller {
    ($($ty:ty),*) => {$(
        impl<C: PluginCaller + ?Sized> PluginCaller for $ty {
            #[inline]
            fn call_with<R>(
                &self,
                index: usize,
                input: &[u8],
                decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
            ) -> Result<R, CallError> {
                (**self).call_with(index, input, decode)
            }
            fn has_method(&self, index: usize) -> bool {
                (**self).has_method(index)
            }
            fn check_interface(&self, expected: &InterfaceInfo) -> Result<(), InterfaceMismatch> {
                (**self).check_interface(expected)
            }
            #[inline]
            fn call_direct(
                &self,
                index: usize,
                call: impl FnOnce(ErasedFn, *mut CallOutput) -> i32,
            ) -> Option<Result<(), CallError>> {
                (**self).call_direct(index, call)
            }
            #[inline]
            fn call_bytes(&self, index: usize, input: &[u8]) -> Option<Result<Vec<u8>, CallError>> {
                (**self).call_bytes(index, input)
            }
            fn call_stream(&self, index: usize, input: &[u8]) -> Result<RawStream, CallError> {
                (**self).call_stream(index, input)
            }
        }
    )*};
}

forward_plugin_caller!(&C, std::sync::Arc<C>, Box<C>);

thread_local! {
    // Reused buffer for encoding arguments on the host side.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Encodes `args` as the wire tuple and calls method `index`. Used by generated clients.
#[inline]
pub fn call_encoded<C: PluginCaller + ?Sized, A: Serialize + ?Sized, R>(
    caller: &C,
    index: usize,
    args: &A,
    decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
) -> Result<R, CallError> {
    with_scratch(
        |buf| crate::wire::encode_call_args(args, buf),
        |input| caller.call_with(index, input, decode),
    )
}

/// Runs `encode` into this thread's reused input buffer, then `call` with what it
/// wrote.
#[inline(always)]
pub(crate) fn with_scratch<R>(
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), CallError>,
    call: impl FnOnce(&[u8]) -> Result<R, CallError>,
) -> Result<R, CallError> {
    // Reached without a closure, as the arena in `CallTable::call` is, so the call
    // inlines.
    let cell = SCRATCH
        .try_with(|cell| cell as *const RefCell<Vec<u8>>)
        .ok();
    // SAFETY: `try_with` succeeded, so the thread-local is alive, and it cannot be
    // destroyed while this thread runs this call; the pointer is used only within it.
    match cell.map(|cell| unsafe { &*cell }.try_borrow_mut()) {
        Some(Ok(mut buf)) => {
            buf.clear();
            encode(&mut buf)?;
            let result = call(&buf);
            if buf.capacity() > 1 << 20 {
                *buf = Vec::new();
            }
            result
        }
        // Re-entered (a decoder calling a plugin), or the thread is exiting.
        _ => {
            let mut buf = Vec::new();
            encode(&mut buf)?;
            call(&buf)
        }
    }
}

/// Checks a caller against the interface a generated client speaks.
pub fn bind_client<C: PluginCaller + ?Sized>(
    caller: &C,
    expected: &InterfaceInfo,
) -> Result<(), CallError> {
    caller
        .check_interface(expected)
        .map_err(|mismatch| CallError::InterfaceMismatch {
            expected: expected.describe(),
            mismatch,
        })
}

/// For optional methods: a plugin built against an older interface version has no slot
/// for a method added later, which is the same as not implementing it.
pub fn absent_as_not_implemented(error: CallError, method: &str) -> CallError {
    match error {
        CallError::InvalidMethodIndex { plugin, .. } => CallError::NotImplemented {
            plugin,
            method: method.to_string(),
        },
        other => other,
    }
}

/// Encodes `args` and calls streaming method `index`, decoding items with `decode`.
/// Used by generated clients.
pub fn call_stream<C: PluginCaller + ?Sized, A: Serialize + ?Sized, T>(
    caller: &C,
    index: usize,
    args: &A,
    decode: fn(&[u8]) -> Result<T, CallError>,
) -> Result<PluginStream<T>, CallError> {
    let mut input = Vec::new();
    crate::wire::encode_call_args(args, &mut input)?;
    Ok(PluginStream::new(
        caller.call_stream(index, &input)?,
        decode,
    ))
}
