//! The facade's public surface, checked at compile time: every item an interface
//! crate, a plugin or a host names is imported here, so removing or renaming one is a
//! compile error in this file. The few behaviours worth running are checked below.

#[allow(unused_imports)]
use fidius::{
    caller, descriptor, dynamic, error, hash, python_descriptor, registry, shared_alloc, state,
    status, stream, wasm_descriptor, wire,
};
#[allow(unused_imports)]
use fidius::{
    fidius_plugin_registry, from_value, inventory, plugin_impl, plugin_interface, to_value,
    BufferStrategyKind, CallError, FastPath, InterfaceInfo, InterfaceMismatch, MethodInfo,
    PluginCaller, PluginDescriptor, PluginError, PluginInfo, PluginRegistry, PluginState,
    PluginStream, ProcessExit, RawStream, SavedState, SharedAllocator, Stream, StreamSource, Value,
    ValueError, ABI_VERSION, FIDIUS_MAGIC, REGISTRY_VERSION,
};
// The host side, with feature `host`.
#[cfg(feature = "host")]
#[allow(unused_imports)]
use fidius::{host, LoadError, PluginHandle, PluginHost};

#[test]
fn constants_and_functions() {
    assert_eq!(&FIDIUS_MAGIC, b"FIDIUS\0\x01");
    assert_eq!(REGISTRY_VERSION, 1);
    // 0.x versions: the ABI follows the minor version.
    assert_eq!(
        ABI_VERSION,
        env!("CARGO_PKG_VERSION_MINOR").parse::<u32>().unwrap()
    );
    assert_eq!(fidius::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(
        fidius::interface_hash(&["f()->u32"]),
        fidius::fnv1a(b"f()->u32\n")
    );
    let v: Value = to_value(&("x", 1u8)).unwrap();
    let back: (String, u8) = from_value(v).unwrap();
    assert_eq!(back, ("x".to_string(), 1));
    let s: Stream<u8> = Stream::from_iter(vec![1, 2]);
    assert_eq!(s.count(), 2);
}
