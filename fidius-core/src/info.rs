//! Owned, validated views of what a plugin library offers.

use crate::descriptor::{
    read_c_str, BufferStrategyKind, MetaEntry, PluginDescriptor, METHOD_DIRECT,
    METHOD_DIRECT_BYTES, METHOD_DIRECT_TEXT, METHOD_OPTIONAL, METHOD_RAW, METHOD_RESULT,
    METHOD_STREAMING,
};
use crate::interface::{InterfaceInfo, InterfaceMismatch};

/// The most methods a descriptor may declare; more is treated as corruption.
pub const MAX_METHODS: u32 = 4096;
/// The most metadata pairs one list may hold; more is treated as corruption.
pub const MAX_METADATA: u32 = 4096;

/// The fast path a method has besides its wire slot, decided by its types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FastPath {
    /// Only the wire slot.
    None,
    /// Every argument and the result are plain scalars, passed as they are.
    Scalar,
    /// `fn(Vec<u8>) -> Vec<u8>`: bytes in and out, unframed.
    Bytes,
    /// `fn(String) -> String`: UTF-8 in and out, unframed.
    Text,
}

/// One method of a loaded plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MethodInfo {
    /// Vtable index.
    pub index: usize,
    /// Method name.
    pub name: String,
    /// Canonical signature, e.g. `process(String)->String`.
    pub signature: String,
    /// Declared `#[optional]`.
    pub optional: bool,
    /// For optional methods, the interface version that added it.
    pub since: u32,
    /// Implemented by this plugin (always true for required methods).
    pub present: bool,
    /// `#[wire(raw)]`.
    pub raw: bool,
    /// Returns `Result<_, PluginError>`.
    pub fallible: bool,
    /// Returns a `Stream`.
    pub streaming: bool,
    /// Which fast path, besides the wire slot, the method has.
    pub fast_path: FastPath,
    /// `#[method_meta]` pairs, in declaration order.
    pub metadata: Vec<(String, String)>,
}

/// What one plugin in a library is, as read from its descriptor.
// Serializable so that a plugin process can describe what it loaded to its host
// (fidius-isolated).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginInfo {
    /// The plugin (implementing type) name.
    pub name: String,
    /// The interface (trait) name.
    pub interface_name: String,
    /// The interface hash.
    pub interface_hash: u64,
    /// The interface version the plugin was built against.
    pub interface_version: u32,
    /// The buffer strategy.
    pub buffer_strategy: BufferStrategyKind,
    /// Capability bits of the optional methods it implements.
    pub capabilities: u64,
    /// Methods in vtable order.
    pub methods: Vec<MethodInfo>,
    /// `#[trait_meta]` pairs.
    pub trait_metadata: Vec<(String, String)>,
    /// It carries its state across versions (see [`crate::state`]).
    #[serde(default)]
    pub carries_state: bool,
}

impl PluginInfo {
    /// Reads and checks a descriptor, without calling into the plugin.
    ///
    /// Returns a description of the first problem found: null or non-UTF-8 names, a
    /// null vtable, an absurd method count, an unknown buffer strategy.
    ///
    /// # Safety
    /// `desc` must point at memory laid out as a [`PluginDescriptor`] whose pointers,
    /// where not null, point at data of the documented shapes. The caller has
    /// already checked `descriptor_size` and `abi_version`.
    pub unsafe fn from_descriptor(desc: &PluginDescriptor) -> Result<Self, String> {
        // SAFETY: the caller vouches that the plugin name, where not null, points at a
        // NUL-terminated string; read_c_str checks for null and for UTF-8.
        let name = unsafe { read_c_str(desc.plugin_name) }
            .ok_or("plugin name is null or not UTF-8")?
            .to_string();
        // SAFETY: as for the plugin name.
        let interface_name = unsafe { read_c_str(desc.interface_name) }
            .ok_or_else(|| format!("plugin `{name}`: interface name is null or not UTF-8"))?
            .to_string();
        let buffer_strategy =
            BufferStrategyKind::from_raw(desc.buffer_strategy).ok_or_else(|| {
                format!(
                    "plugin `{name}`: unknown buffer strategy {}",
                    desc.buffer_strategy
                )
            })?;
        if desc.method_count > MAX_METHODS {
            return Err(format!(
                "plugin `{name}`: method count {} exceeds the limit of {MAX_METHODS}",
                desc.method_count
            ));
        }
        if desc.method_count > 0 && (desc.vtable.is_null() || desc.methods.is_null()) {
            return Err(format!("plugin `{name}`: null vtable or method table"));
        }
        if desc.free_buffer.is_none() {
            return Err(format!("plugin `{name}`: null free_buffer function"));
        }
        let mut methods = Vec::with_capacity(desc.method_count as usize);
        for index in 0..desc.method_count as usize {
            // SAFETY: the method table is not null (checked above) and, as the caller
            // vouches, holds method_count entries; index is below that.
            let m = unsafe { &*desc.methods.add(index) };
            // SAFETY: the vtable is not null (checked above) and holds method_count
            // slots; a slot is read as a plain pointer first, since a null function
            // pointer would be invalid as a fn type.
            if unsafe { (*(desc.vtable as *const *const ()).add(index)).is_null() } {
                return Err(format!("plugin `{name}`: method {index} has a null slot"));
            }
            // SAFETY: a method's name, where not null, is a NUL-terminated string (the
            // caller's promise); read_c_str checks for null and UTF-8.
            let method_name = unsafe { read_c_str(m.name) }
                .ok_or_else(|| format!("plugin `{name}`: method {index} has no valid name"))?;
            // SAFETY: as for the method's name.
            let signature = unsafe { read_c_str(m.signature) }.ok_or_else(|| {
                format!("plugin `{name}`: method `{method_name}` has no valid signature")
            })?;
            let optional = m.flags & METHOD_OPTIONAL != 0;
            let present =
                !optional || (m.optional_bit < 64 && desc.capabilities >> m.optional_bit & 1 == 1);
            methods.push(MethodInfo {
                index,
                name: method_name.to_string(),
                signature: signature.to_string(),
                optional,
                since: m.since,
                present,
                raw: m.flags & METHOD_RAW != 0,
                fallible: m.flags & METHOD_RESULT != 0,
                streaming: m.flags & METHOD_STREAMING != 0,
                fast_path: if m.flags & METHOD_DIRECT != 0 {
                    FastPath::Scalar
                } else if m.flags & METHOD_DIRECT_BYTES != 0 {
                    FastPath::Bytes
                } else if m.flags & METHOD_DIRECT_TEXT != 0 {
                    FastPath::Text
                } else {
                    FastPath::None
                },
                // SAFETY: a method's metadata, where not null, holds metadata_count
                // entries of NUL-terminated strings (the caller's promise); read_meta
                // checks for null and bounds the count.
                metadata: unsafe { read_meta(m.metadata, m.metadata_count) }
                    .map_err(|e| format!("plugin `{name}`: method `{method_name}`: {e}"))?,
            });
        }
        // SAFETY: as for a method's metadata.
        let trait_metadata = unsafe { read_meta(desc.trait_metadata, desc.trait_metadata_count) }
            .map_err(|e| format!("plugin `{name}`: trait metadata: {e}"))?;
        Ok(Self {
            name,
            interface_name,
            interface_hash: desc.interface_hash,
            interface_version: desc.interface_version,
            buffer_strategy,
            capabilities: desc.capabilities,
            methods,
            trait_metadata,
            carries_state: desc.save_state.is_some() && desc.restore_state.is_some(),
        })
    }

    /// The method called `name`.
    pub fn method(&self, name: &str) -> Option<&MethodInfo> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// The value of trait metadata `key`.
    pub fn trait_meta(&self, key: &str) -> Option<&str> {
        lookup(&self.trait_metadata, key)
    }

    /// `Interface v<version> (hash 0x…, <buffer strategy>)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} v{} (hash {:#018x}, {})",
            self.interface_name, self.interface_version, self.interface_hash, self.buffer_strategy
        )
    }

    /// Checks that this plugin can serve a host built against `expected`.
    ///
    /// Rules: same trait name and hash (same required methods); a plugin interface
    /// version not newer than the host's (older plugins simply lack later optional
    /// methods); same buffer strategy; and every method both sides know sits at the
    /// same vtable index with the same signature (methods may only be appended).
    pub fn check_compatible(&self, expected: &InterfaceInfo) -> Result<(), InterfaceMismatch> {
        if self.interface_name != expected.name {
            return Err(InterfaceMismatch::Name {
                expected: expected.name.to_string(),
                found: self.interface_name.clone(),
            });
        }
        if self.interface_hash != expected.hash {
            return Err(InterfaceMismatch::Hash {
                expected: expected.hash,
                found: self.interface_hash,
            });
        }
        if self.interface_version > expected.version {
            return Err(InterfaceMismatch::Version {
                expected: expected.version,
                found: self.interface_version,
            });
        }
        if self.buffer_strategy != expected.buffer {
            return Err(InterfaceMismatch::Buffer {
                expected: expected.buffer,
                found: self.buffer_strategy.to_string(),
            });
        }
        for (index, (mine, theirs)) in self.methods.iter().zip(expected.methods).enumerate() {
            if mine.signature != theirs.signature {
                return Err(InterfaceMismatch::Method {
                    index,
                    expected: theirs.signature.to_string(),
                    found: mine.signature.clone(),
                });
            }
        }
        Ok(())
    }
}

impl MethodInfo {
    /// The argument types, as spelled in the signature.
    ///
    /// ```
    /// # let m = fidius_core::MethodInfo { index: 0, name: "f".into(),
    /// #   signature: "f(HashMap<String,u32>,(u8,u8))->Vec<u8>".into(), optional: false, since: 0,
    /// #   present: true, raw: false, fallible: false, streaming: false,
    /// #   fast_path: fidius_core::FastPath::None, metadata: vec![] };
    /// assert_eq!(m.arguments(), ["HashMap<String,u32>", "(u8,u8)"]);
    /// assert_eq!(m.arity(), 2);
    /// assert_eq!(m.returns(), "Vec<u8>");
    /// ```
    pub fn arguments(&self) -> Vec<&str> {
        split_top_level(self.argument_list())
    }

    /// What stands between the signature's parentheses; empty when the signature is
    /// malformed (a plugin's signature is its own text, and must not make the host
    /// panic).
    fn argument_list(&self) -> &str {
        let Some(open) = self.signature.find('(') else {
            return "";
        };
        self.signature
            .get(open + 1..self.returns_at().saturating_sub(1))
            .unwrap_or("")
    }

    /// The number of arguments, counted without allocating (a dynamic call checks it
    /// on every call).
    pub fn arity(&self) -> usize {
        let inner = self.argument_list();
        if inner.is_empty() {
            return 0;
        }
        let mut depth = 0i32;
        1 + inner
            .bytes()
            .filter(|&b| {
                match b {
                    b'(' | b'<' | b'[' => depth += 1,
                    b')' | b'>' | b']' => depth -= 1,
                    _ => {}
                }
                b == b',' && depth == 0
            })
            .count()
    }

    /// The return type, as spelled in the signature.
    pub fn returns(&self) -> &str {
        let at = self.returns_at();
        self.signature[at..].trim_start_matches("->")
    }

    /// Index of the `->` after the argument list (or the end).
    fn returns_at(&self) -> usize {
        let mut depth = 0i32;
        let bytes = self.signature.as_bytes();
        let start = self.signature.find('(').unwrap_or(0);
        for (i, &b) in bytes.iter().enumerate().skip(start) {
            match b {
                b'(' | b'<' | b'[' => depth += 1,
                b')' | b'>' | b']' => {
                    depth -= 1;
                    if depth == 0 && b == b')' {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        self.signature.len()
    }

    /// The value of method metadata `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        lookup(&self.metadata, key)
    }
}

/// Splits `a,b<c,d>,(e,f)` at the commas not nested in brackets.
fn split_top_level(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'(' | b'<' | b'[' => depth += 1,
            b')' | b'>' | b']' => depth -= 1,
            b',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// # Safety
/// `ptr` must be null or point at `count` [`MetaEntry`] values.
unsafe fn read_meta(ptr: *const MetaEntry, count: u32) -> Result<Vec<(String, String)>, String> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() || count > MAX_METADATA {
        return Err(format!("invalid metadata table ({count} entries)"));
    }
    (0..count as usize)
        .map(|i| {
            // SAFETY: `i < count` and the caller vouches for `count` entries at `ptr`.
            let e = unsafe { &*ptr.add(i) };
            // SAFETY: entries hold null or NUL-terminated strings.
            match unsafe { (read_c_str(e.key), read_c_str(e.value)) } {
                (Some(k), Some(v)) => Ok((k.to_string(), v.to_string())),
                _ => Err(format!("metadata entry {i} is null or not UTF-8")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(signature: &str) -> MethodInfo {
        MethodInfo {
            index: 0,
            name: "f".into(),
            signature: signature.into(),
            optional: false,
            since: 0,
            present: true,
            raw: false,
            fallible: false,
            streaming: false,
            fast_path: FastPath::None,
            metadata: vec![],
        }
    }

    #[test]
    fn malformed_signatures_read_as_no_arguments_without_panicking() {
        // A plugin's signature is its own text: whatever it says, reading it must not
        // panic the host.
        for sig in [
            "f(", "f", "(", ")(", "f(((", "f()->", "", "f)(", "é(", "f(é",
        ] {
            let m = method(sig);
            let _ = (m.arity(), m.arguments(), m.returns());
        }
        assert_eq!(method("f(a,(b,c),Vec<(d,e)>)->x").arity(), 3);
        assert_eq!(method("f()->x").arity(), 0);
    }
}
