//! Calling a method slot of a validated descriptor: buffers, status codes, errors.
//!
//! This is the one place that crosses into plugin code for a call. Every way of
//! calling a plugin (a loaded handle, a hot-reloading handle) goes through
//! [`invoke`].

use crate::descriptor::{
    BufferStrategyKind, CallOutput, ErasedFn, MethodFn, PluginDescriptor, METHOD_OPTIONAL,
};
use crate::error::{CallError, PluginError};
use crate::status::*;
use std::cell::RefCell;

/// Initial size of each thread's arena.
const ARENA_INITIAL: usize = 4 * 1024;
/// Byte results expected to be larger than this are not written into a freshly
/// allocated result buffer (see [`invoke_bytes`]). 128 KiB is glibc's default mmap
/// threshold: above it, a fresh allocation per call measured 40x slower (page faults).
pub const LEND_RESULT_MAX: usize = 128 * 1024;
/// An arena grown past this is released after the call instead of kept.
const ARENA_MAX_RETAINED: usize = 64 * 1024 * 1024;

thread_local! {
    // Size of the last byte result too large for the buffer lent, to size the next one.
    static BYTES_HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    // The buffer the host lends to Arena-strategy plugins. Host-side only: a plugin
    // never touches it, so it cannot pin a plugin library.
    static ARENA: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(ARENA_INITIAL));
}

/// Frees a plugin-allocated buffer when dropped, even if decoding panics.
struct PluginBuffer {
    out: CallOutput,
    free: crate::descriptor::FreeBufferFn,
}

impl PluginBuffer {
    fn bytes(&self) -> &[u8] {
        if self.out.ptr.is_null() || self.out.len == 0 {
            return &[];
        }
        // SAFETY: the plugin reported `len` initialised bytes at `ptr`, and the buffer
        // stays alive until `free` runs in `drop`.
        unsafe { std::slice::from_raw_parts(self.out.ptr, self.out.len) }
    }
}

impl Drop for PluginBuffer {
    fn drop(&mut self) {
        if !self.out.ptr.is_null() {
            // SAFETY: the buffer came from this plugin and is released exactly once,
            // with the values it reported.
            unsafe { (self.free)(self.out.ptr, self.out.len, self.out.cap) }
        }
    }
}

/// Calls method `index` of `desc` with the encoded `input` and hands the encoded result
/// to `decode`.
///
/// Checks the index and, for optional methods, the capability bit before crossing the
/// boundary. Plugin errors, panics and serialization failures become [`CallError`]s.
///
/// # Safety
/// `desc` must be a descriptor validated by
/// [`PluginInfo::from_descriptor`](crate::info::PluginInfo::from_descriptor), whose
/// library stays loaded for the duration of the call.
pub unsafe fn invoke<R>(
    desc: &PluginDescriptor,
    index: usize,
    input: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
) -> Result<R, CallError> {
    // SAFETY: forwarded from this function's contract.
    match unsafe { checked_slot(desc, index, false) } {
        Ok(Some(slot)) => unsafe { call_slot(desc, slot, input, decode) },
        Ok(None) => unreachable!("every method has a wire slot"),
        Err(e) => Err(e),
    }
}

/// Calls `slot`, a [`MethodFn`] of `desc` outside its method table (a state
/// function), with `input`, and returns its output bytes.
///
/// # Safety
/// As for [`invoke`]; `slot` must come from `desc`.
pub unsafe fn invoke_fn(
    desc: &PluginDescriptor,
    slot: MethodFn,
    input: &[u8],
) -> Result<Vec<u8>, CallError> {
    // SAFETY: forwarded from this function's contract.
    unsafe { call_slot(desc, slot, input, |bytes| Ok(bytes.to_vec())) }
}

/// Calls a byte method with bytes in and bytes out, unframed: the direct bytes entry
/// of a `fn(Vec<u8>) -> Vec<u8>` method, or the slot of a `#[wire(raw)]` method.
/// `None` when the method has neither.
///
/// With the Arena strategy and an expected result below [`LEND_RESULT_MAX`], the buffer
/// lent to the plugin is the result `Vec` itself, sized from the input and from this
/// thread's previous results: a result that fits is returned without another copy. One
/// that does not fit is handed over by the plugin once (the method never runs twice),
/// copied, and remembered to size the next buffer. Larger results go through the
/// thread's persistent arena and one more copy, which measured far cheaper than a fresh
/// large allocation per call (see BENCHMARKS.md).
///
/// # Safety
/// As for [`invoke`]; method `index` must be a byte method, whose direct entry is a
/// [`MethodFn`] with raw semantics.
pub unsafe fn invoke_bytes(
    desc: &PluginDescriptor,
    index: usize,
    input: &[u8],
) -> Option<Result<Vec<u8>, CallError>> {
    // A `#[wire(raw)]` method's own slot already takes and returns bytes as they are;
    // other byte methods have a direct entry for it.
    let raw = index < desc.method_count as usize
        // SAFETY: index < method_count entries of a validated method table.
        && unsafe { &*desc.methods.add(index) }.flags & crate::descriptor::METHOD_RAW != 0;
    // SAFETY: forwarded from this function's contract.
    let slot = match unsafe { checked_slot(desc, index, !raw) } {
        Ok(Some(slot)) => slot,
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
    };
    let expected = input.len().max(BYTES_HINT.get()).max(64);
    if desc.buffer_strategy != BufferStrategyKind::Arena as u32 || expected > LEND_RESULT_MAX {
        // SAFETY: the caller vouches that this entry is a MethodFn of `desc`.
        return Some(unsafe { call_slot(desc, slot, input, |b| Ok(b.to_vec())) });
    }
    let free = desc
        .free_buffer
        .expect("validated descriptor has free_buffer");
    let mut result = Vec::with_capacity(expected);
    // SAFETY: forwarded from this function's contract; slot and free are `desc`'s.
    Some(
        match unsafe { call_lending(slot, free, &mut result, input) } {
            Err(e) => Err(e),
            Ok(Lent::Filled) => Ok(result),
            Ok(Lent::Handed(status, buffer)) => {
                if status == STATUS_BUFFER_TOO_SMALL {
                    BYTES_HINT.set(buffer.out.len);
                }
                interpret(status, buffer.bytes(), |b| Ok(b.to_vec()))
            }
        },
    )
}

/// The slot of method `index` (its direct entry when `direct`), after the index and
/// capability checks.
///
/// # Safety
/// As for [`invoke`].
#[inline]
unsafe fn checked_slot(
    desc: &PluginDescriptor,
    index: usize,
    direct: bool,
) -> Result<Option<MethodFn>, CallError> {
    // SAFETY: forwarded from this function's contract.
    unsafe { check_method(desc, index) }?;
    if direct {
        // SAFETY: the caller vouches that this method's direct entry has the MethodFn
        // signature.
        return Ok(unsafe { direct_entry(desc, index) }
            .map(|f| unsafe { std::mem::transmute::<ErasedFn, MethodFn>(f) }));
    }
    // SAFETY: check_method confirmed index < method_count; the vtable has that many
    // non-null slots.
    Ok(Some(unsafe { *desc.vtable.add(index) }))
}

/// The checks every call makes before it crosses: the index is in range and, for an
/// optional method, the plugin implements it.
///
/// # Safety
/// As for [`invoke`].
#[inline]
unsafe fn check_method(desc: &PluginDescriptor, index: usize) -> Result<(), CallError> {
    let count = desc.method_count as usize;
    if index >= count {
        return Err(CallError::InvalidMethodIndex {
            plugin: plugin_name(desc),
            index,
            count,
        });
    }
    // SAFETY: index < method_count, and a validated descriptor has that many entries.
    let method = unsafe { &*desc.methods.add(index) };
    if method.flags & METHOD_OPTIONAL != 0
        && (method.optional_bit >= 64 || desc.capabilities >> method.optional_bit & 1 == 0)
    {
        return Err(CallError::NotImplemented {
            plugin: plugin_name(desc),
            // SAFETY: validated descriptors have valid method names.
            method: unsafe { crate::descriptor::read_c_str(method.name) }
                .unwrap_or("?")
                .to_string(),
        });
    }
    Ok(())
}

/// Method `index`'s entry in the direct table, if it has one.
///
/// # Safety
/// As for [`invoke`], with `index < method_count`.
#[inline]
unsafe fn direct_entry(desc: &PluginDescriptor, index: usize) -> Option<ErasedFn> {
    if desc.direct.is_null() {
        return None;
    }
    // SAFETY: the direct table has method_count entries and index is below that.
    unsafe { *desc.direct.add(index) }
}

/// Runs one slot with the descriptor's buffer strategy.
///
/// # Safety
/// As for [`invoke`]; `slot` belongs to `desc`.
#[inline]
unsafe fn call_slot<R>(
    desc: &PluginDescriptor,
    slot: MethodFn,
    input: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
) -> Result<R, CallError> {
    // Validation guarantees free_buffer is present.
    let free = desc
        .free_buffer
        .expect("validated descriptor has free_buffer");

    if desc.buffer_strategy == BufferStrategyKind::Arena as u32 {
        return ARENA.with(|cell| match cell.try_borrow_mut() {
            Ok(mut arena) => {
                // SAFETY: forwarded from this function's contract.
                unsafe { call_arena(slot, free, &mut arena, input, decode) }
            }
            // Re-entered on this thread (a decoder calling a plugin): lend a fresh buffer.
            // SAFETY: forwarded from this function's contract.
            Err(_) => unsafe {
                call_arena(
                    slot,
                    free,
                    &mut Vec::with_capacity(ARENA_INITIAL),
                    input,
                    decode,
                )
            },
        });
    }

    let mut out = CallOutput::empty();
    // SAFETY: the slot follows the MethodFn contract: it reads `input_len` bytes at
    // `input` and fills `out` with a buffer of its own.
    let status = unsafe { slot(input.as_ptr(), input.len(), &mut out) };
    let buffer = PluginBuffer { out, free };
    interpret(status, buffer.bytes(), decode)
}

/// # Safety
/// As for [`invoke`]; `slot` and `free` come from the same validated descriptor.
unsafe fn call_arena<R>(
    slot: crate::descriptor::MethodFn,
    free: crate::descriptor::FreeBufferFn,
    arena: &mut Vec<u8>,
    input: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
) -> Result<R, CallError> {
    // SAFETY: forwarded from this function's contract.
    let (status, buffer) = match unsafe { call_lending(slot, free, arena, input) }? {
        Lent::Filled => return decode(arena),
        Lent::Handed(status, buffer) => (status, buffer),
    };
    let needed = buffer.out.len;
    let result = interpret(status, buffer.bytes(), decode);
    if status == STATUS_BUFFER_TOO_SMALL {
        // Grow for next time; the method is never re-run for this call.
        if needed <= ARENA_MAX_RETAINED {
            arena.reserve(needed.next_power_of_two());
        }
    }
    if arena.capacity() > ARENA_MAX_RETAINED {
        *arena = Vec::with_capacity(ARENA_INITIAL);
    }
    result
}

/// What a slot did with the buffer lent to it.
enum Lent {
    /// `STATUS_OK`: the result is the buffer's contents now.
    Filled,
    /// Any other status, with the buffer the plugin handed over instead (a result too
    /// large for the loan, or an error).
    Handed(i32, PluginBuffer),
}

/// Clears `buf` and lends its capacity to `slot` for the result.
///
/// # Safety
/// As for [`invoke`]; `slot` and `free` come from the same validated descriptor and
/// the slot writes its result unframed or encoded, per its contract.
unsafe fn call_lending(
    slot: MethodFn,
    free: crate::descriptor::FreeBufferFn,
    buf: &mut Vec<u8>,
    input: &[u8],
) -> Result<Lent, CallError> {
    buf.clear();
    let mut out = CallOutput {
        ptr: buf.as_mut_ptr(),
        len: 0,
        cap: buf.capacity(),
    };
    // SAFETY: the slot may write up to `cap` bytes into our spare capacity, or replace
    // `out` with a buffer of its own and a non-OK status.
    let status = unsafe { slot(input.as_ptr(), input.len(), &mut out) };
    if status != STATUS_OK {
        return Ok(Lent::Handed(status, PluginBuffer { out, free }));
    }
    if out.len > buf.capacity() {
        return Err(CallError::PluginSerialization(format!(
            "plugin reported {} bytes written into a {}-byte buffer",
            out.len,
            buf.capacity()
        )));
    }
    // SAFETY: the plugin initialised the first `out.len` bytes of our capacity.
    unsafe { buf.set_len(out.len) };
    Ok(Lent::Filled)
}

/// Calls the scalar fast path of method `index`, if `desc` has one.
///
/// `call` receives the type-erased entry point and the error output, calls the entry
/// with the scalar arguments and a pointer for the result, and returns its status.
/// Returns `None` when the method has no direct entry (the caller then uses the wire
/// path, which also reports an out-of-range index).
///
/// # Safety
/// As for [`invoke`]; in addition `call` must transmute the entry to the exact
/// signature the interface declares for method `index`.
#[inline]
pub unsafe fn invoke_direct(
    desc: &PluginDescriptor,
    index: usize,
    call: impl FnOnce(ErasedFn, *mut CallOutput) -> i32,
) -> Option<Result<(), CallError>> {
    // SAFETY: forwarded from this function's contract.
    if let Err(e) = unsafe { check_method(desc, index) } {
        return Some(Err(e));
    }
    // SAFETY: check_method confirmed the index.
    let entry = unsafe { direct_entry(desc, index) }?;
    let mut err = CallOutput::empty();
    let status = call(entry, &mut err);
    if status == STATUS_OK {
        return Some(Ok(()));
    }
    let free = desc
        .free_buffer
        .expect("validated descriptor has free_buffer");
    let buffer = PluginBuffer { out: err, free };
    Some(interpret(status, buffer.bytes(), |_| Ok(())))
}

/// Calls streaming method `index` and returns the producer's state.
///
/// # Safety
/// As for [`invoke`]; method `index` must be a streaming method.
pub unsafe fn invoke_stream(
    desc: &PluginDescriptor,
    index: usize,
    input: &[u8],
) -> Result<*mut std::ffi::c_void, CallError> {
    // SAFETY: forwarded from this function's contract.
    unsafe { check_method(desc, index) }?;
    // SAFETY: check_method confirmed the index.
    let slot = unsafe { *desc.vtable.add(index) };
    // Streams never use the arena: the slot returns the producer in `out.ptr`.
    let mut out = CallOutput::empty();
    // SAFETY: the MethodFn contract; a streaming slot returns its producer in `out`.
    let status = unsafe { slot(input.as_ptr(), input.len(), &mut out) };
    if status == STATUS_OK {
        if out.ptr.is_null() {
            return Err(CallError::PluginSerialization(
                "streaming method returned no producer".into(),
            ));
        }
        return Ok(out.ptr as *mut std::ffi::c_void);
    }
    let free = desc
        .free_buffer
        .expect("validated descriptor has free_buffer");
    let buffer = PluginBuffer { out, free };
    Err(interpret_error(status, buffer.bytes()))
}

/// The error for a non-OK status and its payload.
pub(crate) fn interpret_error(status: i32, bytes: &[u8]) -> CallError {
    match interpret::<()>(status, bytes, |_| Err(CallError::UnknownStatus(status))) {
        Err(e) => e,
        Ok(()) => CallError::UnknownStatus(status),
    }
}

fn interpret<R>(
    status: i32,
    bytes: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
) -> Result<R, CallError> {
    match status {
        STATUS_OK | STATUS_BUFFER_TOO_SMALL => decode(bytes),
        STATUS_PLUGIN_ERROR => match crate::wire::decode::<PluginError>(bytes) {
            Ok(e) => Err(CallError::Plugin(e)),
            Err(e) => Err(CallError::Serialization(format!(
                "undecodable PluginError from plugin: {e}"
            ))),
        },
        STATUS_PANIC => Err(CallError::Panic(
            String::from_utf8_lossy(bytes).into_owned(),
        )),
        STATUS_SERIALIZATION_ERROR => Err(CallError::PluginSerialization(
            String::from_utf8_lossy(bytes).into_owned(),
        )),
        other => Err(CallError::UnknownStatus(other)),
    }
}

fn plugin_name(desc: &PluginDescriptor) -> String {
    // SAFETY: validated descriptors have a valid plugin name.
    unsafe { crate::descriptor::read_c_str(desc.plugin_name) }
        .unwrap_or("?")
        .to_string()
}

/// Decodes a typed result; a failure becomes [`CallError::Serialization`].
pub fn decode_result<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CallError> {
    crate::wire::decode(bytes)
        .map_err(|e| CallError::Serialization(format!("decoding result: {e}")))
}
