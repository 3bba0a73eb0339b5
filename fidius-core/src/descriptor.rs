//! The `#[repr(C)]` types a plugin library exports and a host reads.
//!
//! Every type here is part of the ABI. Their sizes and field offsets are pinned by the
//! tests at the bottom of this file; changing one is a breaking change that must bump
//! [`ABI_VERSION`] (which follows the crate version).
//!
//! Layout rules that let the format grow without breaking old hosts:
//! * [`PluginDescriptor::descriptor_size`] and [`PluginDescriptor::abi_version`] are the
//!   first two fields, forever, so a host can read them from any descriptor before
//!   trusting anything else;
//! * new fields are only ever appended, and a host reads a field only when
//!   `descriptor_size` says the plugin wrote it. A host refuses a descriptor smaller
//!   than its own ([`LoadError::DescriptorTooSmall`](crate::host::LoadError)): a
//!   plugin built against an older fidius of the same ABI is rebuilt, not guessed at.

use std::ffi::{c_char, CStr};

/// The ABI version, derived from this crate's version: `major << 16 | minor` while the
/// major version is 0 (where a minor bump is breaking), `major << 16` after 1.0.
pub const ABI_VERSION: u32 = abi_version_from(
    env!("CARGO_PKG_VERSION_MAJOR"),
    env!("CARGO_PKG_VERSION_MINOR"),
);

const fn parse_u32(s: &str) -> u32 {
    let bytes = s.as_bytes();
    let mut value = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    value
}

const fn abi_version_from(major: &str, minor: &str) -> u32 {
    let major = parse_u32(major);
    if major == 0 {
        parse_u32(minor)
    } else {
        major << 16
    }
}

/// Renders an ABI version number as the crate version range it stands for.
pub fn abi_version_string(abi: u32) -> String {
    let major = abi >> 16;
    if major == 0 {
        format!("0.{}", abi & 0xffff)
    } else {
        format!("{major}.x")
    }
}

/// Who owns the buffer a method's result is written into, as an interface declares
/// it.
///
/// Hosts and plugins built with this version of fidius behave the same with either:
/// the host lends a reusable buffer for every call and the plugin writes into it, or
/// hands over a buffer of its own when the result does not fit (the method never runs
/// twice). The declaration still matters to hosts built before: they lend only to
/// `Arena` interfaces. See BENCHMARKS.md for what each costs.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BufferStrategyKind {
    /// The plugin may allocate each result; the host frees it through the
    /// descriptor's `free_buffer`. A buffer the host lends is used when there is one.
    PluginAllocated = 1,
    /// The host lends a reusable per-thread buffer; results that do not fit are handed
    /// over in a plugin buffer once (the method never runs twice) and the host grows
    /// its buffer for next time.
    Arena = 2,
}

impl BufferStrategyKind {
    /// Converts the raw value found in a descriptor.
    pub fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::PluginAllocated),
            2 => Some(Self::Arena),
            _ => None,
        }
    }

    /// The strategy's name as written in `#[plugin_interface(buffer = ...)]`.
    pub fn name(self) -> &'static str {
        match self {
            Self::PluginAllocated => "PluginAllocated",
            Self::Arena => "Arena",
        }
    }
}

impl std::fmt::Display for BufferStrategyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The uniform signature of every vtable slot.
///
/// `input`/`input_len` is the encoded argument tuple (or the raw bytes of a
/// `#[wire(raw)]` method). Before the call, `out.ptr` is either null or points at
/// `out.cap` writable bytes the host lends, whatever the interface's buffer strategy
/// (hosts built before this version lend only for the Arena strategy). The plugin
/// writes its result into the loan and sets `out.len`, or replaces the whole `out`
/// with a buffer of its own (see [`crate::status`]); the host tells the two apart by
/// the pointer.
pub type MethodFn =
    unsafe extern "C" fn(input: *const u8, input_len: usize, out: *mut CallOutput) -> i32;

/// Produces a stream's next item into `out` (see [`crate::stream`]). Returns a status;
/// [`STREAM_END`](crate::status::STREAM_END) when done.
pub type StreamNextFn =
    unsafe extern "C" fn(state: *mut std::ffi::c_void, out: *mut CallOutput) -> i32;
/// Releases a stream's producer. Called exactly once.
pub type StreamFreeFn = unsafe extern "C" fn(state: *mut std::ffi::c_void);

/// Releases a buffer the plugin allocated: the `ptr`, `len` and `cap` it reported in a
/// [`CallOutput`].
pub type FreeBufferFn = unsafe extern "C" fn(ptr: *mut u8, len: usize, cap: usize);

/// Where a method's encoded result was written.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CallOutput {
    /// Start of the buffer.
    pub ptr: *mut u8,
    /// Bytes of payload written.
    pub len: usize,
    /// Capacity of the buffer.
    pub cap: usize,
}

impl CallOutput {
    /// An output with no buffer: no loan (streaming slots, direct entries' error
    /// output, and calls whose result the host takes over as it is).
    pub const fn empty() -> Self {
        Self {
            ptr: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }
}

/// One static `key = value` metadata pair, from `#[method_meta]` or `#[trait_meta]`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MetaEntry {
    /// NUL-terminated UTF-8 key.
    pub key: *const c_char,
    /// NUL-terminated UTF-8 value.
    pub value: *const c_char,
}

// SAFETY: a MetaEntry only points at immutable 'static string data.
unsafe impl Sync for MetaEntry {}
// SAFETY: as above; the pointers are never written through.
unsafe impl Send for MetaEntry {}

/// The method is `#[optional]`: a plugin may leave it out; see its capability bit.
pub const METHOD_OPTIONAL: u32 = 1 << 0;
/// The method is `#[wire(raw)]`: bytes in and out, untouched.
pub const METHOD_RAW: u32 = 1 << 1;
/// The method returns `Result<T, PluginError>`.
pub const METHOD_RESULT: u32 = 1 << 2;
/// The method returns a `Stream<T>`.
pub const METHOD_STREAMING: u32 = 1 << 3;
/// Every argument and the result are plain scalars: the plugin's
/// [`PluginDescriptor::direct`] table holds an entry point that takes them as they are.
pub const METHOD_DIRECT: u32 = 1 << 4;

/// The method is exactly `fn(&self, Vec<u8>) -> Vec<u8>`: its entry in
/// [`PluginDescriptor::direct`] is a [`MethodFn`] that takes the argument's bytes and
/// returns the result's bytes, both unframed (as `#[wire(raw)]` does).
pub const METHOD_DIRECT_BYTES: u32 = 1 << 5;

/// The method is exactly `fn(&self, String) -> String`: its entry in
/// [`PluginDescriptor::direct`] is a [`MethodFn`] that takes the argument's UTF-8 bytes
/// and returns the result's, both unframed. The plugin checks the input is UTF-8; the
/// host checks the result.
pub const METHOD_DIRECT_TEXT: u32 = 1 << 6;

/// A type-erased `extern "C"` function pointer, as stored in the direct table.
///
/// The real signature of a direct entry for `fn m(&self, a: A, b: B) -> R` is
/// `unsafe extern "C" fn(a: A, b: B, out: *mut R, err: *mut CallOutput) -> i32`: the
/// result is written to `out` on [`STATUS_OK`](crate::status::STATUS_OK); a panic
/// message is handed over in `err` (plugin-allocated) on
/// [`STATUS_PANIC`](crate::status::STATUS_PANIC). Both sides know the signature from the
/// interface, whose hash covers the argument and result types.
pub type ErasedFn = unsafe extern "C" fn();

/// Static facts about one method, in vtable order.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MethodDescriptor {
    /// NUL-terminated method name.
    pub name: *const c_char,
    /// NUL-terminated canonical signature, e.g. `process(String)->String`.
    pub signature: *const c_char,
    /// `METHOD_*` flags.
    pub flags: u32,
    /// For optional methods, the interface version that introduced it; 0 otherwise.
    pub since: u32,
    /// For optional methods, the index of its capability bit; `u32::MAX` otherwise.
    pub optional_bit: u32,
    /// Number of entries at `metadata`.
    pub metadata_count: u32,
    /// `#[method_meta]` pairs.
    pub metadata: *const MetaEntry,
}

// SAFETY: a MethodDescriptor only points at immutable 'static data and functions.
unsafe impl Sync for MethodDescriptor {}
// SAFETY: as above.
unsafe impl Send for MethodDescriptor {}

/// Everything a host needs to know about one plugin, and its vtable.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    /// `size_of::<PluginDescriptor>()` in the plugin's build. Always first.
    pub descriptor_size: u32,
    /// The plugin's [`ABI_VERSION`]. Always second.
    pub abi_version: u32,
    /// NUL-terminated interface (trait) name.
    pub interface_name: *const c_char,
    /// FNV-1a over the required methods' canonical signatures.
    pub interface_hash: u64,
    /// `version = N` of `#[plugin_interface]`.
    pub interface_version: u32,
    /// A [`BufferStrategyKind`] as `u32`.
    pub buffer_strategy: u32,
    /// Bit `i` set: the plugin implements the optional method whose `optional_bit` is `i`.
    pub capabilities: u64,
    /// NUL-terminated plugin (implementing type) name.
    pub plugin_name: *const c_char,
    /// `method_count` slots.
    pub vtable: *const MethodFn,
    /// `method_count` method descriptors, in vtable order.
    pub methods: *const MethodDescriptor,
    /// Number of methods in the vtable.
    pub method_count: u32,
    /// Number of entries at `trait_metadata`.
    pub trait_metadata_count: u32,
    /// `#[trait_meta]` pairs.
    pub trait_metadata: *const MetaEntry,
    /// Frees buffers the plugin allocated.
    pub free_buffer: Option<FreeBufferFn>,
    /// `method_count` entries: the scalar fast path of [`METHOD_DIRECT`] methods (see
    /// [`ErasedFn`]), the unframed bytes entry of [`METHOD_DIRECT_BYTES`] methods,
    /// `None` for the others. May be null when no method has one.
    pub direct: *const Option<ErasedFn>,
    /// Pulls the next item of a stream returned by a [`METHOD_STREAMING`] method; see
    /// [`crate::stream`].
    pub stream_next: Option<StreamNextFn>,
    /// Frees a stream's producer; called exactly once per stream.
    pub stream_free: Option<StreamFreeFn>,
    /// Saves the plugin's state, for a plugin that carries state across versions
    /// (see [`crate::state`]); `None` otherwise. A [`MethodFn`] that takes no input
    /// and returns the state's version (`u32`, little-endian) and its wire encoding.
    pub save_state: Option<MethodFn>,
    /// Restores state saved by another version: a [`MethodFn`] that takes what
    /// `save_state` returned and returns nothing, or the plugin's error (it refuses
    /// the state).
    pub restore_state: Option<MethodFn>,
}

// SAFETY: a PluginDescriptor is immutable after construction and only points at
// 'static data and functions.
unsafe impl Sync for PluginDescriptor {}
// SAFETY: as above.
unsafe impl Send for PluginDescriptor {}

/// Reads a NUL-terminated UTF-8 string from a descriptor.
///
/// Returns `None` for a null pointer or invalid UTF-8.
///
/// # Safety
/// `ptr` must be null or point at a NUL-terminated string that stays valid for `'a`.
pub unsafe fn read_c_str<'a>(ptr: *const c_char) -> Option<&'a str> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-null, and the caller promises a NUL-terminated string living for 'a.
    unsafe { CStr::from_ptr(ptr) }.to_str().ok()
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    // These tests pin the ABI on 64-bit targets. A failure means the layout changed:
    // that is a breaking change for every plugin built before it.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn plugin_descriptor_layout() {
        assert_eq!(size_of::<PluginDescriptor>(), 128);
        assert_eq!(align_of::<PluginDescriptor>(), 8);
        assert_eq!(offset_of!(PluginDescriptor, descriptor_size), 0);
        assert_eq!(offset_of!(PluginDescriptor, abi_version), 4);
        assert_eq!(offset_of!(PluginDescriptor, interface_name), 8);
        assert_eq!(offset_of!(PluginDescriptor, interface_hash), 16);
        assert_eq!(offset_of!(PluginDescriptor, interface_version), 24);
        assert_eq!(offset_of!(PluginDescriptor, buffer_strategy), 28);
        assert_eq!(offset_of!(PluginDescriptor, capabilities), 32);
        assert_eq!(offset_of!(PluginDescriptor, plugin_name), 40);
        assert_eq!(offset_of!(PluginDescriptor, vtable), 48);
        assert_eq!(offset_of!(PluginDescriptor, methods), 56);
        assert_eq!(offset_of!(PluginDescriptor, method_count), 64);
        assert_eq!(offset_of!(PluginDescriptor, trait_metadata_count), 68);
        assert_eq!(offset_of!(PluginDescriptor, trait_metadata), 72);
        assert_eq!(offset_of!(PluginDescriptor, free_buffer), 80);
        assert_eq!(offset_of!(PluginDescriptor, direct), 88);
        assert_eq!(offset_of!(PluginDescriptor, stream_next), 96);
        assert_eq!(offset_of!(PluginDescriptor, stream_free), 104);
        assert_eq!(offset_of!(PluginDescriptor, save_state), 112);
        assert_eq!(offset_of!(PluginDescriptor, restore_state), 120);
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn method_descriptor_layout() {
        assert_eq!(size_of::<MethodDescriptor>(), 40);
        assert_eq!(align_of::<MethodDescriptor>(), 8);
        assert_eq!(offset_of!(MethodDescriptor, name), 0);
        assert_eq!(offset_of!(MethodDescriptor, signature), 8);
        assert_eq!(offset_of!(MethodDescriptor, flags), 16);
        assert_eq!(offset_of!(MethodDescriptor, since), 20);
        assert_eq!(offset_of!(MethodDescriptor, optional_bit), 24);
        assert_eq!(offset_of!(MethodDescriptor, metadata_count), 28);
        assert_eq!(offset_of!(MethodDescriptor, metadata), 32);
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn small_types_layout() {
        assert_eq!(size_of::<MetaEntry>(), 16);
        assert_eq!(offset_of!(MetaEntry, key), 0);
        assert_eq!(offset_of!(MetaEntry, value), 8);
        assert_eq!(size_of::<CallOutput>(), 24);
        assert_eq!(offset_of!(CallOutput, ptr), 0);
        assert_eq!(offset_of!(CallOutput, len), 8);
        assert_eq!(offset_of!(CallOutput, cap), 16);
        assert_eq!(size_of::<BufferStrategyKind>(), 4);
        assert_eq!(size_of::<Option<FreeBufferFn>>(), size_of::<usize>());
        assert_eq!(size_of::<Option<ErasedFn>>(), size_of::<usize>());
    }

    #[test]
    fn abi_version_follows_crate_version() {
        assert_eq!(abi_version_from("0", "3"), 3);
        assert_eq!(abi_version_from("1", "4"), 1 << 16);
        assert_eq!(abi_version_from("12", "0"), 12 << 16);
        assert_eq!(abi_version_string(3), "0.3");
        assert_eq!(abi_version_string(2 << 16), "2.x");
    }

    #[test]
    fn buffer_strategy_round_trips() {
        for kind in [
            BufferStrategyKind::PluginAllocated,
            BufferStrategyKind::Arena,
        ] {
            assert_eq!(BufferStrategyKind::from_raw(kind as u32), Some(kind));
        }
        assert_eq!(BufferStrategyKind::from_raw(0), None);
        assert_eq!(BufferStrategyKind::from_raw(7), None);
    }
}
