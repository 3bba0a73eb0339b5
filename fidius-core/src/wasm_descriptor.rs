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

/// `process_data` → `process-data`, `MyPlugin` → `my-plugin`, `HTTPServer` →
/// `http-server`: the kebab-case form the component model uses for names.
///
/// The rules read ASCII: `_` becomes `-`, and an upper-case letter starts a word
/// after a lower-case letter or digit, or before a lower-case letter in a run of
/// capitals. Other characters are kept as they are.
pub fn kebab_case(name: &str) -> String {
    let mut out = vec![0; kebab_case_into(name, &mut [])];
    kebab_case_into(name, &mut out);
    String::from_utf8(out).expect("only ASCII bytes are changed or inserted")
}

/// Writes the kebab-case form of `name` into `out`, as far as it fits, and returns
/// its full length; an empty `out` measures it.
///
/// This is the one definition of the rules: `#[plugin_interface]` evaluates it at
/// compile time (through [`kebab_const!`](crate::kebab_const)) for the names in a
/// [`WasmInterfaceDescriptor`], and [`kebab_case`] at run time.
pub const fn kebab_case_into(name: &str, out: &mut [u8]) -> usize {
    let b = name.as_bytes();
    let (mut i, mut n, mut last) = (0, 0, 0u8);
    while i < b.len() {
        let c = b[i];
        let prev = if i > 0 { b[i - 1] } else { 0 };
        let next = if i + 1 < b.len() { b[i + 1] } else { 0 };
        let starts_word = c.is_ascii_uppercase()
            && (prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next.is_ascii_lowercase()));
        if (c == b'_' || starts_word) && n > 0 && last != b'-' {
            if n < out.len() {
                out[n] = b'-';
            }
            n += 1;
            last = b'-';
        }
        if c != b'_' {
            if n < out.len() {
                out[n] = c.to_ascii_lowercase();
            }
            n += 1;
            last = c;
        }
        i += 1;
    }
    n
}

/// The kebab-case form of a string constant, as a `&'static str` constant: what
/// `#[plugin_interface]` writes into the WASM descriptor.
#[doc(hidden)]
#[macro_export]
macro_rules! kebab_const {
    ($name:expr) => {{
        const NAME: &str = $name;
        const LEN: usize = $crate::wasm_descriptor::kebab_case_into(NAME, &mut []);
        const BYTES: [u8; LEN] = {
            let mut out = [0u8; LEN];
            $crate::wasm_descriptor::kebab_case_into(NAME, &mut out);
            out
        };
        match ::core::str::from_utf8(&BYTES) {
            ::core::result::Result::Ok(s) => s,
            ::core::result::Result::Err(_) => {
                ::core::panic!("only ASCII bytes are changed or inserted")
            }
        }
    }};
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
        assert_eq!(kebab_case("__private_thing__"), "private-thing-");
        assert_eq!(kebab_case("parseJSONValue"), "parse-json-value");
        assert_eq!(kebab_case("größe_ändern"), "größe-ändern");
    }

    #[test]
    fn kebab_const_matches_run_time() {
        const K: &str = crate::kebab_const!("HTTPServer_v2Data");
        assert_eq!(K, kebab_case("HTTPServer_v2Data"));
        assert_eq!(K, "http-server-v2-data");
    }
}
