#![allow(non_snake_case)] // `HTTPStatus` checks kebab-casing of acronyms.

//! The compile-time descriptors for other loaders match the interface definition.

use fidius::{python_descriptor, wasm_descriptor, Stream};

#[fidius::plugin_interface(version = 2)]
pub trait TextTools: Send + Sync {
    fn word_count(&self, text: String) -> u64;
    #[wire(raw)]
    fn raw_bytes(&self, data: Vec<u8>) -> Vec<u8>;
    fn split_lines(&self, text: String) -> Stream<String>;
    #[optional(since = 2)]
    fn HTTPStatus(&self, code: u16) -> String;
}

#[test]
fn python_descriptor_lists_methods_in_vtable_order() {
    let d = python_descriptor::of::<dyn TextTools>();
    assert_eq!(d.interface_name, "TextTools");
    assert_eq!(
        d.interface_hash,
        fidius::interface_info::<dyn TextTools>().hash
    );
    let methods: Vec<(&str, bool, bool)> = d
        .methods
        .iter()
        .map(|m| (m.name, m.raw, m.streaming))
        .collect();
    assert_eq!(
        methods,
        [
            ("word_count", false, false),
            ("raw_bytes", true, false),
            ("split_lines", false, true),
            ("HTTPStatus", false, false),
        ]
    );
}

#[test]
fn wasm_descriptor_adds_kebab_case_names() {
    let d = wasm_descriptor::of::<dyn TextTools>();
    assert_eq!(d.interface_name, "TextTools");
    assert_eq!(d.export_name, "text-tools");
    assert_eq!(
        d.interface_hash,
        fidius::interface_info::<dyn TextTools>().hash
    );
    let kebab: Vec<&str> = d.methods.iter().map(|m| m.kebab_name).collect();
    assert_eq!(
        kebab,
        ["word-count", "raw-bytes", "split-lines", "http-status"]
    );
    assert!(d.methods[1].raw && d.methods[2].streaming);
}
