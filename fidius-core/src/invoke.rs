//! Calling a method slot of a validated descriptor: buffers, status codes, errors.
//!
//! This is the one place that crosses into plugin code for a call. Every way of
//! calling a plugin (a loaded handle, a hot-reloading handle, the runner of an
//! isolated plugin) goes through a [`CallTable`].

use crate::descriptor::{
    CallOutput, ErasedFn, FreeBufferFn, MethodFn, PluginDescriptor, METHOD_DIRECT,
    METHOD_DIRECT_BYTES, METHOD_DIRECT_TEXT, METHOD_OPTIONAL, METHOD_RAW, METHOD_STREAMING,
};
use crate::error::{CallError, PluginError};
use crate::status::*;
use std::cell::RefCell;

/// Initial size of each thread's arena.
const ARENA_INITIAL: usize = 4 * 1024;
/// Byte results expected to be larger than this are not written into a freshly
/// allocated result buffer (see [`CallTable::call_bytes`]): 128 KiB, glibc's default
/// mmap threshold, above which a fresh block per call is mapped and faulted in again
/// (BENCHMARKS.md has the figures).
pub const LEND_RESULT_MAX: usize = 128 * 1024;
/// An arena grown past this is released after the call instead of kept.
const ARENA_MAX_RETAINED: usize = 64 * 1024 * 1024;

thread_local! {
    // Size of this thread's last byte result, to size the next loan.
    static BYTES_HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    // The buffer the host lends for results. Host-side only: a plugin never owns it,
    // so it cannot pin a plugin library.
    static ARENA: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(ARENA_INITIAL));
}

/// Frees a plugin-allocated buffer when dropped, even if decoding panics. A null
/// `out.ptr` holds nothing.
pub(crate) struct PluginBuffer {
    pub(crate) out: CallOutput,
    pub(crate) free: FreeBufferFn,
}

impl PluginBuffer {
    pub(crate) fn bytes(&self) -> &[u8] {
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

/// What a host reads from a validated descriptor once, at load time, so that a call
/// reads nothing else: each method's slot (absent for an optional method the plugin
/// leaves out), its unframed bytes entry and its scalar entry, and the plugin's
/// `free_buffer`.
///
/// Every way of calling a loaded plugin goes through one of these.
pub struct CallTable {
    methods: Box<[Entry]>,
    free: FreeBufferFn,
    /// Unframed results are taken over as they are (see [`crate::shared_alloc`]).
    adopt: bool,
    /// Only read to describe a failed call.
    desc: *const PluginDescriptor,
}

// SAFETY: the table holds function pointers and a pointer to immutable 'static data of
// a library that the owner of the table keeps loaded.
unsafe impl Send for CallTable {}
// SAFETY: as above; nothing in it is ever written after `new`.
unsafe impl Sync for CallTable {}

/// One method, as [`CallTable`] holds it.
#[derive(Clone, Copy)]
struct Entry {
    /// The wire slot; `None` when the method is optional and this plugin lacks it.
    slot: Option<MethodFn>,
    /// The unframed bytes entry: a `#[wire(raw)]` method's own slot, or the direct
    /// entry of a `fn(Vec<u8>) -> Vec<u8>` method.
    bytes: Option<MethodFn>,
    /// The scalar direct entry.
    direct: Option<ErasedFn>,
    /// The method returns a stream: its slot hands over a producer, not a result.
    streaming: bool,
}

impl CallTable {
    /// Reads the table of `desc`.
    ///
    /// # Safety
    /// `desc` must be a descriptor validated by
    /// [`PluginInfo::from_descriptor`](crate::info::PluginInfo::from_descriptor), and
    /// every call through the table must happen while its library stays loaded. With
    /// `adopt`, buffers the plugin hands over must come from the allocator this
    /// process's `Vec`s use: the library and this host both reported the same
    /// [`SharedAllocator`](crate::SharedAllocator).
    pub unsafe fn new(desc: &PluginDescriptor, adopt: bool) -> Self {
        let count = desc.method_count as usize;
        let methods = (0..count)
            .map(|index| {
                // SAFETY: a validated descriptor has method_count method descriptors
                // and vtable slots.
                let (method, slot) =
                    unsafe { (&*desc.methods.add(index), *desc.vtable.add(index)) };
                let present = method.flags & METHOD_OPTIONAL == 0
                    || (method.optional_bit < 64
                        && desc.capabilities >> method.optional_bit & 1 == 1);
                let direct = if desc.direct.is_null() {
                    None
                } else {
                    // SAFETY: the direct table, when present, has method_count entries.
                    unsafe { *desc.direct.add(index) }
                };
                let bytes = if method.flags & METHOD_RAW != 0 {
                    Some(slot)
                } else if method.flags & (METHOD_DIRECT_BYTES | METHOD_DIRECT_TEXT) != 0 {
                    // SAFETY: the entry of a METHOD_DIRECT_BYTES or METHOD_DIRECT_TEXT
                    // method is a MethodFn with raw semantics; only its type was erased.
                    direct.map(|f| unsafe { std::mem::transmute::<ErasedFn, MethodFn>(f) })
                } else {
                    None
                };
                let scalar = method.flags & METHOD_DIRECT != 0;
                Entry {
                    slot: present.then_some(slot),
                    bytes: bytes.filter(|_| present),
                    direct: direct.filter(|_| present && scalar),
                    streaming: method.flags & METHOD_STREAMING != 0,
                }
            })
            .collect();
        Self {
            methods,
            adopt,
            // Validation guarantees free_buffer is present.
            free: desc
                .free_buffer
                .expect("validated descriptor has free_buffer"),
            desc,
        }
    }

    /// Calls method `index` with the encoded `input` and hands the encoded result to
    /// `decode`.
    ///
    /// The host lends this thread's arena for the result, whatever the interface's
    /// buffer strategy: a plugin that writes into the loan costs no allocation, and one
    /// that hands over a buffer of its own (a plugin built before loans, or a result
    /// too large for the loan) is recognised by the pointer it reports. Plugin errors,
    /// panics and serialization failures become [`CallError`]s.
    ///
    /// # Safety
    /// The library of this table must stay loaded for the duration of the call.
    #[inline]
    pub unsafe fn call<R>(
        &self,
        index: usize,
        input: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let Some(slot) = self
            .methods
            .get(index)
            .and_then(|m| m.slot.filter(|_| !m.streaming))
        else {
            return Err(self.missing(index));
        };
        // SAFETY: forwarded from this function's contract; the slot is this table's.
        unsafe { self.call_slot(slot, input, decode) }
    }

    /// Calls `slot`, a [`MethodFn`] of this plugin outside its method table (a state
    /// function), with `input`, and returns its output bytes.
    ///
    /// # Safety
    /// As for [`call`](Self::call); `slot` must come from this table's descriptor.
    pub unsafe fn call_fn(&self, slot: MethodFn, input: &[u8]) -> Result<Vec<u8>, CallError> {
        // SAFETY: forwarded from this function's contract.
        unsafe { self.call_slot(slot, input, |bytes| Ok(bytes.to_vec())) }
    }

    /// Calls a byte method with bytes in and bytes out, unframed: the direct entry of
    /// a `fn(Vec<u8>) -> Vec<u8>` or `fn(String) -> String` method, or the slot of a
    /// `#[wire(raw)]` method. `None` when the method has none of these.
    ///
    /// A result expected below [`LEND_RESULT_MAX`] is written straight into the `Vec`
    /// the caller receives: the host lends it, sized from the input and from this
    /// thread's previous results. One that does not fit is handed over by the plugin
    /// once (the method never runs twice), copied, and remembered to size the next
    /// loan. Larger results are written into this thread's arena and copied out: a
    /// fresh large buffer on each side of every call would have the allocator hand
    /// such blocks back to the system and fault them in again (see BENCHMARKS.md).
    ///
    /// # Safety
    /// As for [`call`](Self::call).
    #[inline]
    pub unsafe fn call_bytes(
        &self,
        index: usize,
        input: &[u8],
    ) -> Option<Result<Vec<u8>, CallError>> {
        let method = self.methods.get(index)?;
        let Some(slot) = method.bytes else {
            // A missing optional method is reported by the wire path.
            return None;
        };
        if self.adopt {
            // SAFETY: forwarded from this function's contract; `adopt` was set only for
            // a plugin whose buffers come from our allocator.
            return Some(unsafe { self.call_adopting(slot, input) });
        }
        let expected = input.len().max(BYTES_HINT.get()).max(64);
        if expected > LEND_RESULT_MAX {
            // SAFETY: forwarded from this function's contract; the slot is this table's.
            return Some(unsafe { self.call_slot(slot, input, |b| Ok(b.to_vec())) });
        }
        let mut result = Vec::with_capacity(expected);
        // SAFETY: forwarded from this function's contract; slot and free are this
        // table's.
        Some(
            match unsafe { call_lending(slot, self.free, &mut result, input) } {
                Err(e) => Err(e),
                Ok(Lent::Filled) => {
                    // Follow the latest result: one large result sizes the next loan,
                    // not every later one.
                    BYTES_HINT.set(result.len());
                    Ok(result)
                }
                Ok(Lent::InLoan(status)) => interpret(status, &result, |b| Ok(b.to_vec())),
                Ok(Lent::Handed(status, buffer)) => {
                    if status == STATUS_BUFFER_TOO_SMALL {
                        BYTES_HINT.set(buffer.out.len);
                    }
                    interpret(status, buffer.bytes(), |b| Ok(b.to_vec()))
                }
            },
        )
    }

    /// Calls an unframed entry without a loan and takes the buffer the plugin hands
    /// over as the result itself: no copy.
    ///
    /// # Safety
    /// As for [`call`](Self::call); `slot` is an unframed entry of this table, and the
    /// table was built with `adopt`.
    #[inline]
    unsafe fn call_adopting(&self, slot: MethodFn, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let mut out = CallOutput::empty();
        // SAFETY: the MethodFn contract; given no loan, the slot hands over a buffer of
        // its own in `out`.
        let status = unsafe { slot(input.as_ptr(), input.len(), &mut out) };
        if status != STATUS_OK {
            return Err(self.failed(status, out));
        }
        if out.len > out.cap || (out.ptr.is_null() && out.cap != 0) {
            // Not a buffer anyone could free: left alone rather than guessed at.
            return Err(CallError::PluginSerialization(format!(
                "plugin handed over a buffer of {} bytes with a capacity of {}",
                out.len, out.cap
            )));
        }
        if out.cap == 0 {
            // An empty `Vec` owns no allocation.
            return Ok(Vec::new());
        }
        // SAFETY: the plugin handed over a `Vec<u8>` of its own (pointer, length and
        // capacity as it reported them), allocated by its global allocator, which is
        // the same `SharedAllocator` over the same C library as ours (the condition of
        // `adopt`); from now on only this `Vec` owns it.
        Ok(unsafe { Vec::from_raw_parts(out.ptr, out.len, out.cap) })
    }

    /// Calls the scalar fast path of method `index`, if it has one.
    ///
    /// `call` receives the type-erased entry point and the error output, calls the
    /// entry with the scalar arguments and a pointer for the result, and returns its
    /// status. Returns `None` when the method has no direct entry (the caller then uses
    /// the wire path, which also reports a missing method).
    ///
    /// # Safety
    /// As for [`call`](Self::call); in addition `call` must transmute the entry to the
    /// exact signature the interface declares for method `index`.
    #[inline]
    pub unsafe fn call_direct(
        &self,
        index: usize,
        call: impl FnOnce(ErasedFn, *mut CallOutput) -> i32,
    ) -> Option<Result<(), CallError>> {
        let entry = self.methods.get(index)?.direct?;
        let mut err = CallOutput::empty();
        let status = call(entry, &mut err);
        if status == STATUS_OK {
            return Some(Ok(()));
        }
        Some(Err(self.failed(status, err)))
    }

    /// Calls streaming method `index` and returns the producer's state.
    ///
    /// # Safety
    /// As for [`call`](Self::call); method `index` must be a streaming method.
    pub unsafe fn call_stream(
        &self,
        index: usize,
        input: &[u8],
    ) -> Result<*mut std::ffi::c_void, CallError> {
        // Only a streaming slot returns a producer: anything else it returned would be
        // taken for one.
        let Some(slot) = self
            .methods
            .get(index)
            .and_then(|m| m.slot.filter(|_| m.streaming))
        else {
            return Err(self.missing(index));
        };
        // Streams never use a loan: the slot returns the producer in `out.ptr`.
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
        Err(self.failed(status, out))
    }

    /// Runs one slot with this thread's arena lent for the result.
    ///
    /// # Safety
    /// As for [`call`](Self::call); `slot` belongs to this table's descriptor.
    #[inline(always)]
    unsafe fn call_slot<R>(
        &self,
        slot: MethodFn,
        input: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        // The thread's arena, reached without a closure so that the whole call inlines
        // into one function: a result passed back out of nested closures is copied at
        // every level, a large part of a small call (see BENCHMARKS.md).
        let cell = ARENA.try_with(|cell| cell as *const RefCell<Vec<u8>>).ok();
        // SAFETY: `try_with` succeeded, so the thread-local is alive, and it cannot be
        // destroyed while this thread runs this call; the pointer is used only within
        // it.
        match cell.map(|cell| unsafe { &*cell }.try_borrow_mut()) {
            Some(Ok(mut arena)) => {
                // SAFETY: forwarded from this function's contract.
                unsafe { call_arena(slot, self.free, &mut arena, input, decode) }
            }
            // Re-entered on this thread (a decoder calling a plugin), or called while the
            // thread's locals are being destroyed: lend a fresh buffer.
            // SAFETY: forwarded from this function's contract.
            _ => unsafe {
                call_arena(
                    slot,
                    self.free,
                    &mut Vec::with_capacity(ARENA_INITIAL),
                    input,
                    decode,
                )
            },
        }
    }

    /// The error for a call to method `index`, which is out of range, not implemented,
    /// or a streaming method called as an ordinary one (or the other way round).
    #[cold]
    #[inline(never)]
    fn missing(&self, index: usize) -> CallError {
        // SAFETY: the descriptor is validated and its library loaded while this table
        // is used (the contract of every calling method).
        let desc = unsafe { &*self.desc };
        let count = self.methods.len();
        if index >= count {
            return CallError::InvalidMethodIndex {
                plugin: plugin_name(desc),
                index,
                count,
            };
        }
        // SAFETY: index < method_count entries of a validated method table, whose
        // names are valid.
        let name = unsafe { crate::descriptor::read_c_str((*desc.methods.add(index)).name) };
        let entry = &self.methods[index];
        if entry.slot.is_some() {
            // Present, so the call asked for the wrong kind of method.
            return CallError::StreamingMismatch {
                method: name.unwrap_or("?").to_string(),
                streaming: entry.streaming,
            };
        }
        CallError::NotImplemented {
            plugin: plugin_name(desc),
            method: name.unwrap_or("?").to_string(),
        }
    }

    /// The error for a non-OK `status` with the buffer the plugin handed over in `out`.
    #[cold]
    #[inline(never)]
    fn failed(&self, status: i32, out: CallOutput) -> CallError {
        let buffer = PluginBuffer {
            out,
            free: self.free,
        };
        interpret_error(status, buffer.bytes())
    }
}

/// # Safety
/// As for [`CallTable::call`]; `slot` and `free` come from the same validated
/// descriptor.
#[inline(always)]
unsafe fn call_arena<R>(
    slot: MethodFn,
    free: FreeBufferFn,
    arena: &mut Vec<u8>,
    input: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
) -> Result<R, CallError> {
    // SAFETY: forwarded from this function's contract.
    let (status, buffer) = match unsafe { call_lending(slot, free, arena, input) }? {
        Lent::Filled => return decode(arena),
        Lent::InLoan(status) => return interpret(status, arena, decode),
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
pub(crate) enum Lent {
    /// `STATUS_OK`, written into the loan: the result is the buffer's contents now.
    Filled,
    /// Another status, its payload written into the loan.
    InLoan(i32),
    /// Any status, with a buffer the plugin handed over instead: a result too large
    /// for the loan, an error, or a plugin that takes no loans.
    Handed(i32, PluginBuffer),
}

/// Clears `buf` and lends its capacity to `produce`, which writes a result (a call's,
/// or a stream item's) through the `CallOutput` it is given and returns a status.
///
/// # Safety
/// `produce` writes at most `cap` bytes into the loan, or replaces the output with a
/// buffer `free` releases, per the contract of the slot it calls.
#[inline]
pub(crate) unsafe fn lend(
    buf: &mut Vec<u8>,
    free: FreeBufferFn,
    produce: impl FnOnce(*mut CallOutput) -> i32,
) -> Result<Lent, CallError> {
    buf.clear();
    // A loan is told from a handed-over buffer by its address: an empty Vec's dangling
    // address could be a plugin's empty Vec's too.
    debug_assert!(buf.capacity() > 0, "a loan has room");
    let lent = buf.as_mut_ptr();
    let mut out = CallOutput {
        ptr: lent,
        len: 0,
        cap: buf.capacity(),
    };
    let status = produce(&mut out);
    if out.ptr != lent {
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
    Ok(if status == STATUS_OK {
        Lent::Filled
    } else {
        Lent::InLoan(status)
    })
}

/// [`lend`] `buf` to method slot `slot` called with `input`.
///
/// # Safety
/// As for [`CallTable::call`]; `slot` and `free` come from the same validated
/// descriptor.
#[inline]
unsafe fn call_lending(
    slot: MethodFn,
    free: FreeBufferFn,
    buf: &mut Vec<u8>,
    input: &[u8],
) -> Result<Lent, CallError> {
    // SAFETY: the MethodFn contract: the slot may write up to `cap` bytes into the
    // loan, or replace the output with a buffer of its own.
    unsafe { lend(buf, free, |out| slot(input.as_ptr(), input.len(), out)) }
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
