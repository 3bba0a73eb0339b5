//! Plugin-side runtime used by the code `#[plugin_interface]` and `#[plugin_impl]`
//! generate: running a method body behind the FFI boundary, writing its reply,
//! catching panics, building descriptors. Not a public API.

use crate::descriptor::{
    BufferStrategyKind, CallOutput, MethodDescriptor, PluginDescriptor, ABI_VERSION,
    METHOD_OPTIONAL, METHOD_RAW,
};
use crate::error::PluginError;
use crate::interface::{Interface, InterfaceInfo, Vtable};
use crate::status::*;
use crate::wire::WireScalar;
use serde::Serialize;
use std::ffi::CStr;
use std::io::Write as _;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Gives the shims the one instance of a plugin type.
pub trait PluginInstance: Send + Sync + 'static {
    /// The plugin's instance, created on first use.
    fn instance() -> &'static Self;
}

/// Creates plugin instances: through `Default` when the type has it, otherwise as a
/// unit (zero-sized) struct. Picked by autoref specialisation in `#[plugin_impl]`.
pub struct Ctor<T>(PhantomData<T>);

impl<T> Ctor<T> {
    /// A constructor for `T`.
    // No `Default`: `Ctor<T>` is only ever built by generated code, through `new`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Ctor(PhantomData)
    }
}

/// Preferred: `T: Default`.
pub trait ViaDefault<T> {
    /// Builds the instance.
    fn make(&self) -> T;
}

impl<T: Default> ViaDefault<T> for Ctor<T> {
    fn make(&self) -> T {
        T::default()
    }
}

/// Fallback: `T` is a unit struct.
pub trait ViaUnit<T> {
    /// Builds the instance.
    fn make(&self) -> T;
}

impl<T> ViaUnit<T> for &Ctor<T> {
    fn make(&self) -> T {
        const {
            assert!(
                std::mem::size_of::<T>() == 0,
                "a fidius plugin type must be a unit struct or implement Default"
            );
            assert!(
                has_one_value::<T>(),
                "a fidius plugin type must have a value: this one is uninhabited"
            );
        };
        // SAFETY: `T` is zero-sized and inhabited (both checked at compile time above):
        // it has exactly one value, which occupies no bytes, so reading it from any
        // aligned non-null pointer produces that value. This is how a unit struct
        // `struct MyImpl;` is created without naming its constructor. (The plugin
        // author registered this type as a plugin, asking for an instance of it to
        // exist.)
        unsafe { std::ptr::NonNull::<T>::dangling().as_ptr().read() }
    }
}

/// True when `T` is zero-sized and has a value: then it has exactly one, which needs
/// no bytes.
///
/// A zero-sized type may have no value at all (`enum Void {}`, or a struct holding
/// one). `Option` of such a type needs no tag, since `Some` cannot occur, while
/// `Option` of a unit struct needs a byte to tell `Some(())` from `None`.
pub const fn has_one_value<T>() -> bool {
    std::mem::size_of::<T>() == 0 && std::mem::size_of::<Option<T>>() != 0
}

/// Where a method body writes its reply.
pub struct Reply<'a> {
    pub(crate) out: &'a mut CallOutput,
    /// The host lent a buffer (`out.ptr` is not null).
    pub(crate) arena: bool,
}

impl Reply<'_> {
    /// Writes an encoded value, in one pass: into the host's loan while it lasts, then
    /// into a buffer of our own that is handed over instead.
    pub fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> i32 {
        self.write(|w| crate::wire::encode_into_writer(value, w).map_err(|e| e.0))
    }

    /// Writes a plain scalar, without serde (see [`WireScalar`]).
    #[inline]
    pub fn scalar<T: WireScalar>(&mut self, value: T) -> i32 {
        let e = value.encode();
        if self.lent() && self.out.cap >= e.bytes.len() {
            // SAFETY: the host lent `cap >= 9` writable bytes at `ptr` for this call;
            // all 9 are copied (a fixed size, no call) and `len` of them reported.
            unsafe { std::ptr::copy_nonoverlapping(e.bytes.as_ptr(), self.out.ptr, 9) };
            self.out.len = e.len;
            return STATUS_OK;
        }
        self.write(|w| w.write_all(e.as_slice()).map_err(|e| e.to_string()))
    }

    /// Runs `encode` on a writer over the loan (or, with none, a buffer of our own) and
    /// reports what it wrote.
    #[inline]
    fn write(&mut self, encode: impl FnOnce(&mut LoanWriter) -> Result<(), String>) -> i32 {
        let lent = self.lent();
        let mut writer = LoanWriter {
            loan: self.out.ptr,
            cap: if lent { self.out.cap } else { 0 },
            len: 0,
            spill: None,
        };
        if let Err(e) = encode(&mut writer) {
            return self.serialization_error(&format!("encoding result: {e}"));
        }
        match writer.spill {
            None if lent => {
                self.out.len = writer.len;
                STATUS_OK
            }
            // Nothing was written and nothing lent: an empty buffer of our own.
            None => self.hand_over(Vec::new(), STATUS_OK),
            Some(buf) if lent => {
                // The method body has run and is not run again: the host takes this
                // buffer instead and lends a larger one next time.
                self.hand_over(buf, STATUS_BUFFER_TOO_SMALL)
            }
            Some(buf) => {
                RESULT_HINT.set(buf.len().min(RESULT_HINT_MAX));
                self.hand_over(buf, STATUS_OK)
            }
        }
    }

    /// True when the host lent a buffer for the result.
    fn lent(&self) -> bool {
        self.arena && !self.out.ptr.is_null()
    }

    /// Writes the reply of a method returning `Result<T, PluginError>`.
    pub fn result<T: Serialize>(&mut self, result: &Result<T, PluginError>) -> i32 {
        match result {
            Ok(v) => self.value(v),
            Err(e) => self.plugin_error(e),
        }
    }

    /// Writes a `Result<Vec<u8>, PluginError>` reply with the bytes as `bin`.
    pub fn bytes_result(&mut self, result: &Result<Vec<u8>, PluginError>) -> i32 {
        match result {
            Ok(v) => self.value(&crate::wire::AsBin(v)),
            Err(e) => self.plugin_error(e),
        }
    }

    /// Writes a `PluginError`.
    pub fn plugin_error(&mut self, error: &PluginError) -> i32 {
        match crate::wire::encode(error) {
            Ok(v) => self.hand_over(v, STATUS_PLUGIN_ERROR),
            Err(e) => self.serialization_error(&format!("encoding PluginError: {e}")),
        }
    }

    /// Writes raw bytes untouched (`#[wire(raw)]`).
    pub fn raw(&mut self, bytes: Vec<u8>) -> i32 {
        if self.lent() {
            if bytes.len() <= self.out.cap {
                // SAFETY: the host lent `cap >= bytes.len()` writable bytes at `ptr`,
                // which cannot overlap a Vec we own.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.out.ptr, bytes.len()) };
                self.out.len = bytes.len();
                return STATUS_OK;
            }
            return self.hand_over(bytes, STATUS_BUFFER_TOO_SMALL);
        }
        self.hand_over(bytes, STATUS_OK)
    }

    /// Reports that the arguments could not be decoded.
    pub fn serialization_error(&mut self, message: &str) -> i32 {
        self.hand_over(message.as_bytes().to_vec(), STATUS_SERIALIZATION_ERROR)
    }

    fn hand_over(&mut self, bytes: Vec<u8>, status: i32) -> i32 {
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        *self.out = CallOutput {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
        };
        status
    }
}

thread_local! {
    // The size of this thread's last result encoded without a loan (hosts built before
    // loans, streams), to size the next buffer. A `Cell<usize>` registers no
    // destructor, so it cannot keep the library loaded.
    static RESULT_HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(64) };
}

/// The largest first buffer a result is encoded into without a loan.
const RESULT_HINT_MAX: usize = 1 << 20;

/// Writes into the buffer the host lent (`cap` bytes at `loan`, uninitialised) and,
/// once it is full, into a buffer of its own holding everything written so far. With
/// no loan, `cap` is 0 and everything goes to a buffer of its own.
struct LoanWriter {
    loan: *mut u8,
    cap: usize,
    len: usize,
    spill: Option<Vec<u8>>,
}

impl std::io::Write for LoanWriter {
    #[inline]
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.write_all(data).map(|()| data.len())
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        if let Some(spill) = &mut self.spill {
            spill.extend_from_slice(data);
            return Ok(());
        }
        let end = self.len + data.len();
        if end <= self.cap && data.len() <= 16 {
            // Small writes (markers, scalars) byte by byte: a call to memcpy costs more.
            for (i, &b) in data.iter().enumerate() {
                // SAFETY: the host lent `cap` writable bytes at `loan` for this call and
                // `len + i < end <= cap`.
                unsafe { self.loan.add(self.len + i).write(b) };
            }
            self.len = end;
            return Ok(());
        }
        if end <= self.cap {
            // SAFETY: the host lent `cap` writable bytes at `loan` for this call; they
            // cannot overlap `data`, which lives in the plugin or in its input.
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr(), self.loan.add(self.len), data.len())
            };
            self.len = end;
            return Ok(());
        }
        let first = if self.cap == 0 {
            RESULT_HINT.get()
        } else {
            self.cap.saturating_mul(2)
        };
        let mut spill = Vec::with_capacity(end.max(first));
        if self.len > 0 {
            // SAFETY: the first `len` bytes of the loan were written above.
            spill.extend_from_slice(unsafe { std::slice::from_raw_parts(self.loan, self.len) });
        }
        spill.extend_from_slice(data);
        self.spill = Some(spill);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs a method body behind the FFI boundary: builds the input slice, catches panics
/// and turns them into [`STATUS_PANIC`].
///
/// # Safety
/// `input` must point at `input_len` readable bytes and `out` at a valid
/// [`CallOutput`] (whose `ptr` is null or a buffer the host lends), as the
/// [`MethodFn`](crate::descriptor::MethodFn) contract says.
pub unsafe fn run_method(
    _strategy: BufferStrategyKind,
    input: *const u8,
    input_len: usize,
    out: *mut CallOutput,
    body: impl FnOnce(&[u8], &mut Reply<'_>) -> i32,
) -> i32 {
    // SAFETY: the host passes a valid, exclusive CallOutput for the call's duration.
    let out = unsafe { &mut *out };
    let input: &[u8] = if input.is_null() || input_len == 0 {
        &[]
    } else {
        // SAFETY: the host lends `input_len` readable bytes at `input` for the call.
        unsafe { std::slice::from_raw_parts(input, input_len) }
    };
    // Whatever the interface's strategy (`_strategy`, kept for the generated code that
    // passes it), a buffer the host lent is used: hosts built before loans lend only to
    // Arena interfaces and pass no buffer otherwise.
    let arena = !out.ptr.is_null();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut reply = Reply {
            out: &mut *out,
            arena,
        };
        body(input, &mut reply)
    }));
    match result {
        Ok(status) => status,
        Err(payload) => report_panic(out, payload),
    }
}

/// The `free_buffer` every descriptor carries: releases a `Vec<u8>` handed over by
/// [`Reply`], in the plugin's own allocator.
///
/// # Safety
/// `ptr`, `len` and `cap` must be exactly what a [`Reply`] of this library reported,
/// and each buffer must be freed once.
pub unsafe extern "C" fn free_buffer(ptr: *mut u8, len: usize, cap: usize) {
    // SAFETY: the values came from a Vec<u8> we leaked in `hand_over`.
    drop(unsafe { Vec::from_raw_parts(ptr, len, cap) });
}

const fn str_eq(a: &str, b: &str) -> bool {
    bytes_eq(a.as_bytes(), b.as_bytes())
}

/// Capability bits for the optional methods among `implemented` (every method name in
/// the impl block).
pub const fn capabilities(optional: &[&str], implemented: &[&str]) -> u64 {
    let mut bits = 0u64;
    let mut i = 0;
    while i < optional.len() {
        let mut j = 0;
        while j < implemented.len() {
            if str_eq(optional[i], implemented[j]) {
                bits |= 1 << i;
            }
            j += 1;
        }
        i += 1;
    }
    bits
}

/// Builds the descriptor of plugin type `T` implementing interface `I`.
pub const fn descriptor<I, T>(plugin_name: &'static CStr, implemented: &[&str]) -> PluginDescriptor
where
    I: Interface + Vtable<T> + ?Sized,
{
    PluginDescriptor {
        descriptor_size: std::mem::size_of::<PluginDescriptor>() as u32,
        abi_version: ABI_VERSION,
        interface_name: I::NAME_C.as_ptr(),
        interface_hash: I::INFO.hash,
        interface_version: I::INFO.version,
        buffer_strategy: I::INFO.buffer as u32,
        capabilities: capabilities(I::INFO.optional, implemented),
        plugin_name: plugin_name.as_ptr(),
        vtable: <I as Vtable<T>>::VTABLE.as_ptr(),
        methods: I::METHODS.as_ptr(),
        method_count: I::METHODS.len() as u32,
        trait_metadata_count: I::TRAIT_META.len() as u32,
        trait_metadata: I::TRAIT_META.as_ptr(),
        free_buffer: Some(free_buffer),
        direct: <I as Vtable<T>>::DIRECT.as_ptr(),
        stream_next: Some(crate::stream::producer::stream_next),
        stream_free: Some(crate::stream::producer::stream_free),
        save_state: None,
        restore_state: None,
    }
}

/// Builds the descriptor of plugin type `T`, which carries its state across versions
/// (`#[plugin_impl(Trait, state)]`; see [`crate::state`]).
pub const fn descriptor_with_state<I, T>(
    plugin_name: &'static CStr,
    implemented: &[&str],
) -> PluginDescriptor
where
    I: Interface + Vtable<T> + ?Sized,
    T: crate::state::PluginState + PluginInstance,
{
    let mut descriptor = descriptor::<I, T>(plugin_name, implemented);
    descriptor.save_state = Some(save_state::<I, T>);
    descriptor.restore_state = Some(restore_state::<I, T>);
    descriptor
}

/// The `save_state` of a plugin that carries state: its state version, then the
/// state in the wire format.
///
/// # Safety
/// As for every [`MethodFn`](crate::descriptor::MethodFn).
pub unsafe extern "C" fn save_state<I, T>(
    input: *const u8,
    input_len: usize,
    out: *mut CallOutput,
) -> i32
where
    I: Interface + ?Sized,
    T: crate::state::PluginState + PluginInstance,
{
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run_method(I::INFO.buffer, input, input_len, out, |_, reply| {
            let state = T::instance().save_state();
            match crate::state::encode_saved(T::STATE_VERSION, &state) {
                Ok(bytes) => reply.raw(bytes),
                Err(e) => reply.serialization_error(&format!("encoding the state: {e}")),
            }
        })
    }
}

/// The `restore_state` of a plugin that carries state.
///
/// # Safety
/// As for every [`MethodFn`](crate::descriptor::MethodFn).
pub unsafe extern "C" fn restore_state<I, T>(
    input: *const u8,
    input_len: usize,
    out: *mut CallOutput,
) -> i32
where
    I: Interface + ?Sized,
    T: crate::state::PluginState + PluginInstance,
{
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run_method(I::INFO.buffer, input, input_len, out, |input, reply| {
            let Some(saved) = crate::state::SavedState::from_bytes(input) else {
                return reply.serialization_error("a saved state without its version");
            };
            match T::instance().restore_state(saved) {
                Ok(()) => reply.raw(Vec::new()),
                Err(e) => reply.plugin_error(&e),
            }
        })
    }
}

/// Runs the body of a scalar fast-path entry: writes the result to `out`, or catches a
/// panic and hands its message over in `err`.
///
/// # Safety
/// `out` must be valid for writing an `R` and `err` must point at a valid
/// [`CallOutput`], as the direct-entry contract says.
#[inline(always)]
pub unsafe fn run_direct<R>(out: *mut R, err: *mut CallOutput, body: impl FnOnce() -> R) -> i32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => {
            // SAFETY: the host passes a pointer to writable storage for an `R`.
            unsafe { out.write(value) };
            STATUS_OK
        }
        // SAFETY: the host passes a valid CallOutput for the error.
        Err(payload) => report_panic(unsafe { &mut *err }, payload),
    }
}

/// Hands a caught panic's message to the host in a plugin-allocated buffer and returns
/// [`STATUS_PANIC`].
pub(crate) fn report_panic(out: &mut CallOutput, payload: Box<dyn std::any::Any + Send>) -> i32 {
    let message = panic_message(&*payload);
    // Dropping the payload could itself panic; forget it rather than unwind.
    std::mem::forget(payload);
    Reply { out, arena: false }.hand_over(message.into_bytes(), STATUS_PANIC)
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Fails to compile when `#[plugin_impl(Trait, buffer = X)]` names a strategy other
/// than the interface's.
pub const fn assert_buffer(interface: BufferStrategyKind, declared: BufferStrategyKind) {
    assert!(
        interface as u32 == declared as u32,
        "#[plugin_impl(buffer = ...)] differs from the interface's buffer strategy"
    );
}

/// The index of method `name` in `info`, if it has one.
const fn method_index(info: &InterfaceInfo, name: &str) -> Option<usize> {
    let mut i = 0;
    while i < info.methods.len() {
        if bytes_eq(info.methods[i].name.as_bytes(), name.as_bytes()) {
            return Some(i);
        }
        i += 1;
    }
    None
}

const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Fails to compile when `#[wire(raw)]`, written again on the impl's method `name`,
/// does not agree with the trait (whose attributes decide).
pub const fn assert_impl_raw(info: &InterfaceInfo, name: &str) {
    if let Some(i) = method_index(info, name) {
        assert!(
            info.methods[i].flags & METHOD_RAW != 0,
            "this impl method is marked `#[wire(raw)]` and the trait's is not: the wire mode \
             is the trait's to declare; mark the trait's method, or remove it here"
        );
    }
}

/// Fails to compile when `#[optional]` (with `since`, when given), written again on the
/// impl's method `name`, does not agree with the trait.
pub const fn assert_impl_optional(
    info: &InterfaceInfo,
    methods: &[MethodDescriptor],
    name: &str,
    since: Option<u32>,
) {
    if let Some(i) = method_index(info, name) {
        assert!(
            info.methods[i].flags & METHOD_OPTIONAL != 0,
            "this impl method is marked `#[optional]` and the trait's is required: optional \
             methods are declared on the trait; mark the trait's method (and raise the \
             interface version), or remove it here"
        );
        if let Some(since) = since {
            assert!(
                methods[i].since == since,
                "this impl method's `#[optional(since = N)]` differs from the trait's `since`"
            );
        }
    }
}

/// Fails to compile when `#[method_meta(key, value)]`, written again on the impl's
/// method `name`, is not a pair the trait's method declares.
pub const fn assert_impl_meta(
    info: &InterfaceInfo,
    methods: &[MethodDescriptor],
    name: &str,
    key: &CStr,
    value: &CStr,
) {
    let Some(i) = method_index(info, name) else {
        return;
    };
    let method = &methods[i];
    let mut j = 0;
    let mut found = false;
    while j < method.metadata_count as usize {
        // SAFETY: the macro-generated descriptor's metadata points at
        // `metadata_count` entries of NUL-terminated string constants.
        let (k, v) = unsafe {
            let entry = &*method.metadata.add(j);
            (CStr::from_ptr(entry.key), CStr::from_ptr(entry.value))
        };
        if bytes_eq(k.to_bytes(), key.to_bytes()) && bytes_eq(v.to_bytes(), value.to_bytes()) {
            found = true;
        }
        j += 1;
    }
    assert!(
        found,
        "this impl method's `#[method_meta(...)]` is not on the trait's method: metadata is \
         declared on the trait; add it there, or remove it here"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_bits_follow_optional_order() {
        let optional = ["a", "b", "c"];
        assert_eq!(capabilities(&optional, &["x", "c"]), 0b100);
        assert_eq!(capabilities(&optional, &["a", "b", "c"]), 0b111);
        assert_eq!(capabilities(&optional, &[]), 0);
    }

    #[test]
    fn only_inhabited_zero_sized_types_are_made_from_nothing() {
        struct Unit;
        #[allow(dead_code)]
        struct Wraps(Unit, ());
        enum Void {}
        #[allow(dead_code)]
        struct HoldsVoid(Void);
        assert!(has_one_value::<Unit>());
        assert!(has_one_value::<Wraps>());
        assert!(has_one_value::<()>());
        assert!(!has_one_value::<Void>());
        assert!(!has_one_value::<HoldsVoid>());
        assert!(!has_one_value::<std::convert::Infallible>());
        assert!(!has_one_value::<u32>());
    }

    #[test]
    // The borrow is the autoref specialisation under test.
    #[allow(clippy::needless_borrow)]
    fn unit_and_default_construction() {
        #[derive(Debug, PartialEq)]
        struct Unit;
        #[derive(Debug, PartialEq, Default)]
        struct WithDefault(u32);
        let u: Unit = (&Ctor::<Unit>::new()).make();
        assert_eq!(u, Unit);
        let d: WithDefault = (&Ctor::<WithDefault>::new()).make();
        assert_eq!(d, WithDefault(0));
    }
}
