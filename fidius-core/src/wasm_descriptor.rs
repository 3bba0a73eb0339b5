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

/// The WASM descriptor of interface `I` (write `dyn YourTrait`).
pub fn of<I: crate::interface::Interface + ?Sized>() -> &'static WasmInterfaceDescriptor {
    &I::WASM
}

/// `process_data` → `process-data`, `MyPlugin` → `my-plugin`: the kebab-case form the
/// component model uses for names.
pub fn kebab_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        } else if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if !out.is_empty() && !out.ends_with('-') && (prev_lower || (prev_upper && next_lower))
            {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::kebab_case;

    #[test]
    fn kebab() {
        assert_eq!(kebab_case("process_data"), "process-data");
        assert_eq!(kebab_case("MyPlugin"), "my-plugin");
        assert_eq!(kebab_case("HTTPServer"), "http-server");
        assert_eq!(kebab_case("add"), "add");
        assert_eq!(kebab_case("get_v2_data"), "get-v2-data");
    }
}
