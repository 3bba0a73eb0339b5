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
///
/// Serializable, so that a plugin process can send it to its host (fidius-isolated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
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
    #[error("the client expects {expected}, and the plugin differs: {mismatch}")]
    InterfaceMismatch {
        /// The interface the client speaks ([`InterfaceInfo::describe`](crate::InterfaceInfo::describe)).
        expected: String,
        /// What differs.
        #[source]
        mismatch: crate::interface::InterfaceMismatch,
    },
    /// An isolated plugin's call passed its deadline. The only way to stop a call is
    /// to kill the process running it: that was done, and a new process is starting.
    #[error("call to `{method}` of plugin `{plugin}` passed its deadline of {deadline:?}; the plugin's process was killed and is being replaced")]
    Timeout {
        /// The plugin's name.
        plugin: String,
        /// The method called.
        method: String,
        /// The deadline it had.
        deadline: std::time::Duration,
    },
    /// An isolated plugin's process ended while this call was in it: it crashed
    /// (a signal, an abort, an exit) or went past its memory limit. The host is
    /// unharmed, and a new process is starting.
    #[error("the process of plugin `{plugin}` {exit}{}", stderr_tail(.stderr))]
    Crashed {
        /// The plugin's name.
        plugin: String,
        /// How the process ended.
        exit: ProcessExit,
        /// The last lines the process wrote to its standard error, oldest first.
        stderr: Vec<String>,
    },
    /// An isolated plugin's process was killed by the host while this call was in
    /// it, for a reason that is not this call's: another call passed its deadline,
    /// or the plugin was shut down.
    #[error("the process of plugin `{plugin}` was killed while this call ran in it: {reason}")]
    ProcessKilled {
        /// The plugin's name.
        plugin: String,
        /// Why it was killed.
        reason: String,
    },
    /// No process of an isolated plugin could take the call (it could not be
    /// restarted, or the plugin was shut down).
    #[error("plugin `{plugin}` has no process to serve the call: {reason}")]
    Unavailable {
        /// The plugin's name.
        plugin: String,
        /// Why.
        reason: String,
    },
}

/// How a plugin's process ended (see [`CallError::Crashed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessExit {
    /// Killed by a signal it did not handle (a segmentation fault, an abort...).
    #[error("was killed by signal {signal} ({name})")]
    Signal {
        /// The signal number.
        signal: i32,
        /// Its name, e.g. `SIGSEGV`.
        name: String,
    },
    /// Exited on its own, with this status code.
    #[error("exited with status {code}")]
    Exited {
        /// The exit status.
        code: i32,
    },
    /// Went past its memory limit, and was ended for it.
    #[error("went past its memory limit of {limit} bytes")]
    MemoryLimit {
        /// The limit, in bytes.
        limit: u64,
    },
}

fn stderr_tail(lines: &[String]) -> String {
    match lines {
        [] => String::new(),
        lines => format!(
            "; its last standard error output:\n  {}",
            lines.join("\n  ")
        ),
    }
}
