//! The facade exposes what the framework issue lists; this test names each item, so
//! removing or renaming one is a compile error here.

#[allow(unused_imports)]
use fidius::{
    descriptor, error, hash, python_descriptor, registry, status, stream_ffi, stream_marker,
    wasm_descriptor, wire,
};
#[allow(unused_imports)]
use fidius::{fidius_plugin_registry, plugin_impl, plugin_interface};
use fidius::{
    from_value, inventory, to_value, BufferStrategyKind, PluginDescriptor, PluginError,
    PluginRegistry, Stream, Value, ValueError, ABI_VERSION, FIDIUS_MAGIC, REGISTRY_VERSION,
};

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
    let _: Option<ValueError> = None;
}

#[test]
fn types() {
    let _ = std::mem::size_of::<PluginDescriptor>();
    let _ = std::mem::size_of::<PluginRegistry>();
    let _ = BufferStrategyKind::Arena;
    let _ = PluginError::new("c", "m");
    let s: Stream<u8> = Stream::from_iter(vec![1, 2]);
    assert_eq!(s.count(), 2);
    let _ = inventory::iter::<fidius::registry::DescriptorRef>
        .into_iter()
        .count();
    let _ = (
        descriptor::ABI_VERSION,
        status::STATUS_OK,
        registry::REGISTRY_SYMBOL,
        hash::fnv1a(b""),
        wire::encode(&1u8).unwrap(),
    );
    let _: Option<error::CallError> = None;
    let _: Option<python_descriptor::PythonInterfaceDescriptor> = None;
    let _: Option<wasm_descriptor::WasmInterfaceDescriptor> = None;
    let _: Option<stream_ffi::FfiStream> = None;
    let _: Option<stream_marker::Stream<u8>> = None;
}
