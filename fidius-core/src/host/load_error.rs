//! [`LoadError`]: why a library or plugin could not be loaded.

use crate::interface::InterfaceMismatch;
use std::path::PathBuf;

/// Why a plugin library, or a plugin in it, could not be loaded. Every variant names
/// the file, and both sides of any mismatch.
///
/// Serializable, so that a plugin process can report its own loading to its host
/// (fidius-isolated); an I/O error travels as its kind, OS code and message.
///
/// Its `Debug` is its message after the variant's name, so that a `main` returning
/// `Result<(), Box<dyn Error>>` prints what to do, not the fields.
#[derive(thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: cannot read file: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        #[serde(with = "io_error")]
        source: std::io::Error,
    },
    /// The file is not a shared library of this platform (empty, text, random bytes,
    /// truncated header...).
    #[error("{path}: not a loadable library: {reason}")]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A shared library built for another architecture or word size.
    #[error("{path}: built for {found}, but this host is {expected}")]
    WrongArchitecture {
        /// The file.
        path: PathBuf,
        /// This host's architecture.
        expected: String,
        /// The library's architecture.
        found: String,
    },
    /// The dynamic loader refused the library (truncated, missing dependencies...).
    #[error("{path}: the dynamic loader failed: {reason}")]
    LibraryLoad {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The library does not export `fidius_get_registry`: it is not a fidius plugin,
    /// or a plugin crate that forgot `fidius::fidius_plugin_registry!();`.
    #[error(
        "{path}: not a fidius plugin: it exports no `fidius_get_registry`. A plugin crate \
         registers its plugins with `fidius::fidius_plugin_registry!();`, written once in \
         its lib.rs"
    )]
    MissingRegistry {
        /// The file.
        path: PathBuf,
    },
    /// `fidius_get_registry` returned a null pointer.
    #[error("{path}: `fidius_get_registry` returned null")]
    NullRegistry {
        /// The file.
        path: PathBuf,
    },
    /// The registry does not start with [`FIDIUS_MAGIC`](crate::registry::FIDIUS_MAGIC).
    #[error("{path}: bad registry magic: expected {expected:02x?}, found {found:02x?}")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic this host knows.
        expected: [u8; 8],
        /// The bytes found.
        found: [u8; 8],
    },
    /// Another registry layout version.
    #[error("{path}: registry version: host reads {expected}, library has {found}")]
    RegistryVersion {
        /// The file.
        path: PathBuf,
        /// This host's registry version.
        expected: u32,
        /// The library's.
        found: u32,
    },
    /// The plugin was built against an incompatible fidius ABI.
    #[error(
        "{path}: plugin #{index} was built with fidius ABI {found}, this host uses ABI {expected}"
    )]
    AbiVersion {
        /// The file.
        path: PathBuf,
        /// Index of the descriptor in the registry.
        index: usize,
        /// This host's ABI (crate version range).
        expected: String,
        /// The plugin's.
        found: String,
    },
    /// A descriptor is smaller than this host's descriptor layout.
    #[error(
        "{path}: plugin #{index} descriptor is {found} bytes, this host needs at least {expected}"
    )]
    DescriptorTooSmall {
        /// The file.
        path: PathBuf,
        /// Index of the descriptor.
        index: usize,
        /// The host's descriptor size.
        expected: u32,
        /// The plugin's.
        found: u32,
    },
    /// A descriptor is malformed: null names or vtable, absurd counts...
    #[error("{path}: invalid plugin descriptor: {reason}")]
    InvalidDescriptor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Two plugins in one library share a name.
    #[error("{path}: two plugins are both named `{name}`")]
    DuplicatePlugin {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// The plugin does not implement the interface the host expects: another trait,
    /// other required methods, a newer interface version, another buffer strategy,
    /// or a method table that differs. `mismatch` says which, with both sides.
    #[error("{path}: plugin `{plugin}` does not match the expected interface: {mismatch}")]
    InterfaceMismatch {
        /// The file.
        path: PathBuf,
        /// The plugin.
        plugin: String,
        /// What differs.
        #[source]
        mismatch: InterfaceMismatch,
    },
    /// The host has a [`Trust`](super::trust::Trust) and this build is not trusted:
    /// unsigned, signed by an unknown key, a signature that does not match, or a
    /// digest that is not pinned. Nothing of it was loaded.
    #[error("{path}: refused, not trusted: {reason}")]
    Untrusted {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        reason: super::trust::Untrusted,
    },
    /// No plugin of that name in the file or search paths. The message also names
    /// every library file that could not be used, with the reason, and says so when
    /// the search found no library file at all.
    #[error("{}", not_found(.name, .searched, .available, .skipped, *.libraries))]
    PluginNotFound {
        /// The name asked for.
        name: String,
        /// Where it was looked for.
        searched: Vec<PathBuf>,
        /// The plugin names that were found.
        available: Vec<String>,
        /// The library files that could not be used, each as its error's message.
        skipped: Vec<String>,
        /// How many library files were found.
        libraries: usize,
    },
}

/// An `io::Error` as its OS error code (when it has one) or its message.
mod io_error {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Wire {
        os_code: Option<i32>,
        message: String,
    }

    pub fn serialize<S: Serializer>(e: &std::io::Error, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            os_code: e.raw_os_error(),
            message: e.to_string(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::io::Error, D::Error> {
        let wire = Wire::deserialize(d)?;
        Ok(match wire.os_code {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::other(wire.message),
        })
    }
}

fn not_found(
    name: &str,
    searched: &[PathBuf],
    available: &[String],
    skipped: &[String],
    libraries: usize,
) -> String {
    let mut message = format!(
        "plugin `{name}` not found in {}; available: [{}]",
        display_paths(searched),
        available.join(", ")
    );
    if libraries == 0 && !searched.is_empty() {
        let ext = super::platform::DYLIB_EXTENSION;
        message.push_str(&format!(
            ". No dynamic library (*.{ext}) is there: a plugin crate must be built as one, \
             with `crate-type = [\"cdylib\"]` under `[lib]` in its Cargo.toml"
        ));
    }
    for reason in skipped {
        message.push_str(&format!(". Not usable: {reason}"));
    }
    message
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "no search paths".to_string();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$found` with `$path` bound to the file of a [`LoadError`] that names one, else
/// `$none` (only a plugin-not-found error names none).
macro_rules! file_of {
    ($error:expr, $path:ident => $found:expr, $none:expr) => {
        match $error {
            LoadError::PluginNotFound { .. } => $none,
            LoadError::Io { path: $path, .. }
            | LoadError::NotALibrary { path: $path, .. }
            | LoadError::WrongArchitecture { path: $path, .. }
            | LoadError::LibraryLoad { path: $path, .. }
            | LoadError::MissingRegistry { path: $path }
            | LoadError::NullRegistry { path: $path }
            | LoadError::BadMagic { path: $path, .. }
            | LoadError::RegistryVersion { path: $path, .. }
            | LoadError::AbiVersion { path: $path, .. }
            | LoadError::DescriptorTooSmall { path: $path, .. }
            | LoadError::InvalidDescriptor { path: $path, .. }
            | LoadError::DuplicatePlugin { path: $path, .. }
            | LoadError::InterfaceMismatch { path: $path, .. }
            | LoadError::Untrusted { path: $path, .. } => $found,
        }
    };
}

impl std::fmt::Debug for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {self}", self.kind())
    }
}

impl LoadError {
    /// The variant's name, for `Debug`.
    fn kind(&self) -> &'static str {
        match self {
            LoadError::Io { .. } => "Io",
            LoadError::NotALibrary { .. } => "NotALibrary",
            LoadError::WrongArchitecture { .. } => "WrongArchitecture",
            LoadError::LibraryLoad { .. } => "LibraryLoad",
            LoadError::MissingRegistry { .. } => "MissingRegistry",
            LoadError::NullRegistry { .. } => "NullRegistry",
            LoadError::BadMagic { .. } => "BadMagic",
            LoadError::RegistryVersion { .. } => "RegistryVersion",
            LoadError::AbiVersion { .. } => "AbiVersion",
            LoadError::DescriptorTooSmall { .. } => "DescriptorTooSmall",
            LoadError::InvalidDescriptor { .. } => "InvalidDescriptor",
            LoadError::DuplicatePlugin { .. } => "DuplicatePlugin",
            LoadError::InterfaceMismatch { .. } => "InterfaceMismatch",
            LoadError::Untrusted { .. } => "Untrusted",
            LoadError::PluginNotFound { .. } => "PluginNotFound",
        }
    }

    /// The error for plugin `plugin` of `path`, which does not match the interface.
    pub fn from_mismatch(path: PathBuf, plugin: String, mismatch: InterfaceMismatch) -> Self {
        Self::InterfaceMismatch {
            path,
            plugin,
            mismatch,
        }
    }

    /// The file this error is about, when there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        file_of!(self, path => Some(path.as_path()), None)
    }

    /// The same error about `path` instead: for a library loaded through another
    /// name (a descriptor's `/proc/self/fd/N`, say) than the one its user knows.
    /// A plugin-not-found error lists the paths searched, which are all replaced.
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        let new = path.into();
        match &mut self {
            Self::PluginNotFound { searched, .. } => *searched = vec![new],
            other => file_of!(other, path => *path = new, ()),
        }
        self
    }
}
