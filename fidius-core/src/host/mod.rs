//! Host-side loading (feature `host`): find plugin libraries, validate them, and get
//! callable [`PluginHandle`]s.
//!
//! ```no_run
//! # use fidius_core::host::PluginHost;
//! let host = PluginHost::builder().search_path("plugins").build();
//! for found in host.discover().plugins {
//!     println!("{} offers {}", found.path.display(), found.info.name);
//! }
//! let handle = host.load("MyImpl")?;
//! let out: String = handle.call_method(0, &("hello",))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod dynamic;
mod handle;
mod library;
mod load_error;
mod sealed;
pub mod trust;
mod validate;
// Each platform's header checks are pure functions, compiled (and unit-tested)
// everywhere; only the platform's own is used outside tests.
#[cfg_attr(any(target_os = "macos", target_os = "ios", windows), allow(dead_code))]
mod elf;
mod header;
#[cfg_attr(not(any(target_os = "macos", target_os = "ios")), allow(dead_code))]
mod macho;
#[cfg_attr(not(windows), allow(dead_code))]
mod pe;
pub mod platform;

pub use handle::PluginHandle;
pub use library::PluginLibrary;
pub use load_error::LoadError;
pub use sealed::{TrustedCopy, MAX_LIBRARY_SIZE};
pub use validate::{MAX_METADATA, MAX_METHODS};

use crate::info::PluginInfo;
use crate::interface::{Interface, InterfaceInfo};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use trust::Trust;

/// Finds and loads plugins from search paths.
#[derive(Debug, Clone, Default)]
pub struct PluginHost {
    search_paths: Vec<PathBuf>,
    expected: Option<InterfaceInfo>,
    trust: Option<Arc<Trust>>,
}

/// Builds a [`PluginHost`].
#[derive(Debug, Clone, Default)]
pub struct PluginHostBuilder {
    host: PluginHost,
}

impl PluginHostBuilder {
    /// Adds a directory to search for plugin libraries (files ending in
    /// [`platform::DYLIB_EXTENSION`]).
    pub fn search_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.host.search_paths.push(dir.into());
        self
    }

    /// Requires every loaded plugin to implement interface `I` (write
    /// `dyn YourTrait`): same name and hash, an interface version not newer than
    /// `I`'s, the same buffer strategy and method table.
    pub fn expect_interface<I: Interface + ?Sized>(mut self) -> Self {
        self.host.expected = Some(I::INFO);
        self
    }

    /// As [`expect_interface`](Self::expect_interface), from an [`InterfaceInfo`] value.
    pub fn expect_interface_info(mut self, info: InterfaceInfo) -> Self {
        self.host.expected = Some(info);
        self
    }

    /// Loads only builds that `trust` accepts: signed by one of its keys, or with one
    /// of its pinned digests. Every library is then copied, checked and loaded from
    /// the copy ([`PluginLibrary::open_trusted`]); an untrusted one is
    /// [`LoadError::Untrusted`] and nothing of it runs.
    pub fn trust(mut self, trust: Trust) -> Self {
        self.host.trust = Some(Arc::new(trust));
        self
    }

    /// The host.
    pub fn build(self) -> PluginHost {
        self.host
    }
}

/// A plugin found by [`PluginHost::discover`].
#[derive(Debug, Clone)]
pub struct DiscoveredPlugin {
    /// The library file.
    pub path: PathBuf,
    /// What the plugin offers.
    pub info: PluginInfo,
}

/// What [`PluginHost::discover`] found: the plugins, and every library file it could
/// not use, with the reason. Nothing is skipped silently.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Loadable plugins (matching the expected interface, when one is set).
    pub plugins: Vec<DiscoveredPlugin>,
    /// Files that could not be read or loaded, and plugins that do not match the
    /// expected interface.
    pub failures: Vec<LoadError>,
}

impl PluginHost {
    /// Starts building a host.
    pub fn builder() -> PluginHostBuilder {
        PluginHostBuilder::default()
    }

    /// The search paths.
    pub fn search_paths(&self) -> &[PathBuf] {
        &self.search_paths
    }

    /// The interface this host requires, if any.
    pub fn expected_interface(&self) -> Option<&InterfaceInfo> {
        self.expected.as_ref()
    }

    /// The trust this host loads under, if any.
    pub fn trust(&self) -> Option<&Trust> {
        self.trust.as_deref()
    }

    /// Opens one library, through a checked copy when the host has a [`Trust`].
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Arc<PluginLibrary>, LoadError> {
        match &self.trust {
            Some(trust) => PluginLibrary::open_trusted(path, trust),
            None => PluginLibrary::open(path),
        }
    }

    /// The library files in the search paths, sorted by path. A search path that
    /// cannot be read is reported as a failure.
    fn library_files(&self, failures: &mut Vec<LoadError>) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for dir in &self.search_paths {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(source) => {
                    failures.push(LoadError::Io {
                        path: dir.clone(),
                        source,
                    });
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) == Some(platform::DYLIB_EXTENSION)
                    && path.is_file()
                {
                    files.push(path);
                }
            }
        }
        files.sort();
        files
    }

    /// Loads each library in the search paths and reports what it offers. Libraries
    /// are closed again before this returns (unless a handle elsewhere holds them).
    pub fn discover(&self) -> Discovery {
        let mut discovery = Discovery::default();
        for path in self.library_files(&mut discovery.failures) {
            match self.open(&path) {
                Ok(lib) => {
                    for info in lib.plugins() {
                        match self.check(&path, info) {
                            Ok(()) => discovery.plugins.push(DiscoveredPlugin {
                                path: path.clone(),
                                info: info.clone(),
                            }),
                            Err(e) => discovery.failures.push(e),
                        }
                    }
                }
                Err(e) => discovery.failures.push(e),
            }
        }
        discovery
    }

    fn check(&self, path: &Path, info: &PluginInfo) -> Result<(), LoadError> {
        match &self.expected {
            Some(expected) => info
                .check_compatible(expected)
                .map_err(|m| LoadError::from_mismatch(path.to_path_buf(), info.name.clone(), m)),
            None => Ok(()),
        }
    }

    /// Loads plugin `name` from the first library in the search paths (in path order)
    /// that contains it.
    ///
    /// When a plugin of that name exists but does not match the expected interface,
    /// that mismatch is returned rather than "not found". With a [`Trust`], when no
    /// library could be looked into and one was refused as untrusted, that
    /// [`LoadError::Untrusted`] is returned; otherwise "not found" lists every library
    /// it could not use, untrusted ones included, with the reason.
    pub fn load(&self, name: &str) -> Result<PluginHandle, LoadError> {
        let mut skipped = Vec::new();
        let mut available = Vec::new();
        let mut mismatch = None;
        let files = self.library_files(&mut skipped);
        for path in &files {
            let lib = match self.open(path) {
                Ok(lib) => lib,
                Err(e) => {
                    skipped.push(e);
                    continue;
                }
            };
            available.extend(lib.plugins().map(|p| p.name.clone()));
            match lib.handle(name, self.expected.as_ref()) {
                Ok(handle) => return Ok(handle),
                Err(LoadError::PluginNotFound { .. }) => {}
                Err(e) => mismatch = mismatch.or(Some(e)),
            }
        }
        if let Some(mismatch) = mismatch {
            return Err(mismatch);
        }
        // Nothing could be looked into, and a library was refused as untrusted: that
        // refusal is the answer (its plugins are unknown, but this is what to fix).
        if available.is_empty() {
            if let Some(i) = skipped
                .iter()
                .position(|e| matches!(e, LoadError::Untrusted { .. }))
            {
                return Err(skipped.swap_remove(i));
            }
        }
        Err(LoadError::PluginNotFound {
            name: name.to_string(),
            searched: self.search_paths.clone(),
            available,
            skipped: skipped.iter().map(ToString::to_string).collect(),
            libraries: files.len(),
        })
    }

    /// Loads plugin `name` from the library at `path`, checked against the expected
    /// interface when one is set.
    pub fn load_from(&self, path: impl AsRef<Path>, name: &str) -> Result<PluginHandle, LoadError> {
        self.open(path)?.handle(name, self.expected.as_ref())
    }
}
