//! The compile-time interface description a Python loader reads.

/// One method, in vtable order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PythonMethodDescriptor {
    /// Method name.
    pub name: &'static str,
    /// `#[wire(raw)]`.
    pub raw: bool,
    /// Returns a stream.
    pub streaming: bool,
}

/// An interface as a Python loader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PythonInterfaceDescriptor {
    /// Trait name.
    pub interface_name: &'static str,
    /// Interface hash.
    pub interface_hash: u64,
    /// Methods in vtable order.
    pub methods: &'static [PythonMethodDescriptor],
}
