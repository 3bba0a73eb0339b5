//! [`PluginLibrary`]: one loaded and validated plugin library.

use super::sealed::SealedCopy;
use super::trust::{Trust, Verified};
use super::TrustedCopy;
use super::{platform, LoadError, PluginHandle};
use crate::descriptor::{abi_version_string, PluginDescriptor, ABI_VERSION};
use crate::info::PluginInfo;
use crate::interface::InterfaceInfo;
use crate::registry::{
    GetRegistryFn, PluginRegistry, FIDIUS_MAGIC, REGISTRY_SYMBOL, REGISTRY_VERSION,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Most plugins one registry may list; more is treated as corruption.
const MAX_PLUGINS: u32 = 4096;

/// A loaded plugin library whose registry and descriptors passed validation.
///
/// Shared through an `Arc`: every [`PluginHandle`] from it holds a clone, so the
/// library stays mapped until the last handle (and every client built on one) is
/// dropped. Then it is closed.
pub struct PluginLibrary {
    path: PathBuf,
    plugins: Vec<(PluginInfo, *const PluginDescriptor)>,
    /// This host and the library both use [`SharedAllocator`](crate::SharedAllocator)
    /// over the same C library.
    shares_allocator: bool,
    /// How the build was trusted, when the host asked ([`PluginLibrary::open_trusted`]).
    verified: Option<Verified>,
    /// Closed in `drop`, after everything that points into it.
    library: Option<libloading::Library>,
    /// The sealed copy it was loaded from, if any: let go of only once the library is
    /// closed (see [`SealedCopy::release`]).
    copy: Option<SealedCopy>,
}

impl Drop for PluginLibrary {
    fn drop(&mut self) {
        drop(self.library.take());
        if let Some(copy) = self.copy.take() {
            copy.release();
        }
    }
}

// SAFETY: after validation the descriptors are immutable 'static data of a library
// that stays loaded as long as this value; the raw pointers are only read.
unsafe impl Send for PluginLibrary {}
// SAFETY: as above.
unsafe impl Sync for PluginLibrary {}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("path", &self.path)
            .field(
                "plugins",
                &self
                    .plugins
                    .iter()
                    .map(|(i, _)| &i.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PluginLibrary {
    /// Loads `path` and validates it: a shared library of this platform and
    /// architecture, the registry symbol, magic, registry version, and every
    /// descriptor's size, ABI version and contents. No plugin method runs.
    ///
    /// Loading runs the library's initialisers (as any `dlopen` does): only load
    /// libraries you trust. See the crate's trust model.
    pub fn open(path: impl AsRef<Path>) -> Result<Arc<Self>, LoadError> {
        Self::open_at(path.as_ref(), None).map(Arc::new)
    }

    /// As [`open`](Self::open), for a host with a [`Trust`]: the library is copied
    /// first, to a copy nobody can change, and its signature file
    /// ([`signature_path`](super::trust::signature_path)) read with it; only when
    /// `trust` accepts the copy's content is the copy loaded. A library or signature
    /// changing meanwhile is read again, never judged half old and half new.
    ///
    /// An untrusted build is [`LoadError::Untrusted`], and nothing of it runs.
    pub fn open_trusted(path: impl AsRef<Path>, trust: &Trust) -> Result<Arc<Self>, LoadError> {
        let path = path.as_ref();
        let (copy, verified) = TrustedCopy::make(path, trust)?.into_parts();
        let mut library = match Self::open_at(copy.load_path(), Some(path)) {
            Ok(library) => library,
            Err(e) => {
                // Closed already, but perhaps still mapped: the copy knows what to do.
                copy.release();
                return Err(e.with_path(path));
            }
        };
        #[cfg(feature = "host")]
        tracing::debug!(path = %path.display(), %verified, "trusted plugin library");
        library.verified = Some(verified);
        library.copy = Some(copy);
        Ok(Arc::new(library))
    }

    /// How the build was trusted, when it was loaded with
    /// [`open_trusted`](Self::open_trusted).
    pub fn verified(&self) -> Option<&Verified> {
        self.verified.as_ref()
    }

    /// Opens `path`, known to its user as `known_as` when that is given.
    fn open_at(path: &Path, known_as: Option<&Path>) -> Result<Self, LoadError> {
        platform::check_library_file(path)?;
        let library = open_library(path)?;
        let registry_fn: GetRegistryFn = {
            let symbol = format!("{REGISTRY_SYMBOL}\0");
            // SAFETY: we only read the symbol's address; its type is fixed by the fidius
            // ABI, which the magic and version checks below confirm before trusting it.
            let sym = unsafe { library.get::<GetRegistryFn>(symbol.as_bytes()) }.map_err(|_| {
                LoadError::MissingRegistry {
                    path: path.to_path_buf(),
                }
            })?;
            *sym
        };
        // SAFETY: a library exporting `fidius_get_registry` declares itself a fidius
        // plugin; the function takes no arguments and returns a pointer we check below.
        let registry = unsafe { registry_fn() };
        if registry.is_null() {
            return Err(LoadError::NullRegistry {
                path: path.to_path_buf(),
            });
        }
        // SAFETY: non-null; magic and version sit at fixed offsets in every registry
        // version, so they are read before anything else is trusted.
        let registry: &PluginRegistry = unsafe { &*registry };
        if registry.magic != FIDIUS_MAGIC {
            return Err(LoadError::BadMagic {
                path: path.to_path_buf(),
                expected: FIDIUS_MAGIC,
                found: registry.magic,
            });
        }
        if registry.registry_version != REGISTRY_VERSION {
            return Err(LoadError::RegistryVersion {
                path: path.to_path_buf(),
                expected: REGISTRY_VERSION,
                found: registry.registry_version,
            });
        }
        let invalid = |reason: String| LoadError::InvalidDescriptor {
            path: path.to_path_buf(),
            reason,
        };
        if registry.plugin_count > MAX_PLUGINS {
            return Err(invalid(format!(
                "registry lists {} plugins (limit {MAX_PLUGINS})",
                registry.plugin_count
            )));
        }
        if registry.plugin_count > 0 && registry.descriptors.is_null() {
            return Err(invalid("registry has a null descriptor table".into()));
        }
        let mut plugins = Vec::with_capacity(registry.plugin_count as usize);
        for index in 0..registry.plugin_count as usize {
            // SAFETY: index < plugin_count entries of a validated registry.
            let desc_ptr = unsafe { *registry.descriptors.add(index) };
            if desc_ptr.is_null() {
                return Err(invalid(format!("descriptor #{index} is null")));
            }
            // SAFETY: non-null; the first two u32 fields are at fixed offsets in every
            // descriptor version and are checked before the rest is read.
            let (size, abi) = unsafe {
                let p = desc_ptr as *const u32;
                (p.read(), p.add(1).read())
            };
            if abi != ABI_VERSION {
                return Err(LoadError::AbiVersion {
                    path: path.to_path_buf(),
                    index,
                    expected: abi_version_string(ABI_VERSION),
                    found: abi_version_string(abi),
                });
            }
            let ours = std::mem::size_of::<PluginDescriptor>() as u32;
            if size < ours {
                return Err(LoadError::DescriptorTooSmall {
                    path: path.to_path_buf(),
                    index,
                    expected: ours,
                    found: size,
                });
            }
            // SAFETY: same ABI version and at least our size: the layout is ours.
            let desc = unsafe { &*desc_ptr };
            // SAFETY: as above; from_descriptor checks every pointer it follows.
            let info = unsafe { PluginInfo::from_descriptor(desc) }.map_err(invalid)?;
            if plugins
                .iter()
                .any(|(p, _): &(PluginInfo, _)| p.name == info.name)
            {
                return Err(LoadError::DuplicatePlugin {
                    path: path.to_path_buf(),
                    name: info.name,
                });
            }
            plugins.push((info, desc_ptr));
        }
        let shares_allocator = shares_allocator(&library);
        route_panics(&library);
        #[cfg(feature = "host")]
        tracing::debug!(
            path = %known_as.unwrap_or(path).display(),
            plugins = plugins.len(),
            shares_allocator,
            "loaded plugin library"
        );
        Ok(Self {
            path: known_as.unwrap_or(path).to_path_buf(),
            plugins,
            shares_allocator,
            verified: None,
            library: Some(library),
            copy: None,
        })
    }

    /// The file this library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when this host and the library both use
    /// [`SharedAllocator`](crate::SharedAllocator) over the same C library, so that
    /// byte and string results change owner instead of being copied.
    pub fn shares_allocator(&self) -> bool {
        self.shares_allocator
    }

    /// What each plugin in the library offers.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginInfo> {
        self.plugins.iter().map(|(info, _)| info)
    }

    /// A handle to plugin `name`, checked against `expected` when given.
    pub fn handle(
        self: &Arc<Self>,
        name: &str,
        expected: Option<&InterfaceInfo>,
    ) -> Result<PluginHandle, LoadError> {
        let (info, desc) = self
            .plugins
            .iter()
            .find(|(info, _)| info.name == name)
            .ok_or_else(|| LoadError::PluginNotFound {
                name: name.to_string(),
                searched: vec![self.path.clone()],
                available: self.plugins().map(|p| p.name.clone()).collect(),
                skipped: Vec::new(),
                libraries: 1,
            })?;
        if let Some(expected) = expected {
            info.check_compatible(expected)
                .map_err(|m| LoadError::from_mismatch(self.path.clone(), info.name.clone(), m))?;
        }
        // SAFETY: `desc` was validated in `open` and the handle keeps `self` alive.
        Ok(unsafe { PluginHandle::new(self.clone(), *desc, info.clone()) })
    }
}

/// Whether this host and `library` agree on their allocator (see
/// [`crate::shared_alloc`]). The library is asked only when this host uses
/// [`SharedAllocator`](crate::SharedAllocator) itself.
fn shares_allocator(library: &libloading::Library) -> bool {
    let ours = crate::shared_alloc::allocator_identity();
    if ours == 0 {
        return false;
    }
    let symbol = format!("{}\0", crate::shared_alloc::ALLOCATOR_SYMBOL);
    // SAFETY: the library passed the registry checks, so it is a fidius plugin; those
    // built with this version export `fidius_allocator` with exactly this signature
    // (through `fidius_plugin_registry!`), and older ones do not export it at all.
    let Ok(theirs) = (unsafe { library.get::<extern "C" fn() -> usize>(symbol.as_bytes()) }) else {
        return false;
    };
    theirs() == ours
}

/// Installs the library's panic hook, which hands its panics to this host (see
/// [`crate::panics`]). Libraries built before the hook existed do not export it and
/// keep their standard library's default hook.
fn route_panics(library: &libloading::Library) {
    let symbol = format!("{}\0", crate::panics::PANIC_SINK_SYMBOL);
    type SetSink = extern "C" fn(Option<crate::panics::PanicSink>, usize);
    // SAFETY: the library passed the registry checks, so it is a fidius plugin; those
    // built with this version export `fidius_panic_sink` with exactly this signature
    // (through `fidius_plugin_registry!`), and older ones do not export it at all.
    if let Ok(set_sink) = unsafe { library.get::<SetSink>(symbol.as_bytes()) } {
        set_sink(
            Some(crate::panics::host_sink),
            crate::panics::std_identity(),
        );
    }
}

/// The loader's message, with its cause (libloading keeps the system's text there).
fn loader_message(e: &libloading::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// `path` as the dynamic loader must see it: a name with no directory in it would be
/// looked up in the system's library path, not in the current directory.
fn as_file_path(path: &Path) -> std::borrow::Cow<'_, Path> {
    if path.components().count() == 1 && path.is_relative() {
        std::borrow::Cow::Owned(Path::new(".").join(path))
    } else {
        std::borrow::Cow::Borrowed(path)
    }
}

#[cfg(unix)]
fn open_library(path: &Path) -> Result<libloading::Library, LoadError> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: loading runs the library's initialisers; fidius documents that only
    // trusted libraries may be loaded. RTLD_NOW resolves every symbol now, so a library
    // with missing dependencies fails here rather than in the middle of a call;
    // RTLD_LOCAL keeps its symbols from clashing with other plugins'.
    unsafe { Library::open(Some(as_file_path(path).as_ref()), RTLD_NOW | RTLD_LOCAL) }
        .map(Into::into)
        .map_err(|e| LoadError::LibraryLoad {
            path: path.to_path_buf(),
            reason: loader_message(&e),
        })
}

#[cfg(not(unix))]
fn open_library(path: &Path) -> Result<libloading::Library, LoadError> {
    // SAFETY: loading runs the library's initialisers; fidius documents that only
    // trusted libraries may be loaded.
    unsafe { libloading::Library::new(as_file_path(path).as_ref()) }.map_err(|e| {
        LoadError::LibraryLoad {
            path: path.to_path_buf(),
            reason: loader_message(&e),
        }
    })
}
