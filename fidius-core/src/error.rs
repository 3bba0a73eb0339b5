//! Errors that cross the boundary ([`PluginError`]) and errors a host sees when it
//! calls a plugin ([`CallError`]).

use serde::{Deserialize, Serialize};

/// An error a plugin method returns on purpose, as `Err(PluginError)`.
///
/// It travels to the host intact and arrives as [`CallError::Plugin`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct PluginError {
    /// A short machine-readable code, e.g. `"INVALID_INPUT"`.
    pub code: String,
    /// A human-readable message.
    pub message: String,
    /// Optional free-form details (for example JSON).
    #[serde(default)]
    pub details: Option<String>,
}

impl PluginError {
    /// A new error with a code and a message.
    ///
    /// ```
    /// let e = fidius_core::PluginError::new("EMPTY", "input was empty");
    /// assert_eq!(e.to_string(), "EMPTY: input was empty");
    /// ```
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            details: None,
        }
    }

    /// Adds free-form details.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }
}

/// Why a call into a plugin did not produce a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The method returned `Err(PluginError)`.
    #[error("plugin returned an error: {0}")]
    Plugin(PluginError),
    /// The method panicked; the panic was caught at the boundary.
    #[error("plugin panicked: {0}")]
    Panic(String),
    /// The method is optional and this plugin does not implement it. The call did not
    /// cross the boundary.
    #[error("method `{method}` is not implemented by plugin `{plugin}`")]
    NotImplemented {
        /// The plugin's name.
        plugin: String,
        /// The method's name.
        method: String,
    },
    /// No method has this index.
    #[error("plugin `{plugin}` has {count} methods; there is no method with index {index}")]
    InvalidMethodIndex {
        /// The plugin's name.
        plugin: String,
        /// The index asked for.
        index: usize,
        /// How many methods the plugin has.
        count: usize,
    },
    /// Encoding the arguments, or decoding the result, failed on the host side.
    #[error("serialization failed on the host: {0}")]
    Serialization(String),
    /// The plugin could not decode the arguments or encode its result.
    #[error("serialization failed in the plugin: {0}")]
    PluginSerialization(String),
    /// The plugin returned a status code this host does not know.
    #[error("plugin returned unknown status code {0}")]
    UnknownStatus(i32),
    /// A dynamic call named a method the plugin does not have.
    #[error("plugin `{plugin}` has no method `{method}`; it has: {}", .available.join(", "))]
    UnknownMethod {
        /// The plugin's name.
        plugin: String,
        /// The name asked for.
        method: String,
        /// The methods it has.
        available: Vec<String>,
    },
    /// A dynamic call passed the wrong number of arguments.
    #[error("method `{signature}` takes {expected} argument(s), {found} given")]
    ArgumentCount {
        /// The method's signature.
        signature: String,
        /// How many it takes.
        expected: usize,
        /// How many were given.
        found: usize,
    },
    /// A dynamic call used the plain-call API on a streaming method, or the other way
    /// round.
    #[error("method `{method}` {}", if *.streaming { "returns a stream: use the streaming call" } else { "does not return a stream" })]
    StreamingMismatch {
        /// The method.
        method: String,
        /// Whether the method streams.
        streaming: bool,
    },
    /// A typed client was bound to a plugin that implements another interface.
    #[error("interface mismatch: the client expects {expected}, the plugin implements {found}")]
    InterfaceMismatch {
        /// What the client expects.
        expected: String,
        /// What the plugin implements.
        found: String,
    },
}
