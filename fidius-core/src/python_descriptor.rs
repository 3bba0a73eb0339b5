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

/// The Python descriptor of interface `I` (write `dyn YourTrait`). Through the
/// `fidius` facade (tested in `fidius/tests/descriptors.rs`):
///
/// ```ignore
/// #[fidius::plugin_interface(version = 1)]
/// pub trait Greeter: Send + Sync {
///     fn greet(&self, name: String) -> String;
/// }
/// let d = fidius::python_descriptor::of::<dyn Greeter>();
/// assert_eq!(d.interface_name, "Greeter");
/// assert_eq!(d.methods[0].name, "greet");
/// ```
pub fn of<I: crate::interface::Interface + ?Sized>() -> &'static PythonInterfaceDescriptor {
    &I::PYTHON
}
