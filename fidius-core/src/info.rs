//! Owned, validated views of what a plugin library offers.

//!
//! The types, their lookups and the compatibility rules live here; reading them out
//! of a descriptor is the host's job (`host/validate.rs`), and reading a signature's
//! parts is [`crate::signature`]'s.

use crate::descriptor::BufferStrategyKind;
use crate::interface::{InterfaceInfo, InterfaceMismatch, MethodChange};

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
        match self.mismatches(expected).into_iter().next() {
            Some(first) => Err(first),
            None => Ok(()),
        }
    }

    /// Every way this plugin differs from `expected`, in the order
    /// [`check_compatible`](Self::check_compatible) checks them (it reports the
    /// first): name, hash, version, buffer strategy, then each method that differs.
    /// Empty when the plugin matches.
    pub fn mismatches(&self, expected: &InterfaceInfo) -> Vec<InterfaceMismatch> {
        let mut found = Vec::new();
        if self.interface_name != expected.name {
            found.push(InterfaceMismatch::Name {
                expected: expected.name.to_string(),
                found: self.interface_name.clone(),
            });
        }
        if self.interface_hash != expected.hash {
            let required = |m: &&MethodInfo| !m.optional;
            found.push(InterfaceMismatch::Hash {
                expected: expected.hash,
                found: self.interface_hash,
                changes: MethodChange::between(
                    expected
                        .methods
                        .iter()
                        .filter(|m| !m.is_optional())
                        .map(|m| m.signature),
                    self.methods
                        .iter()
                        .filter(required)
                        .map(|m| m.signature.as_str()),
                ),
            });
        }
        if self.interface_version > expected.version {
            found.push(InterfaceMismatch::Version {
                expected: expected.version,
                found: self.interface_version,
            });
        }
        if self.buffer_strategy != expected.buffer {
            found.push(InterfaceMismatch::Buffer {
                expected: expected.buffer,
                found: self.buffer_strategy.to_string(),
            });
        }
        for (index, (mine, theirs)) in self.methods.iter().zip(expected.methods).enumerate() {
            if mine.signature != theirs.signature {
                found.push(InterfaceMismatch::Method {
                    index,
                    expected: theirs.signature.to_string(),
                    found: mine.signature.clone(),
                });
            }
        }
        found
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
        crate::signature::arguments(&self.signature)
    }

    /// The number of arguments, counted without allocating (a dynamic call checks it
    /// on every call).
    pub fn arity(&self) -> usize {
        crate::signature::arity(&self.signature)
    }

    /// The return type, as spelled in the signature.
    pub fn returns(&self) -> &str {
        crate::signature::returns(&self.signature)
    }

    /// The value of method metadata `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        lookup(&self.metadata, key)
    }
}

pub(crate) fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}
