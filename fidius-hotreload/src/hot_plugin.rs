//! [`HotPlugin`]: one plugin that is swapped for each new build of its library file.

use crate::events::{Callback, EventHub, Rejection, ReloadEvent, Stage, VersionInfo};
use crate::handle::HotHandle;
use crate::hazard::HazardCell;
use crate::shadow::{self, ShadowCopy};
use crate::unload::UnloadState;
use crate::version::{Msg, Version};
use fidius::host::PluginLibrary;
use fidius::{InterfaceInfo, PluginHandle};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

/// Default debounce: how long the file must be quiet before a reload starts.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(25);
/// Default bound on old versions still draining at once.
pub const DEFAULT_MAX_RETAINED: usize = 16;

/// Settings of a [`HotPlugin`].
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub debounce: Duration,
    pub store: shadow::Store,
    pub watch: bool,
    pub max_retained: usize,
    pub load_retries: u32,
}

/// Builds a [`HotPlugin`]; see [`HotPlugin::builder`].
pub struct HotPluginBuilder {
    path: PathBuf,
    plugin: String,
    expected: InterfaceInfo,
    config: Config,
    callbacks: Vec<Callback>,
    first_copy: Option<(ShadowCopy, Arc<PluginLibrary>)>,
}

impl HotPluginBuilder {
    /// Loads the first version from `copy`, a copy of the file already made and
    /// opened as `library` (directory mode does that to list a new library's plugins),
    /// instead of copying the file again.
    pub(crate) fn first_copy(mut self, copy: ShadowCopy, library: Arc<PluginLibrary>) -> Self {
        self.first_copy = Some((copy, library));
        self
    }

    /// Where copies go, as a hot directory configured it.
    pub(crate) fn store(mut self, store: shadow::Store) -> Self {
        self.config.store = store;
        self
    }

    /// How long the file must be quiet before a reload starts (default 25 ms). After
    /// that the file must also keep the same size and modification time over a
    /// further half debounce before it is copied.
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.config.debounce = debounce;
        self
    }

    /// The private directory for copies that are files (default:
    /// [`default_shadow_dir`](crate::default_shadow_dir)): used where copies cannot be
    /// kept in memory, or with [`copies_in_memory`](Self::copies_in_memory)`(false)`.
    ///
    /// It must be a directory owned by this process's user that nobody else may write
    /// to (it is created with mode 0700 if missing); anything else is refused at the
    /// [`Stage::Security`] stage, checked on every copy.
    pub fn shadow_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.store.dir = dir.into();
        self
    }

    /// Load each version from an anonymous in-memory file (`true`, the default), where
    /// the platform has them (Linux, `memfd_create`), or from a file in the
    /// [`shadow_dir`](Self::shadow_dir) (`false`, and always elsewhere). The
    /// environment variable `FIDIUS_HOTRELOAD_NO_MEMFD` turns in-memory copies off for
    /// the whole process.
    pub fn copies_in_memory(mut self, in_memory: bool) -> Self {
        self.config.store.in_memory = in_memory;
        self
    }

    /// Watch the file and reload on change (default), or not: with `false`, reloads
    /// happen only through [`HotPlugin::reload_now`].
    pub fn watch(mut self, watch: bool) -> Self {
        self.config.watch = watch;
        self
    }

    /// The most old versions that may still be draining at once (default 16). A new
    /// build that arrives while that many are still in use is rejected at the
    /// [`Stage::Retention`] stage; the current version keeps serving, and the next
    /// change (or `reload_now`) tries again.
    pub fn max_retained(mut self, max: usize) -> Self {
        self.config.max_retained = max.max(1);
        self
    }

    /// How often a watched file that fails to load is tried again, one debounce
    /// apart, before the build is reported rejected (default 3): a file can still be
    /// settling when its events have stopped.
    pub fn load_retries(mut self, retries: u32) -> Self {
        self.config.load_retries = retries;
        self
    }

    /// A callback for every event, from the initial load on.
    pub fn on_event(mut self, f: impl Fn(&ReloadEvent) + Send + Sync + 'static) -> Self {
        self.callbacks.push(Arc::new(f));
        self
    }

    /// Loads the first version and, unless disabled, starts watching.
    pub fn build(self) -> Result<HotPlugin, Rejection> {
        HotPlugin::start(self)
    }
}

/// An old version still in use.
#[derive(Clone)]
struct Draining {
    generation: u64,
    version: Weak<Version>,
}

/// State shared by the hot plugin, its handles and its worker.
pub(crate) struct Shared {
    pub current: HazardCell<Version>,
    pub expected: InterfaceInfo,
    plugin: String,
    source: PathBuf,
    config: Config,
    hub: EventHub<ReloadEvent>,
    draining: Mutex<Vec<Draining>>,
    pinned: Mutex<Vec<u64>>,
    next_generation: AtomicU64,
    reloads: AtomicU64,
    rejections: AtomicU64,
    reload_lock: Mutex<()>,
    hold: RwLock<()>,
    paused: AtomicBool,
    tx: Sender<Msg>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new version was swapped in.
    Swapped {
        /// The version swapped out.
        from: u64,
        /// The version now serving.
        to: u64,
    },
    /// The file's content equals the running version's; nothing changed.
    Unchanged {
        /// The generation that keeps serving.
        generation: u64,
    },
}

/// A version still draining, as seen by [`HotPlugin::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainingVersion {
    /// Its generation.
    pub generation: u64,
    /// References still holding it (in-flight calls and anything kept from them).
    pub in_flight: usize,
}

/// A snapshot of a hot-reloading plugin.
#[derive(Debug, Clone)]
pub struct HotStatus {
    /// The plugin's name.
    pub plugin: String,
    /// The watched file.
    pub source: PathBuf,
    /// The current version.
    pub current: VersionInfo,
    /// When the current version was loaded.
    pub loaded_at: SystemTime,
    /// Old versions still in use.
    pub draining: Vec<DrainingVersion>,
    /// Old versions closed but still mapped (see [`UnloadState::Pinned`]).
    pub pinned: Vec<u64>,
    /// Versions swapped in since the start (the first load not counted).
    pub reloads: u64,
    /// Builds refused since the start.
    pub rejections: u64,
    /// Watching is paused.
    pub paused: bool,
    /// The file is watched at all.
    pub watching: bool,
}

/// A plugin that follows its library file: each new build is copied, loaded,
/// validated and swapped in while calls already running finish on the version they
/// started on. See the crate docs.
pub struct HotPlugin {
    shared: Arc<Shared>,
    worker: Option<std::thread::JoinHandle<()>>,
    _watcher: Option<crate::watch::Watcher>,
}

/// Holds reloads off while alive; see [`HotPlugin::hold`].
pub struct ReloadHold<'a> {
    _guard: RwLockReadGuard<'a, ()>,
}

impl HotPlugin {
    /// Starts building a hot plugin for plugin `plugin` in the library at `path`,
    /// implementing interface `I` (write `dyn YourTrait`).
    ///
    /// ```no_run
    /// # mod my_interface {
    /// #     #[fidius::plugin_interface(version = 1)]
    /// #     pub trait MyPlugin: Send + Sync { fn process(&self, input: String) -> String; }
    /// # }
    /// use fidius_hotreload::HotPlugin;
    /// use my_interface::{MyPlugin, MyPluginClient};
    ///
    /// let hot = HotPlugin::builder::<dyn MyPlugin>("target/debug/libmy_plugin.so", "MyImpl")
    ///     .build()?;
    /// let client = MyPluginClient::new(hot.handle())?;
    /// println!("{}", client.process("hello".into())?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder<I: fidius::Interface + ?Sized>(
        path: impl Into<PathBuf>,
        plugin: &str,
    ) -> HotPluginBuilder {
        Self::builder_for(path, plugin, *fidius::interface_info::<I>())
    }

    /// As [`builder`](Self::builder), with the interface given as a value (for
    /// example [`InterfaceInfo`] taken from a client type).
    pub fn builder_for(
        path: impl Into<PathBuf>,
        plugin: &str,
        expected: InterfaceInfo,
    ) -> HotPluginBuilder {
        HotPluginBuilder {
            path: path.into(),
            plugin: plugin.to_string(),
            expected,
            config: Config {
                debounce: DEFAULT_DEBOUNCE,
                store: shadow::Store::new(),
                watch: true,
                max_retained: DEFAULT_MAX_RETAINED,
                load_retries: 3,
            },
            callbacks: Vec::new(),
            first_copy: None,
        }
    }

    fn start(b: HotPluginBuilder) -> Result<Self, Rejection> {
        let (tx, rx) = channel();
        let hub = EventHub::default();
        for cb in b.callbacks {
            hub.on_event(cb);
        }
        for stale in shadow::remove_stale(&b.path, &b.config.store.dir) {
            tracing::info!(path = %stale.display(), "removed a shadow copy left by an earlier run");
        }
        hub.emit_traced(
            &b.plugin,
            ReloadEvent::Detected {
                path: b.path.clone(),
            },
        );
        let first = match b.first_copy {
            Some((copy, listed)) => Ok((copy, Some(listed))),
            None => make_copy(&b.path, &b.config, 1).map(|copy| (copy, None)),
        }
        .and_then(|copy| load_version(&b.path, &b.plugin, &b.expected, copy, 1, None, &tx))
        .inspect_err(|r| hub.emit_traced(&b.plugin, ReloadEvent::Rejected(r.clone())))?
        .expect("with no current version, content is never unchanged");
        hub.emit_traced(&b.plugin, ReloadEvent::Loaded(first.info()));
        let shared = Arc::new(Shared {
            current: HazardCell::new(Arc::new(first)),
            expected: b.expected,
            plugin: b.plugin,
            source: b.path,
            config: b.config,
            hub,
            draining: Mutex::new(Vec::new()),
            pinned: Mutex::new(Vec::new()),
            next_generation: AtomicU64::new(2),
            reloads: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            reload_lock: Mutex::new(()),
            hold: RwLock::new(()),
            paused: AtomicBool::new(false),
            tx: tx.clone(),
        });
        let watcher = if shared.config.watch {
            Some(
                crate::watch::Watcher::new(&shared.source, tx.clone()).map_err(|e| Rejection {
                    path: shared.source.clone(),
                    stage: Stage::Detect,
                    reason: format!("cannot watch the plugin's directory: {e}"),
                    error: None,
                })?,
            )
        } else {
            None
        };
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name(format!("fidius-hotreload:{}", shared.plugin))
            .spawn(move || crate::watch::run_worker(worker_shared, rx))
            .expect("spawning the hot-reload worker thread");
        Ok(Self {
            shared,
            worker: Some(worker),
            _watcher: watcher,
        })
    }

    /// A handle for calls, cheap to clone and usable from any thread: give it to the
    /// interface's typed client (`MyPluginClient::new(hot.handle())`). Every call goes
    /// to the version current when it starts.
    pub fn handle(&self) -> HotHandle {
        HotHandle::new(self.shared.clone())
    }

    /// Reloads now, whatever the watcher saw. Waits for any [`hold`](Self::hold) to
    /// end (so never call it while holding one on the same thread).
    pub fn reload_now(&self) -> Result<ReloadOutcome, Rejection> {
        self.shared.reload(true)
    }

    /// A channel that receives every event from now on.
    pub fn subscribe(&self) -> Receiver<ReloadEvent> {
        self.shared.hub.subscribe()
    }

    /// Calls `f` for every event from now on, on the thread where it happens (the
    /// worker thread, or the thread calling [`reload_now`](Self::reload_now)).
    pub fn on_event(&self, f: impl Fn(&ReloadEvent) + Send + Sync + 'static) {
        self.shared.hub.on_event(Arc::new(f));
    }

    /// Stops reacting to file changes until [`resume`](Self::resume). Changes seen while
    /// paused are reloaded on resume. `reload_now` still works.
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
    }

    /// Reacts to file changes again, starting with any seen while paused.
    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
        let _ = self.shared.tx.send(Msg::Wake);
    }

    /// Holds reloads off until the returned guard is dropped: while the host does
    /// something that must not see a swap. Calls keep working; a change seen meanwhile
    /// is reloaded afterwards.
    pub fn hold(&self) -> ReloadHold<'_> {
        ReloadHold {
            _guard: self.shared.hold.read(),
        }
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.shared.current.with(|v| v.generation)
    }

    /// A snapshot of versions, drains and counters.
    pub fn status(&self) -> HotStatus {
        self.shared.status()
    }
}

impl Drop for HotPlugin {
    fn drop(&mut self) {
        let _ = self.shared.tx.send(Msg::Stop);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        // Old versions whose calls finished since the worker's last look close now.
        // Those still in a call are watched by a small thread of their own until they
        // are free, or until the last handle goes (which frees them with everything).
        if self.shared.reclaim() {
            let shared = Arc::downgrade(&self.shared);
            let reaper = std::thread::Builder::new()
                .name(format!("fidius-hotreload-drain:{}", self.shared.plugin))
                .spawn(move || crate::watch::drain_after_drop(shared));
            if let Err(e) = reaper {
                tracing::warn!(error = %e, "no thread to drain old versions; they close with the last handle");
            }
        }
    }
}

impl Shared {
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn emit(&self, event: ReloadEvent) {
        self.hub.emit_traced(&self.plugin, event);
    }

    /// Runs the pipeline once. With `report`, a rejection is counted and reported;
    /// without, the caller decides (it may retry).
    pub fn reload(&self, report: bool) -> Result<ReloadOutcome, Rejection> {
        let _hold = self.hold.write();
        let _serial = self.reload_lock.lock();
        let span = tracing::info_span!("fidius_reload", plugin = %self.plugin);
        let _span = span.enter();
        if report {
            self.emit(ReloadEvent::Detected {
                path: self.source.clone(),
            });
        }
        let result = self.reload_locked();
        if let Err(r) = &result {
            if report {
                self.reject(r.clone());
            }
        }
        result
    }

    /// Counts and reports a rejection.
    pub fn reject(&self, rejection: Rejection) {
        self.rejections.fetch_add(1, Ordering::Relaxed);
        self.emit(ReloadEvent::Rejected(rejection));
    }

    fn reload_locked(&self) -> Result<ReloadOutcome, Rejection> {
        let current = self.current.load_full();
        self.prune_draining();
        let draining = self.draining.lock().len();
        if draining >= self.config.max_retained {
            return Err(Rejection {
                path: self.source.clone(),
                stage: Stage::Retention,
                reason: format!(
                    "{} old versions are still in use (the limit is {}); the new build waits",
                    draining, self.config.max_retained
                ),
                error: None,
            });
        }
        // Reloads are serialized, so the number is only taken (below) once the new
        // version is actually swapped in: generations count versions, not attempts.
        let generation = self.next_generation.load(Ordering::SeqCst);
        let copy = make_copy(&self.source, &self.config, generation)?;
        let loaded = load_version(
            &self.source,
            &self.plugin,
            &self.expected,
            (copy, None),
            generation,
            Some(&current),
            &self.tx,
        )?;
        let Some(new) = loaded else {
            let generation = current.generation;
            self.emit(ReloadEvent::Unchanged {
                path: self.source.clone(),
                generation,
            });
            return Ok(ReloadOutcome::Unchanged { generation });
        };
        let to = new.info();
        self.emit(ReloadEvent::Loaded(to.clone()));
        self.next_generation.store(generation + 1, Ordering::SeqCst);
        // Reloads are serialized, so `current` is what the swap replaces.
        self.current.swap(Arc::new(new));
        self.reloads.fetch_add(1, Ordering::Relaxed);
        let from = current.info();
        let outcome = ReloadOutcome::Swapped {
            from: from.generation,
            to: to.generation,
        };
        self.emit(ReloadEvent::Swapped { from, to });
        let generation = current.generation;
        self.draining.lock().push(Draining {
            generation,
            version: Arc::downgrade(&current),
        });
        // Give the old version up at once unless a call is still in it; whatever else
        // holds it (a stream) keeps it alive. Reclaiming first means the count below
        // needs no second look at the slots unless a call is still in it.
        if self.reclaim() {
            // The worker polls until the calls finish (it may be idle in a long wait).
            let _ = self.tx.send(Msg::Wake);
        }
        let in_flight = self.in_flight(&current);
        drop(current);
        if in_flight > 0 {
            self.emit(ReloadEvent::Draining {
                generation,
                in_flight,
            });
        }
        Ok(outcome)
    }

    /// Gives up the old versions no call is in any more (each closes once nothing
    /// else holds it). Returns whether some are still in calls.
    pub fn reclaim(&self) -> bool {
        drop(self.current.reclaim());
        self.current.has_retiring()
    }

    /// Calls and other holders of an old version, besides the caller's `version`.
    fn in_flight(&self, version: &Arc<Version>) -> usize {
        let others = Arc::strong_count(version) - 1;
        match self.current.retiring_calls(version) {
            // The retiring list holds one reference of its own.
            Some(calls) => calls + others - 1,
            None => others,
        }
    }

    fn prune_draining(&self) {
        self.draining
            .lock()
            .retain(|d| d.version.strong_count() > 0);
    }

    /// A version's library was closed: find out whether it left memory, let go of
    /// its copy, report.
    pub fn retired(&self, generation: u64, copy: ShadowCopy) {
        let state = copy.close();
        if state == UnloadState::Pinned {
            self.pinned.lock().push(generation);
        }
        self.draining.lock().retain(|d| d.generation != generation);
        self.emit(ReloadEvent::Unloaded { generation, state });
    }

    fn status(&self) -> HotStatus {
        let current = self.current.load_full();
        self.reclaim();
        self.prune_draining();
        let draining: Vec<_> = self.draining.lock().clone();
        let draining = draining
            .iter()
            .filter_map(|d| {
                let version = d.version.upgrade()?;
                Some(DrainingVersion {
                    generation: d.generation,
                    in_flight: self.in_flight(&version),
                })
            })
            .collect();
        HotStatus {
            plugin: self.plugin.clone(),
            source: self.source.clone(),
            current: current.info(),
            loaded_at: current.loaded_at,
            draining,
            pinned: self.pinned.lock().clone(),
            reloads: self.reloads.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
            paused: self.is_paused(),
            watching: self.config.watch,
        }
    }
}

/// Copies the watched file for version `generation`.
fn make_copy(source: &Path, config: &Config, generation: u64) -> Result<ShadowCopy, Rejection> {
    shadow::copy(source, &config.store, generation).map_err(|e| e.rejection(source, &config.store))
}

/// Loads and validates one version from its copy (let go of again on failure).
/// `listed` is a library already open from the same copy (directory mode), if any.
/// `current`, when given, is the running version: identical content gives `Ok(None)`,
/// and a handle into the same loaded library is refused.
fn load_version(
    source: &Path,
    plugin: &str,
    expected: &InterfaceInfo,
    (mut copy, listed): (ShadowCopy, Option<Arc<PluginLibrary>>),
    generation: u64,
    current: Option<&Version>,
    tx: &Sender<Msg>,
) -> Result<Option<Version>, Rejection> {
    let reject = |stage, reason: String, error: Option<fidius::LoadError>| Rejection {
        path: source.to_path_buf(),
        stage,
        reason,
        error: error.map(Arc::new),
    };
    if let Some(current) = current {
        if current.copy.content_hash == copy.content_hash {
            return Ok(None);
        }
    }
    // Messages name the user's file, not the copy's load path.
    let explain = |e: &fidius::LoadError| copy.explain(e, source);
    let library = PluginLibrary::open(copy.load_path());
    // The library the copy was listed with (directory mode) has done its job. Closed
    // now, it cannot make a failed copy look still in use (and so keep it forever).
    drop(listed);
    let library = library.map_err(|e| reject(Stage::Load, explain(&e), Some(e)))?;
    let handle: PluginHandle = library
        .handle(plugin, Some(expected))
        .map_err(|e| reject(Stage::Validate, explain(&e), Some(e)))?;
    drop(library);
    if let Some(current) = current {
        if handle.same_code(&current.handle) {
            return Err(reject(
                Stage::Validate,
                "the dynamic loader returned the library already loaded instead of the new file"
                    .into(),
                None,
            ));
        }
    }
    copy.loaded();
    Ok(Some(Version {
        generation,
        handle: ManuallyDrop::new(handle),
        copy: ManuallyDrop::new(copy),
        loaded_at: SystemTime::now(),
        retire: tx.clone(),
    }))
}
