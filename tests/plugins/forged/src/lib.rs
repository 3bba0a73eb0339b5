//! A hand-built, deliberately malformed fidius library, for the load-error tests.
//!
//! It exports `fidius_get_registry` like any plugin, but builds the registry by hand,
//! broken in the way its own file name asks for: the tests copy this library to
//! `libforged_<variant>.so` and load the copy. Without a variant it is a well-formed
//! library whose plugin `Forged` misbehaves at call time.
//!
//! Linux only: the library finds its own file name in `/proc/self/maps`.

use fidius::descriptor::{CallOutput, MethodDescriptor, MethodFn, PluginDescriptor, ABI_VERSION};
use fidius::registry::{PluginRegistry, FIDIUS_MAGIC, REGISTRY_VERSION};
use std::ffi::c_char;
use std::ptr::null;

/// Method 0: returns a status code no host knows.
unsafe extern "C" fn unknown_status(_: *const u8, _: usize, out: *mut CallOutput) -> i32 {
    // SAFETY: the host passes a valid CallOutput.
    unsafe { *out = CallOutput::empty() };
    99
}

static GARBAGE: [u8; 3] = [0xc1, 0xc1, 0xc1];

/// Method 1: claims success but returns bytes that do not decode (0xc1 is never used
/// by MessagePack). The buffer is static, so `free_forged` does nothing with it.
unsafe extern "C" fn garbage(_: *const u8, _: usize, out: *mut CallOutput) -> i32 {
    // SAFETY: the host passes a valid CallOutput.
    unsafe {
        *out = CallOutput {
            ptr: GARBAGE.as_ptr() as *mut u8,
            len: GARBAGE.len(),
            cap: GARBAGE.len(),
        }
    };
    0
}

unsafe extern "C" fn free_forged(_: *mut u8, _: usize, _: usize) {}

static VTABLE: [MethodFn; 2] = [unknown_status, garbage];

struct Methods([MethodDescriptor; 2]);
// SAFETY: immutable data pointing at string literals.
unsafe impl Sync for Methods {}

static METHODS: Methods = Methods([
    MethodDescriptor {
        name: c"unknown_status".as_ptr(),
        signature: c"unknown_status()->u32".as_ptr(),
        flags: 0,
        since: 0,
        optional_bit: u32::MAX,
        metadata_count: 0,
        metadata: null(),
    },
    MethodDescriptor {
        name: c"garbage".as_ptr(),
        signature: c"garbage()->String".as_ptr(),
        flags: 0,
        since: 0,
        optional_bit: u32::MAX,
        metadata_count: 0,
        metadata: null(),
    },
]);

fn descriptor(name: *const c_char) -> PluginDescriptor {
    PluginDescriptor {
        descriptor_size: std::mem::size_of::<PluginDescriptor>() as u32,
        abi_version: ABI_VERSION,
        interface_name: c"Forged".as_ptr(),
        interface_hash: 0x1234,
        interface_version: 1,
        buffer_strategy: 1,
        capabilities: 0,
        plugin_name: name,
        vtable: VTABLE.as_ptr(),
        methods: METHODS.0.as_ptr(),
        method_count: 2,
        trait_metadata_count: 0,
        trait_metadata: null(),
        free_buffer: Some(free_forged),
        direct: null(),
        stream_next: None,
        stream_free: None,
        save_state: None,
        restore_state: None,
    }
}

/// This library's file name, from the mapping that contains this function.
fn own_file_name() -> String {
    let me = fidius_get_registry as *const () as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(path)) = (parts.next(), parts.nth(4)) else {
            continue;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        else {
            continue;
        };
        if (lo..hi).contains(&me) {
            return path.rsplit('/').next().unwrap_or("").to_string();
        }
    }
    String::new()
}

/// Everything a registry points at must outlive the library's use, so it is leaked.
fn leak<T>(value: T) -> *const T {
    Box::leak(Box::new(value))
}

/// The registry, malformed as the file name asks.
#[unsafe(no_mangle)]
pub extern "C" fn fidius_get_registry() -> *const PluginRegistry {
    let name = own_file_name();
    // `libforged_<variant>.so`, or a copy of it such as a hot reloader's shadow copy
    // `libforged_<variant>.fidius-g1-....so` or in-memory copy
    // `memfd:fidius:libforged_<variant>.so:...`: the variant ends at the first dot.
    let variant = name
        .find("libforged_")
        .and_then(|at| name[at + "libforged_".len()..].split('.').next())
        .unwrap_or("");
    let mut desc = descriptor(c"Forged".as_ptr());
    let mut magic = FIDIUS_MAGIC;
    let mut version = REGISTRY_VERSION;
    let mut descriptors: Vec<*const PluginDescriptor> = Vec::new();
    match variant {
        "null_registry" => return null(),
        "bad_magic" => magic = *b"NOTFIDIU",
        "registry_version" => version = REGISTRY_VERSION + 41,
        "abi" => desc.abi_version = ABI_VERSION + 1,
        "too_small" => desc.descriptor_size = 16,
        "null_name" => desc.plugin_name = null(),
        "null_vtable" => desc.vtable = null(),
        "absurd_count" => desc.method_count = 1_000_000,
        "bad_strategy" => desc.buffer_strategy = 7,
        "null_free" => desc.free_buffer = None,
        "null_descriptor" => descriptors.push(null()),
        "duplicate" => descriptors.push(leak(descriptor(c"Forged".as_ptr()))),
        _ => {}
    }
    descriptors.push(leak(desc));
    let descriptors = Box::leak(descriptors.into_boxed_slice());
    leak(PluginRegistry {
        magic,
        registry_version: version,
        plugin_count: descriptors.len() as u32,
        descriptors: descriptors.as_ptr(),
    })
}
