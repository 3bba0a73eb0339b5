//! [`HotDirectory`]: every plugin library in a directory, each hot-reloading.
//!
//! The directory is one registration with the process's watcher and one debouncer
//! with a path per library file: the same rules, and the same pool, as a single
//! [`HotPlugin`]. Each library's plugins are hot plugins that do not watch on their
//! own; the directory reloads them when their file settles.

use crate::debounce::{Debouncer, Ran, Target, BACKOFF};
use crate::events::{
    Callback, EventHub, ForwardEvents, Rejection, ReloadEvent, ReloadOutcome, Stage,
};
use crate::handle::HotHandle;
use crate::hold::{HoldGate, ReloadHold};
use crate::hot_plugin::HotPlugin;
use crate::pipeline::Config;
use crate::shadow::ShadowCopy;
use crate::status::HotStatus;
use crate::watcher::{self, Registration, WatcherKind};
use fidius::host::trust::signed_library;
use fidius::host::PluginLibrary;
use fidius::InterfaceInfo;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Weak};
use std::time::Duration;

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
    /// Loading a new library failed and will be tried again (it may still be
    /// settling); see [`HotDirectoryBuilder::load_retries`]. The last failure is
    /// reported as [`Rejected`](Self::Rejected).
    Retrying {
        /// The failed attempt, from 1.
        attempt: u32,
        /// Attempts still to come.
        left: u32,
        /// Why it failed.
        failure: Rejection,
    },
    /// A library that was just added offers a plugin name another library already
    /// offers. Reported once per added library and name. [`HotDirectory::get`]
    /// serves the one whose path sorts first; the others stay loaded and reloading,
    /// and serve once the first is forgotten.
    Duplicate {
        /// The plugin's name.
        plugin: String,
        /// The library that serves it.
        serving: PathBuf,
        /// The libraries this change shadowed: the added one, or the one that served
        /// until the added one (whose path sorts first) took over.
        shadowed: Vec<PathBuf>,
    },
    /// The configured directory now names another directory (a `current` symbolic
    /// link was switched, or the directory was replaced at its path): it is watched
    /// instead of the old one, and every library is looked at again. `to` is `None`
    /// while the path names nothing (nothing is seen until it comes back).
    Retargeted {
        /// The directory as configured.
        directory: PathBuf,
        /// The directory it named (canonical).
        from: Option<PathBuf>,
        /// The directory it names now (canonical), if any.
        to: Option<PathBuf>,
    },
    /// The directory is polled (every [`POLL_INTERVAL`](crate::POLL_INTERVAL))
    /// because the native file watcher could not be had. Emitted once, at the start.
    WatcherFallback {
        /// The watched directory.
        directory: PathBuf,
        /// Why the native watcher is not used.
        reason: String,
    },
}

/// The directory's own events are traced as they are queued; each plugin's are
/// traced by its hot plugin, with its name.
impl crate::events::Traced for DirectoryEvent {
    fn trace(&self) {
        match self {
            DirectoryEvent::Added { path, plugins } => {
                tracing::info!(path = %path.display(), plugins = ?plugins, "library added")
            }
            DirectoryEvent::Plugin { .. } => {}
            DirectoryEvent::Removed {
                path,
                plugins,
                unloaded,
            } => {
                tracing::info!(path = %path.display(), plugins = ?plugins, unloaded, "library removed")
            }
            DirectoryEvent::Rejected(r) => r.trace(""),
            DirectoryEvent::Retrying {
                attempt,
                left,
                failure,
            } => {
                tracing::warn!(path = %failure.path.display(), attempt, left, reason = %failure.reason, "loading a new library failed; trying again")
            }
            DirectoryEvent::Duplicate { .. } => {
                tracing::warn!(event = %self, "a plugin name is offered by several libraries")
            }
            DirectoryEvent::Retargeted { .. } => {
                tracing::info!(event = %self, "the directory now names another")
            }
            DirectoryEvent::WatcherFallback { .. } => tracing::warn!(event = %self, "polling"),
        }
    }
}

/// What [`HotDirectory::reload_now`] did with one library file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LibraryReload {
    /// The file was new: its plugins were loaded.
    Added {
        /// The plugins loaded from it.
        plugins: Vec<String>,
    },
    /// The file was known: each of its plugins was reloaded.
    Reloaded {
        /// Each plugin and how its reload went.
        plugins: Vec<(String, Result<ReloadOutcome, Rejection>)>,
    },
    /// The file is gone: its plugins were reported removed.
    Removed {
        /// Its plugins.
        plugins: Vec<String>,
        /// Whether they were forgotten ([`RemovalPolicy::Unload`]).
        unloaded: bool,
    },
    /// The file is neither there nor known: nothing to do.
    Nothing,
}

/// A snapshot of a hot directory as a whole; see [`HotDirectory::directory_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryStatus {
    /// The watched directory, canonical.
    pub directory: PathBuf,
    /// Which watcher reports its changes; `None` when it is not watched.
    pub watcher: Option<WatcherKind>,
    /// Watching is paused.
    pub paused: bool,
    /// Library files with plugins loaded.
    pub libraries: usize,
    /// Plugins loaded, counting each library's copy of a duplicate name.
    pub plugins: usize,
}

/// Settings of a hot directory: those of its plugins (the same as a hot plugin's,
/// except that the directory does the watching), and what to do on removal.
#[derive(Debug, Clone)]
struct DirConfig {
    plugin: Config,
    removal: RemovalPolicy,
}

/// Builds a [`HotDirectory`]; see [`HotDirectory::builder`].
pub struct HotDirectoryBuilder {
    dir: PathBuf,
    expected: InterfaceInfo,
    config: DirConfig,
    callbacks: Vec<Callback<DirectoryEvent>>,
}

impl HotDirectoryBuilder {
    /// Debounce for file changes (default 25 ms); see [`crate::HotPluginBuilder::debounce`].
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.config.plugin.debounce = debounce;
        self
    }

    /// The private directory for copies that are files; see
    /// [`HotPluginBuilder::shadow_dir`](crate::HotPluginBuilder::shadow_dir).
    pub fn shadow_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.plugin.store.dir = dir.into();
        self
    }

    /// In-memory copies (default) or files in the shadow directory; see
    /// [`HotPluginBuilder::copies_in_memory`](crate::HotPluginBuilder::copies_in_memory).
    pub fn copies_in_memory(mut self, in_memory: bool) -> Self {
        self.config.plugin.store.in_memory = in_memory;
        self
    }

    /// Watch the directory and follow its changes (default), or not: with `false`,
    /// libraries are loaded at the start and then only through
    /// [`HotDirectory::reload_now`] and [`HotDirectory::reload_all`].
    pub fn watch(mut self, watch: bool) -> Self {
        self.config.plugin.watch = watch;
        self
    }

    /// The most old versions of each plugin that may still be draining at once
    /// (default 16); see
    /// [`HotPluginBuilder::max_retained`](crate::HotPluginBuilder::max_retained).
    pub fn max_retained(mut self, max: usize) -> Self {
        self.config.plugin.max_retained = max.max(1);
        self
    }

    /// How often a library that fails to load is tried again, one debounce apart,
    /// before it is reported rejected (default 3); see
    /// [`HotPluginBuilder::load_retries`](crate::HotPluginBuilder::load_retries).
    /// Applies to new libraries and to new builds of known ones alike.
    pub fn load_retries(mut self, retries: u32) -> Self {
        self.config.plugin.load_retries = retries;
        self
    }

    /// The most old versions of each plugin that may stay pinned in memory, and what
    /// to do past that; see
    /// [`HotPluginBuilder::max_pinned`](crate::HotPluginBuilder::max_pinned).
    pub fn max_pinned(mut self, max: usize, policy: crate::PinnedPolicy) -> Self {
        self.config.plugin.max_pinned = max;
        self.config.plugin.pinned_policy = policy;
        self
    }

    /// Puts each plugin's new versions on probation; see
    /// [`HotPluginBuilder::probation`](crate::HotPluginBuilder::probation).
    pub fn probation(mut self, probation: crate::Probation) -> Self {
        self.config.plugin.probation = Some(probation);
        self
    }

    /// Checks each plugin's new versions before they serve; see
    /// [`HotPluginBuilder::pre_swap_check`](crate::HotPluginBuilder::pre_swap_check).
    pub fn pre_swap_check(
        mut self,
        check: impl Fn(&crate::VersionHandle) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.config.plugin.pre_swap_check =
            Some(crate::probation::Check(std::sync::Arc::new(check)));
        self
    }

    /// Runs each build of each plugin in a process of its own; see
    /// [`HotPluginBuilder::isolated`](crate::HotPluginBuilder::isolated). A new
    /// library's plugins are listed by a process too: nothing of any library in the
    /// directory is loaded in this one. Linux only.
    #[cfg(all(feature = "isolated", target_os = "linux"))]
    pub fn isolated(mut self, settings: fidius_isolated::Isolation) -> Self {
        self.config.plugin.isolation = Some(settings);
        self
    }

    /// Loads only builds that `trust` accepts, each library judged with its own
    /// signature file; see
    /// [`HotPluginBuilder::trust`](crate::HotPluginBuilder::trust). An untrusted new
    /// library is reported as [`DirectoryEvent::Rejected`] and not loaded.
    pub fn trust(mut self, trust: fidius::host::trust::Trust) -> Self {
        self.config.plugin.trust = Some(std::sync::Arc::new(trust));
        self
    }

    /// Counts into `metrics`, shared by all its plugins; see
    /// [`HotDirectory::metrics`].
    pub fn metrics(mut self, metrics: std::sync::Arc<crate::HotMetrics>) -> Self {
        self.config.plugin.metrics = metrics;
        self
    }

    /// The largest library file loaded (default 512 MiB); see
    /// [`HotPluginBuilder::max_file_size`](crate::HotPluginBuilder::max_file_size).
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.config.plugin.max_file_size = bytes;
        self
    }

    /// What happens when a library file is removed (default: keep serving).
    pub fn on_removal(mut self, policy: RemovalPolicy) -> Self {
        self.config.removal = policy;
        self
    }

    /// A callback for every event, from the first scan on.
    pub fn on_event(mut self, f: impl Fn(&DirectoryEvent) + Send + Sync + 'static) -> Self {
        self.callbacks.push(Arc::new(f));
        self
    }

    /// Loads every library already in the directory and starts watching it.
    ///
    /// The error is the one [`HotPlugin`](crate::HotPlugin)'s builder gives: a
    /// [`Rejection`] naming the directory, at the [`Stage::Detect`] stage when the
    /// directory cannot be resolved, listed or watched.
    pub fn build(self) -> Result<HotDirectory, Rejection> {
        let dir = self.dir.clone();
        HotDirectory::start(self).map_err(|e| {
            Rejection::new(&dir, Stage::Detect, format!("{}: {e}", dir.display()), None)
        })
    }
}

/// One plugin of a library: the hot plugin, and where its events go.
#[derive(Clone)]
struct Member {
    hot: Arc<HotPlugin>,
    forward: Arc<Forward>,
}

/// The libraries of the directory, and which offer each plugin name.
#[derive(Default)]
struct Libraries {
    /// Each library's plugins. Shared, so a reload runs without this lock held.
    by_path: BTreeMap<PathBuf, BTreeMap<String, Member>>,
    /// For each plugin name, the libraries offering it; the first serves.
    by_name: HashMap<String, BTreeSet<PathBuf>>,
}

impl Libraries {
    fn serving(&self, name: &str) -> Option<&Arc<HotPlugin>> {
        let path = self.by_name.get(name)?.first()?;
        self.by_path.get(path)?.get(name).map(|m| &m.hot)
    }

    fn remove(&mut self, path: &Path) -> Option<BTreeMap<String, Member>> {
        let plugins = self.by_path.remove(path)?;
        for name in plugins.keys() {
            if let Some(paths) = self.by_name.get_mut(name) {
                paths.remove(path);
                if paths.is_empty() {
                    self.by_name.remove(name);
                }
            }
        }
        Some(plugins)
    }
}

struct DirShared {
    dir: PathBuf,
    expected: InterfaceInfo,
    config: DirConfig,
    libraries: Mutex<Libraries>,
    hub: Arc<EventHub<DirectoryEvent>>,
    /// Holds and reloads of the directory's plugins exclude each other here.
    hold: HoldGate,
    paused: AtomicBool,
    /// Set when the hot directory is dropped: nothing starts after that.
    stopped: Arc<AtomicBool>,
    /// Held for reading while a library is added or removed (never while events are
    /// delivered); dropping the directory takes it for writing, to wait for those.
    active: RwLock<()>,
    /// One lock per library file, so that a file is never acted on twice at once.
    files: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
    watcher: Mutex<Option<WatcherKind>>,
}

/// Every plugin library in a directory, hot-reloading: libraries that appear are
/// loaded, libraries that are replaced are reloaded, libraries that are removed are
/// reported (and forgotten when the [`RemovalPolicy`] says so).
///
/// Only plugins implementing the directory's interface are loaded; a library with
/// none is reported as a [`DirectoryEvent::Rejected`]. It offers the same settings
/// and controls as a [`HotPlugin`], for the whole directory.
pub struct HotDirectory {
    shared: Arc<DirShared>,
    watching: Option<(Registration, Arc<Debouncer>)>,
}

impl HotDirectory {
    /// Starts building a hot directory of plugins implementing `I` (write
    /// `dyn YourTrait`).
    pub fn builder<I: fidius::Interface + ?Sized>(dir: impl Into<PathBuf>) -> HotDirectoryBuilder {
        HotDirectoryBuilder {
            dir: dir.into(),
            expected: *fidius::interface_info::<I>(),
            config: DirConfig {
                plugin: Config::default(),
                removal: RemovalPolicy::default(),
            },
            callbacks: Vec::new(),
        }
    }

    fn start(b: HotDirectoryBuilder) -> std::io::Result<Self> {
        // Checked to be a directory, but kept as configured (made absolute), not as it
        // resolves now: a directory switched under it is followed (see `watcher.rs`).
        watcher::canonical_dir(&b.dir)?;
        let dir = std::path::absolute(&b.dir)?;
        let shared = Arc::new(DirShared {
            dir,
            expected: b.expected,
            config: b.config,
            libraries: Mutex::new(Libraries::default()),
            hub: Arc::new(EventHub::default()),
            hold: HoldGate::default(),
            paused: AtomicBool::new(false),
            stopped: Arc::new(AtomicBool::new(false)),
            active: RwLock::new(()),
            files: Mutex::new(HashMap::new()),
            watcher: Mutex::new(None),
        });
        for cb in b.callbacks {
            shared.hub.on_event(cb);
        }
        // Watch first, so nothing that appears during the first scan is missed.
        let watching = if shared.config.plugin.watch {
            let target: Weak<dyn Target> = Arc::downgrade(&shared) as Weak<dyn Target>;
            let debouncer = Debouncer::new(target);
            // A library is named in the configured directory, whatever directory
            // its change was seen in.
            let dir = shared.dir.clone();
            // With a trust, a changed signature is a change of its library.
            let signatures = shared.config.plugin.trust.is_some();
            let sink = debouncer.sink(move |path| {
                let signed = signatures.then(|| signed_library(path)).flatten();
                let path = signed.as_deref().unwrap_or(path);
                let name = path.file_name().filter(|_| is_library(path))?;
                Some(dir.join(name))
            });
            let registration =
                watcher::watch(&shared.dir, None, sink).map_err(std::io::Error::other)?;
            *shared.watcher.lock() = Some(registration.kind);
            Some((registration, debouncer))
        } else {
            None
        };
        // What is there at the start loads or is refused at once, as a hot plugin's
        // first version is: no retries.
        for path in shared.library_files()? {
            let (ran, _) = shared.change(&path, How::Settled(u32::MAX));
            // A passing failure (a full disk) is tried again, as after a change.
            if let (Ran::Backoff, Some((_, debouncer))) = (ran, &watching) {
                debouncer.retry_later(&path);
            }
        }
        if let Some((registration, _)) = &watching {
            if let Some(reason) = registration.fallback.clone() {
                shared.hub.emit(DirectoryEvent::WatcherFallback {
                    directory: shared.dir.clone(),
                    reason,
                });
            }
        }
        Ok(Self { shared, watching })
    }

    /// A handle to plugin `name`. When several libraries offer it (reported as
    /// [`DirectoryEvent::Duplicate`]), the one whose path sorts first serves.
    pub fn get(&self, name: &str) -> Option<HotHandle> {
        self.shared
            .libraries
            .lock()
            .serving(name)
            .map(|p| p.handle())
    }

    /// The counters and gauges of all its plugins together; see
    /// [`HotMetrics`](crate::HotMetrics).
    pub fn metrics(&self) -> Arc<crate::HotMetrics> {
        self.shared.config.plugin.metrics.clone()
    }

    /// A snapshot of plugin `name` (see [`HotPlugin::status`]), from the library
    /// [`get`](Self::get) serves it from.
    pub fn status(&self, name: &str) -> Option<HotStatus> {
        let plugin = self.shared.libraries.lock().serving(name).cloned();
        plugin.map(|p| p.status())
    }

    /// A snapshot of the directory as a whole: whether and how it is watched, and
    /// what it holds.
    pub fn directory_status(&self) -> DirectoryStatus {
        let libraries = self.shared.libraries.lock();
        DirectoryStatus {
            directory: self.shared.dir.clone(),
            watcher: *self.shared.watcher.lock(),
            paused: self.shared.paused.load(Ordering::SeqCst),
            libraries: libraries.by_path.len(),
            plugins: libraries.by_path.values().map(BTreeMap::len).sum(),
        }
    }

    /// The loaded plugins and the library each came from, sorted by name.
    pub fn plugins(&self) -> Vec<(String, PathBuf)> {
        let mut all: Vec<_> = self
            .shared
            .libraries
            .lock()
            .by_path
            .iter()
            .flat_map(|(path, lib)| lib.keys().map(move |n| (n.clone(), path.clone())))
            .collect();
        all.sort();
        all
    }

    /// Looks at one library file now, whatever the watcher saw, on the calling
    /// thread: loads it if it is new, reloads its plugins if it is known, reports it
    /// removed if it is gone. `library` is a path, or a file name in the directory.
    /// Waits for any [`hold`](Self::hold) to end. May be called from an event callback.
    pub fn reload_now(&self, library: impl AsRef<Path>) -> Result<LibraryReload, Rejection> {
        let library = library.as_ref();
        // A file of this directory is named by the directory as configured.
        let in_dir = library.parent().is_some_and(|parent| {
            parent.as_os_str().is_empty() || {
                let theirs = watcher::canonical_dir(parent).ok();
                theirs.is_some() && theirs == watcher::canonical_dir(&self.shared.dir).ok()
            }
        });
        let path = match library.file_name() {
            Some(name) if in_dir => self.shared.dir.join(name),
            _ => std::path::absolute(library).unwrap_or_else(|_| library.to_path_buf()),
        };
        self.shared.change(&path, How::Now).1
    }

    /// [`reload_now`](Self::reload_now) for every library file in the directory and
    /// every library known, in path order.
    pub fn reload_all(&self) -> Vec<(PathBuf, Result<LibraryReload, Rejection>)> {
        self.shared
            .every_library()
            .into_iter()
            .map(|path| {
                let result = self.shared.change(&path, How::Now).1;
                (path, result)
            })
            .collect()
    }

    /// Stops reacting to file changes until [`resume`](Self::resume). Changes seen while
    /// paused are acted on at resume. `reload_now` still works.
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
    }

    /// Reacts to file changes again, starting with any seen while paused.
    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
        if let Some((_, debouncer)) = &self.watching {
            debouncer.kick();
        }
    }

    /// Holds reloads of the directory's plugins off until the returned guard is
    /// dropped; see [`HotPlugin::hold`]. Libraries that appear or go meanwhile wait
    /// too.
    pub fn hold(&self) -> ReloadHold<'_> {
        ReloadHold::new(&self.shared.hold, self.watching.as_ref().map(|(_, d)| d))
    }

    /// A channel that receives every event from now on.
    pub fn subscribe(&self) -> Receiver<DirectoryEvent> {
        self.shared.hub.subscribe()
    }

    /// Calls `f` for every event from now on. No lock is held while `f` runs: it may
    /// call any method of the hot directory.
    pub fn on_event(&self, f: impl Fn(&DirectoryEvent) + Send + Sync + 'static) {
        self.shared.hub.on_event(Arc::new(f));
    }
}

impl Drop for HotDirectory {
    fn drop(&mut self) {
        drop(self.watching.take());
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Copies under way stop: those of new libraries see the flag above, those of
        // known libraries' plugins their own.
        for library in self.shared.libraries.lock().by_path.values() {
            for member in library.values() {
                member.hot.shared().cancel();
            }
        }
        drop(self.shared.active.write());
        // The plugins go now (each draining as a dropped hot plugin does), not when
        // the last job that looked at the directory lets go of it.
        let libraries = std::mem::take(&mut *self.shared.libraries.lock());
        drop(libraries);
    }
}

/// Who asks for a change to a library file to be acted on.
#[derive(Debug, Clone, Copy)]
enum How {
    /// `reload_now`, on the caller's thread: waits for holds and for the file.
    Now,
    /// The debouncer (or the first scan), on a worker, for this attempt: waits for
    /// nothing (`Held`, `Busy` instead).
    Settled(u32),
}

fn is_library(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()) == Some(std::env::consts::DLL_EXTENSION)
}

impl Target for DirShared {
    fn debounce(&self) -> Duration {
        self.config.plugin.debounce
    }

    fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    fn run(&self, path: &Path, attempt: u32) -> Ran {
        self.change(path, How::Settled(attempt)).0
    }

    fn gone(&self, path: &Path) -> Ran {
        self.change(path, How::Settled(0)).0
    }

    fn rescan(&self) -> Vec<PathBuf> {
        self.every_library().into_iter().collect()
    }

    fn moved(&self, from: Option<PathBuf>, to: Option<PathBuf>, kind: Option<WatcherKind>) {
        *self.watcher.lock() = kind;
        self.hub.emit(DirectoryEvent::Retargeted {
            directory: self.dir.clone(),
            from,
            to,
        });
    }
}

impl DirShared {
    /// What is in the directory now under a library's name (whatever it is: what is
    /// not a regular file is refused, saying what it is).
    fn library_files(&self) -> std::io::Result<BTreeSet<PathBuf>> {
        Ok(std::fs::read_dir(&self.dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_library(p))
            .collect())
    }

    /// Every library to look at: those in the directory now, and those known.
    fn every_library(&self) -> BTreeSet<PathBuf> {
        let mut paths = self.library_files().unwrap_or_default();
        paths.extend(self.libraries.lock().by_path.keys().cloned());
        paths
    }

    fn file_lock(&self, path: &Path) -> Arc<Mutex<()>> {
        self.files
            .lock()
            .entry(path.to_path_buf())
            .or_default()
            .clone()
    }

    fn plugins_of(&self, path: &Path) -> Vec<(String, Member)> {
        self.libraries
            .lock()
            .by_path
            .get(path)
            .map(|lib| lib.iter().map(|(n, m)| (n.clone(), m.clone())).collect())
            .unwrap_or_default()
    }

    /// Acts on `path`: loads it if it is new, reloads its plugins if it is known,
    /// reports it removed if it is gone. `how` says who asks.
    ///
    /// All of it happens inside the directory's hold gate (so a hold keeps it off,
    /// and waits for it), under the file's lock (so two of these never work on one
    /// file at once) and under `active` (which dropping the directory waits for).
    /// No event is delivered meanwhile: the directory's own are queued, and its
    /// plugins' are kept from delivering (`Forward::quiet`). All are delivered in
    /// order once everything is released, so a callback may call anything.
    fn change(&self, path: &Path, how: How) -> (Ran, Result<LibraryReload, Rejection>) {
        let nothing = || Ok(LibraryReload::Nothing);
        if self.stopped.load(Ordering::SeqCst) {
            return (Ran::Done, nothing());
        }
        let file = self.file_lock(path);
        let (entered, guard, attempt) = match how {
            How::Now => (self.hold.enter(), file.lock(), u32::MAX),
            // On a worker: wait for nothing.
            How::Settled(attempt) => {
                let Some(entered) = self.hold.try_enter() else {
                    return (Ran::Held, nothing());
                };
                let Some(guard) = file.try_lock() else {
                    return (Ran::Busy, nothing());
                };
                (entered, guard, attempt)
            }
        };
        let (outcome, forgotten) = {
            let _active = self.active.read_recursive();
            // Anything at the path, not only a regular file: the pipeline says what
            // else it is, rather than calling it removed.
            let exists = std::fs::symlink_metadata(path).is_ok();
            let plugins = self.plugins_of(path);
            if self.stopped.load(Ordering::SeqCst) {
                ((Ran::Done, nothing()), None)
            } else if exists && !plugins.is_empty() {
                (self.reload(&plugins, how), None)
            } else if exists {
                (self.add(path, attempt), None)
            } else if !plugins.is_empty() {
                let (removed, forgotten) = self.removed(path);
                ((Ran::Done, Ok(removed)), forgotten)
            } else {
                ((Ran::Done, nothing()), None)
            }
        };
        drop((guard, entered));
        self.hub.flush();
        // Forgotten plugins go last: dropping one waits for its reload, and delivers
        // its last events.
        drop(forgotten);
        // A file that is neither there nor known needs no lock of its own any more.
        if !self.libraries.lock().by_path.contains_key(path) {
            let mut files = self.files.lock();
            if files.get(path).is_some_and(|f| Arc::strong_count(f) == 2) {
                files.remove(path);
            }
        }
        outcome
    }

    /// Reloads every plugin of a known library, their events held back for the
    /// caller to deliver.
    fn reload(
        &self,
        plugins: &[(String, Member)],
        how: How,
    ) -> (Ran, Result<LibraryReload, Rejection>) {
        for (_, member) in plugins {
            member.forward.quiet.store(true, Ordering::SeqCst);
        }
        let outcome = match how {
            How::Now => {
                let plugins = plugins
                    .iter()
                    .map(|(name, m)| (name.clone(), m.hot.shared().reload_now(None)))
                    .collect();
                (Ran::Done, Ok(LibraryReload::Reloaded { plugins }))
            }
            How::Settled(attempt) => {
                let mut ran = Ran::Done;
                for (_, member) in plugins {
                    match member.hot.shared().reload_settled(attempt, None) {
                        Ran::Done => {}
                        other => ran = other,
                    }
                }
                (ran, Ok(LibraryReload::Nothing))
            }
        };
        for (_, member) in plugins {
            member.forward.quiet.store(false, Ordering::SeqCst);
        }
        outcome
    }

    /// The removal of a known library: queues `Removed` and, by policy, takes the
    /// library's plugins out, for the caller to drop.
    fn removed(&self, path: &Path) -> (LibraryReload, Option<BTreeMap<String, Member>>) {
        let unloaded = self.config.removal == RemovalPolicy::Unload;
        let (plugins, forgotten) = {
            let mut libraries = self.libraries.lock();
            let names: Vec<String> = libraries
                .by_path
                .get(path)
                .map(|l| l.keys().cloned().collect())
                .unwrap_or_default();
            (
                names,
                if unloaded {
                    libraries.remove(path)
                } else {
                    None
                },
            )
        };
        self.hub.enqueue(DirectoryEvent::Removed {
            path: path.to_path_buf(),
            plugins: plugins.clone(),
            unloaded,
        });
        (LibraryReload::Removed { plugins, unloaded }, forgotten)
    }

    /// The plugin names in `path` that implement the interface, read from a shadow
    /// copy (the watched file itself is never loaded). The copy is returned, still
    /// open, for the first plugin's first version.
    fn list(&self, path: &Path) -> Result<Listed, Rejection> {
        let reject = |stage, reason, error| Rejection::new(path, stage, reason, error);
        let copy = crate::pipeline::make_copy(path, &self.config.plugin, 1, &self.stopped)?;
        let listed = match &self.config.plugin.isolation {
            None => PluginLibrary::open(copy.load_path())
                .map(|lib| (lib.plugins().cloned().collect::<Vec<_>>(), Some(lib)))
                .map_err(|e| reject(Stage::Load, copy.explain(&e, path), Some(e))),
            #[cfg(all(feature = "isolated", target_os = "linux"))]
            Some(isolation) => crate::pipeline::list_isolated(path, &copy, isolation)
                .map(|plugins| (plugins, None)),
            #[cfg(not(all(feature = "isolated", target_os = "linux")))]
            Some(isolation) => match *isolation {},
        };
        match listed {
            Ok((plugins, lib)) => {
                let names: Vec<String> = plugins
                    .iter()
                    .filter(|p| p.check_compatible(&self.expected).is_ok())
                    .map(|p| p.name.clone())
                    .collect();
                let all: Vec<String> = plugins
                    .iter()
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
            // Named the user's file, not the copy, in the reason.
            Err(rejection) => Err(rejection),
        }
    }

    /// Loads the plugins of a library new to the directory, under its file's lock:
    /// its events, and its plugins' while they are built, are queued for the caller
    /// to deliver. A load failure is tried again while `attempt` is below the
    /// configured retries.
    fn add(&self, path: &Path, attempt: u32) -> (Ran, Result<LibraryReload, Rejection>) {
        let listed = match self.list(path) {
            Ok(listed) => listed,
            Err(r) if r.transient => {
                // Reported once (and at the first scan or on command, where no retry
                // came before); tried again until it clears or the file changes.
                if attempt < BACKOFF || attempt == u32::MAX {
                    self.config.plugin.metrics.rejected();
                    self.hub.enqueue(DirectoryEvent::Rejected(r.clone()));
                }
                return (Ran::Backoff, Err(r));
            }
            Err(r) => {
                let retries = self.config.plugin.load_retries;
                if r.stage == Stage::Load && attempt < retries {
                    self.config.plugin.metrics.retried();
                    self.hub.enqueue(DirectoryEvent::Retrying {
                        attempt: attempt + 1,
                        left: retries - attempt,
                        failure: r.clone(),
                    });
                    return (Ran::Retry, Err(r));
                }
                self.config.plugin.metrics.rejected();
                self.hub.enqueue(DirectoryEvent::Rejected(r.clone()));
                return (Ran::Done, Err(r));
            }
        };
        // The first plugin loads from the listing's copy. The others need copies of
        // their own: each version's unload is checked by its copy.
        let mut listing_copy = Some((listed.copy, listed.open));
        let mut plugins = BTreeMap::new();
        let mut failed = None;
        let watcher = *self.watcher.lock();
        for name in &listed.names {
            // Quiet while it is built: the caller delivers its first events.
            let forward = Arc::new(Forward {
                hub: Arc::downgrade(&self.hub),
                plugin: name.clone(),
                quiet: AtomicBool::new(true),
            });
            let config = Config {
                watch: false,
                ..self.config.plugin.clone()
            };
            let mut builder = HotPlugin::builder_for(path, name, self.expected)
                .config(config)
                .cancel_copy_with(self.stopped.clone())
                .forward_events(forward.clone() as Arc<dyn ForwardEvents>);
            if let Some((copy, open)) = listing_copy.take() {
                builder = builder.first_copy(copy, open);
            }
            let built = builder.build();
            forward.quiet.store(false, Ordering::SeqCst);
            match built {
                Ok(hot) => {
                    *hot.shared().watcher.lock() = watcher;
                    let hot = Arc::new(hot);
                    plugins.insert(name.clone(), Member { hot, forward });
                }
                Err(r) => {
                    self.hub.enqueue(DirectoryEvent::Rejected(r.clone()));
                    failed = Some(r);
                }
            }
        }
        if plugins.is_empty() {
            let r = failed.expect("a library with plugins loads at least one or fails");
            return (Ran::Done, Err(r));
        }
        let names: Vec<String> = plugins.keys().cloned().collect();
        let duplicates: Vec<DirectoryEvent> = {
            let mut libraries = self.libraries.lock();
            libraries.by_path.insert(path.to_path_buf(), plugins);
            names
                .iter()
                .filter_map(|name| {
                    let holders = libraries.by_name.entry(name.clone()).or_default();
                    holders.insert(path.to_path_buf());
                    duplicate(name, holders, path)
                })
                .collect()
        };
        self.hub.enqueue(DirectoryEvent::Added {
            path: path.to_path_buf(),
            plugins: names.clone(),
        });
        for duplicate in duplicates {
            self.hub.enqueue(duplicate);
        }
        (Ran::Done, Ok(LibraryReload::Added { plugins: names }))
    }
}

/// Passes one plugin's events on as the directory's. While the directory works on
/// the plugin's library (`quiet`) they are only queued: the directory delivers them,
/// with its own, once it has released its locks.
struct Forward {
    hub: Weak<EventHub<DirectoryEvent>>,
    plugin: String,
    quiet: AtomicBool,
}

impl ForwardEvents for Forward {
    fn enqueue(&self, event: &ReloadEvent) {
        if let Some(hub) = self.hub.upgrade() {
            hub.enqueue(DirectoryEvent::Plugin {
                plugin: self.plugin.clone(),
                event: event.clone(),
            });
        }
    }

    fn flush(&self) {
        if !self.quiet.load(Ordering::SeqCst) {
            if let Some(hub) = self.hub.upgrade() {
                hub.flush();
            }
        }
    }
}

/// The [`DirectoryEvent::Duplicate`] for `name` once `added` joined its `holders`
/// (in path order; the first serves), if it has company.
fn duplicate(name: &str, holders: &BTreeSet<PathBuf>, added: &Path) -> Option<DirectoryEvent> {
    let mut in_order = holders.iter();
    let serving = in_order.next()?;
    let next = in_order.next()?;
    let shadowed = if serving == added { next } else { added };
    Some(DirectoryEvent::Duplicate {
        plugin: name.to_string(),
        serving: serving.clone(),
        shadowed: vec![shadowed.to_path_buf()],
    })
}

/// A new library's plugins and the copy they were read from. The library stays open
/// until the first plugin has loaded the same copy, so that load only adds a
/// reference. (Declared before the copy: a copy must be closed after its library.)
struct Listed {
    names: Vec<String>,
    /// The library, open in this process (not when isolated: a process of its own
    /// listed it).
    open: Option<Arc<PluginLibrary>>,
    copy: ShadowCopy,
}
