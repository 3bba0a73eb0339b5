//! The compile-time interface description a WASM component loader reads.

/// One method, in vtable order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasmMethodDescriptor {
    /// Rust method name.
    pub name: &'static str,
    /// The kebab-case name used in the component interface.
    pub kebab_name: &'static str,
    /// `#[wire(raw)]`.
    pub raw: bool,
    /// Returns a stream.
    pub streaming: bool,
}

/// An interface as a WASM loader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasmInterfaceDescriptor {
    /// Trait name.
    pub interface_name: &'static str,
    /// The component interface export name (kebab-case trait name).
    pub export_name: &'static str,
    /// Interface hash.
    pub interface_hash: u64,
    /// Methods in vtable order.
    pub methods: &'static [WasmMethodDescriptor],
}
