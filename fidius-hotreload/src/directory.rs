//! [`HotDirectory`]: every plugin library in a directory, each hot-reloading.

use crate::events::{Callback, EventHub, Rejection, ReloadEvent, Stage};
use crate::handle::HotHandle;
use crate::hot_plugin::{HotPlugin, DEFAULT_DEBOUNCE};
use crate::shadow::{self, ShadowCopy};
use crate::watch::{fingerprint, Watcher};
use fidius::host::PluginLibrary;
use fidius::InterfaceInfo;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to do with a library's plugins when its file is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemovalPolicy {
    /// Report the removal and keep serving the last loaded version (default): a file
    /// that disappears is often about to be replaced.
    #[default]
    KeepServing,
    /// Report the removal and forget the plugins: [`HotDirectory::get`] no longer finds
    /// them. Handles already given out keep working until dropped; the library is
    /// closed when the last of them goes.
    Unload,
}

/// Everything that happens in a hot-reloading directory.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DirectoryEvent {
    /// A library appeared and its plugins were loaded.
    Added {
        /// The library file.
        path: PathBuf,
        /// The plugins it holds that implement the interface.
        plugins: Vec<String>,
    },
    /// An event of one plugin (reloads, rejections, drains, unloads).
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// What happened.
        event: ReloadEvent,
    },
    /// A library file was removed.
    Removed {
        /// The library file.
        path: PathBuf,
        /// Its plugins.
        plugins: Vec<String>,
        /// Whether they were forgotten ([`RemovalPolicy::Unload`]) or keep serving.
        unloaded: bool,
    },
    /// A new library could not be used at all (not a loadable fidius library, or no
    /// plugin of the interface in it). Nothing was added.
    Rejected(Rejection),
    /// A library that was just added offers a plugin name another library already
    /// offers. [`HotDirectory::get`] serves the one whose path sorts first; the others
    /// stay loaded and reloading, and serve once the first is forgotten.
    Duplicate {
        /// The plugin's name.
        plugin: String,
        /// The library that serves it.
        serving: PathBuf,
        /// The other libraries that offer it.
        shadowed: Vec<PathBuf>,
    },
}

/// Builds a [`HotDirectory`]; see [`HotDirectory::builder`].
pub struct HotDirectoryBuilder {
    dir: PathBuf,
    expected: InterfaceInfo,
    debounce: Duration,
    store: shadow::Store,
    removal: RemovalPolicy,
    callbacks: Vec<Callback<DirectoryEvent>>,
}

impl HotDirectoryBuilder {
    /// Debounce for file changes (default 25 ms); see [`crate::HotPluginBuilder::debounce`].
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// The private directory for copies that are files; see
    /// [`HotPluginBuilder::shadow_dir`](crate::HotPluginBuilder::shadow_dir).
    pub fn shadow_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store.dir = dir.into();
        self
    }

    /// In-memory copies (default) or files in the shadow directory; see
    /// [`HotPluginBuilder::copies_in_memory`](crate::HotPluginBuilder::copies_in_memory).
    pub fn copies_in_memory(mut self, in_memory: bool) -> Self {
        self.store.in_memory = in_memory;
        self
    }

    /// What happens when a library file is removed (default: keep serving).
    pub fn on_removal(mut self, policy: RemovalPolicy) -> Self {
        self.removal = policy;
        self
    }

    /// A callback for every event, from the first scan on.
    pub fn on_event(mut self, f: impl Fn(&DirectoryEvent) + Send + Sync + 'static) -> Self {
        self.callbacks.push(Arc::new(f));
        self
    }

    /// Loads every library already in the directory and starts watching it.
    pub fn build(self) -> Result<HotDirectory, std::io::Error> {
        HotDirectory::start(self)
    }
}

/// The plugins of one library file.
struct Library {
    // Shared so a reload can run without holding the directory's lock.
    plugins: BTreeMap<String, Arc<HotPlugin>>,
}

struct DirShared {
    dir: PathBuf,
    expected: InterfaceInfo,
    debounce: Duration,
    store: shadow::Store,
    removal: RemovalPolicy,
    libraries: Mutex<BTreeMap<PathBuf, Library>>,
    hub: EventHub<DirectoryEvent>,
}

/// Every plugin library in a directory, hot-reloading: libraries that appear are
/// loaded, libraries that are replaced are reloaded, libraries that are removed are
/// reported (and forgotten when the [`RemovalPolicy`] says so).
///
/// Only plugins implementing the directory's interface are loaded; a library with
/// none is reported as a [`DirectoryEvent::Rejected`].
pub struct HotDirectory {
    shared: Arc<DirShared>,
    tx: Sender<Option<PathBuf>>,
    worker: Option<std::thread::JoinHandle<()>>,
    _watcher: Watcher,
}

impl HotDirectory {
    /// Starts building a hot directory of plugins implementing `I` (write
    /// `dyn YourTrait`).
    pub fn builder<I: fidius::Interface + ?Sized>(dir: impl Into<PathBuf>) -> HotDirectoryBuilder {
        HotDirectoryBuilder {
            dir: dir.into(),
            expected: *fidius::interface_info::<I>(),
            debounce: DEFAULT_DEBOUNCE,
            store: shadow::Store::new(),
            removal: RemovalPolicy::default(),
            callbacks: Vec::new(),
        }
    }

    fn start(b: HotDirectoryBuilder) -> std::io::Result<Self> {
        let shared = Arc::new(DirShared {
            dir: b.dir,
            expected: b.expected,
            debounce: b.debounce,
            store: b.store,
            removal: b.removal,
            libraries: Mutex::new(BTreeMap::new()),
            hub: EventHub::default(),
        });
        for cb in b.callbacks {
            shared.hub.on_event(cb);
        }
        let (tx, rx) = channel::<Option<PathBuf>>();
        let watch_tx = tx.clone();
        let watcher = Watcher::directory(&shared.dir, is_library, move |p| {
            let _ = watch_tx.send(Some(p));
        })
        .map_err(std::io::Error::other)?;
        let mut existing: Vec<PathBuf> = std::fs::read_dir(&shared.dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_library(p) && p.is_file())
            .collect();
        existing.sort();
        for path in existing {
            shared.add(&path);
        }
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("fidius-hotreload:dir".into())
            .spawn(move || run_directory_worker(worker_shared, rx))?;
        Ok(Self {
            shared,
            tx,
            worker: Some(worker),
            _watcher: watcher,
        })
    }

    /// A handle to plugin `name`. When several libraries offer it (reported as
    /// [`DirectoryEvent::Duplicate`]), the one whose path sorts first serves.
    pub fn get(&self, name: &str) -> Option<HotHandle> {
        self.shared
            .libraries
            .lock()
            .values()
            .find_map(|lib| lib.plugins.get(name).map(|p| p.handle()))
    }

    /// A snapshot of plugin `name` (see [`HotPlugin::status`]), from the library
    /// [`get`](Self::get) serves it from.
    pub fn status(&self, name: &str) -> Option<crate::HotStatus> {
        self.shared
            .libraries
            .lock()
            .values()
            .find_map(|lib| lib.plugins.get(name).map(|p| p.status()))
    }

    /// The loaded plugins and the library each came from, sorted by name.
    pub fn plugins(&self) -> Vec<(String, PathBuf)> {
        let mut all: Vec<_> = self
            .shared
            .libraries
            .lock()
            .iter()
            .flat_map(|(path, lib)| lib.plugins.keys().map(move |n| (n.clone(), path.clone())))
            .collect();
        all.sort();
        all
    }

    /// A channel that receives every event from now on.
    pub fn subscribe(&self) -> Receiver<DirectoryEvent> {
        self.shared.hub.subscribe()
    }

    /// Calls `f` for every event from now on.
    pub fn on_event(&self, f: impl Fn(&DirectoryEvent) + Send + Sync + 'static) {
        self.shared.hub.on_event(Arc::new(f));
    }
}

impl Drop for HotDirectory {
    fn drop(&mut self) {
        let _ = self.tx.send(None);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn is_library(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()) == Some(std::env::consts::DLL_EXTENSION)
}

impl DirShared {
    fn emit(&self, event: DirectoryEvent) {
        self.hub.emit(event);
    }

    /// The plugin names in `path` that implement the interface, read from a shadow
    /// copy (the watched file itself is never loaded). The copy is returned, still
    /// open, for the first plugin's first version.
    fn list(&self, path: &Path) -> Result<Listed, Rejection> {
        let reject = |stage, reason: String, error: Option<fidius::LoadError>| Rejection {
            path: path.to_path_buf(),
            stage,
            reason,
            error: error.map(Arc::new),
        };
        let copy =
            shadow::copy(path, &self.store, 1).map_err(|e| e.rejection(path, &self.store))?;
        match PluginLibrary::open(copy.load_path()) {
            Ok(lib) => {
                let names: Vec<String> = lib
                    .plugins()
                    .filter(|p| p.check_compatible(&self.expected).is_ok())
                    .map(|p| p.name.clone())
                    .collect();
                let all: Vec<String> = lib
                    .plugins()
                    .map(|p| format!("{} ({})", p.name, p.describe()))
                    .collect();
                if names.is_empty() {
                    Err(reject(
                        Stage::Validate,
                        format!(
                            "no plugin implements {}; the library has [{}]",
                            self.expected.describe(),
                            all.join(", ")
                        ),
                        None,
                    ))
                } else {
                    Ok(Listed {
                        names,
                        open: lib,
                        copy,
                    })
                }
            }
            // Name the user's file, not the copy, in the reason.
            Err(e) => Err(reject(Stage::Load, copy.explain(&e, path), Some(e))),
        }
    }

    /// Loads the plugins of a library new to the directory.
    fn add(self: &Arc<Self>, path: &Path) {
        let listed = match self.list(path) {
            Ok(listed) => listed,
            Err(r) => {
                // Traced here: a plugin's own rejections are traced by its hot plugin.
                r.trace("");
                return self.emit(DirectoryEvent::Rejected(r));
            }
        };
        // The first plugin loads from the listing's copy. The others need copies of
        // their own: each version's unload is checked by its path.
        let mut listing_copy = Some((listed.copy, listed.open));
        let mut plugins = BTreeMap::new();
        for name in &listed.names {
            let events = Arc::downgrade(self);
            let plugin = name.clone();
            let forward: Callback = Arc::new(move |event: &ReloadEvent| {
                if let Some(shared) = events.upgrade() {
                    shared.emit(DirectoryEvent::Plugin {
                        plugin: plugin.clone(),
                        event: event.clone(),
                    });
                }
            });
            let mut builder = HotPlugin::builder_for(path, name, self.expected)
                .store(self.store.clone())
                .debounce(self.debounce)
                .watch(false)
                .on_event(move |e| forward(e));
            if let Some((copy, open)) = listing_copy.take() {
                builder = builder.first_copy(copy, open);
            }
            let built = builder.build();
            match built {
                Ok(hot) => {
                    plugins.insert(name.clone(), Arc::new(hot));
                }
                Err(r) => self.emit(DirectoryEvent::Rejected(r)),
            }
        }
        if plugins.is_empty() {
            return;
        }
        let names: Vec<String> = plugins.keys().cloned().collect();
        let duplicates = {
            let mut libraries = self.libraries.lock();
            libraries.insert(path.to_path_buf(), Library { plugins });
            duplicates(&libraries, &names)
        };
        self.emit(DirectoryEvent::Added {
            path: path.to_path_buf(),
            plugins: names,
        });
        for duplicate in duplicates {
            tracing::warn!(event = ?duplicate, "a plugin name is offered by several libraries");
            self.emit(duplicate);
        }
    }

    /// A settled change to `path`: load, reload or remove.
    fn changed(self: &Arc<Self>, path: &Path) {
        let exists = path.is_file();
        let known = self.libraries.lock().contains_key(path);
        match (exists, known) {
            (true, false) => self.add(path),
            (true, true) => {
                // Reload every plugin of the library; each reports its own events. The
                // lock is released first, so `get` and `plugins` never wait on a reload.
                let plugins: Vec<Arc<HotPlugin>> = self
                    .libraries
                    .lock()
                    .get(path)
                    .map(|lib| lib.plugins.values().cloned().collect())
                    .unwrap_or_default();
                for plugin in plugins {
                    let _ = plugin.reload_now();
                }
            }
            (false, true) => {
                let unload = self.removal == RemovalPolicy::Unload;
                let plugins: Vec<String> = {
                    let mut libraries = self.libraries.lock();
                    let names = libraries
                        .get(path)
                        .map(|l| l.plugins.keys().cloned().collect())
                        .unwrap_or_default();
                    if unload {
                        libraries.remove(path);
                    }
                    names
                };
                self.emit(DirectoryEvent::Removed {
                    path: path.to_path_buf(),
                    plugins,
                    unloaded: unload,
                });
            }
            (false, false) => {}
        }
    }
}

/// A new library's plugins and the copy they were read from. The library stays open
/// until the first plugin has loaded the same copy, so that load only adds a
/// reference. (Declared before the copy: a copy must be closed after its library.)
struct Listed {
    names: Vec<String>,
    open: Arc<PluginLibrary>,
    copy: ShadowCopy,
}

/// A [`DirectoryEvent::Duplicate`] for each of `names` that more than one library
/// offers.
fn duplicates(libraries: &BTreeMap<PathBuf, Library>, names: &[String]) -> Vec<DirectoryEvent> {
    names
        .iter()
        .filter_map(|name| {
            // In path order, so the first holder is the one `get` serves.
            let mut holders = libraries
                .iter()
                .filter(|(_, lib)| lib.plugins.contains_key(name))
                .map(|(path, _)| path.clone());
            let serving = holders.next()?;
            let shadowed: Vec<PathBuf> = holders.collect();
            (!shadowed.is_empty()).then(|| DirectoryEvent::Duplicate {
                plugin: name.clone(),
                serving,
                shadowed,
            })
        })
        .collect()
}

/// Debounces changes per file, waits for each file to settle, then acts on it.
fn run_directory_worker(shared: Arc<DirShared>, rx: Receiver<Option<PathBuf>>) {
    let debounce = shared.debounce;
    let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
    loop {
        let timeout = pending
            .values()
            .map(|at| debounce.saturating_sub(at.elapsed()))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(timeout) {
            Ok(Some(path)) if path == shared.dir => {
                // Events were lost: look at every library again.
                if let Ok(entries) = std::fs::read_dir(&shared.dir) {
                    for e in entries.flatten().filter(|e| is_library(&e.path())) {
                        pending.insert(e.path(), Instant::now());
                    }
                }
                for known in shared.libraries.lock().keys() {
                    pending.insert(known.clone(), Instant::now());
                }
            }
            Ok(Some(path)) => {
                pending.insert(path, Instant::now());
            }
            Ok(None) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let due: Vec<PathBuf> = pending
            .iter()
            .filter(|(_, at)| at.elapsed() >= debounce)
            .map(|(p, _)| p.clone())
            .collect();
        for path in due {
            pending.remove(&path);
            let before = fingerprint(&path);
            std::thread::sleep((debounce / 2).max(Duration::from_millis(5)));
            if fingerprint(&path) != before {
                pending.insert(path, Instant::now());
                continue;
            }
            shared.changed(&path);
        }
    }
}
