//! [`HotPlugin`]: one plugin that is swapped for each new build of its library file.
//!
//! The facade over the machinery below it: the shared watcher (`watcher.rs`) feeds
//! the debouncer (`debounce.rs`), which runs the pipeline (`pipeline.rs`) on the
//! shared pool (`pool.rs`); old versions drain and unload (`drain.rs`).

use crate::debounce::{self, Debouncer, Ran, Target};
use crate::drain::{self, Retirement};
use crate::events::ForwardEvents;
use crate::events::{
    Callback, EventHub, PluginEvents, Rejection, ReloadEvent, ReloadOutcome, Stage,
};
use crate::handle::HotHandle;
use crate::hold::ReloadHold;
use crate::pipeline::{self, Config, Shared, Start};
use crate::shadow::{self, ShadowCopy};
use crate::status::HotStatus;
use crate::watcher::{self, Registration, WatcherKind};
use fidius::host::PluginLibrary;
use fidius::InterfaceInfo;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Builds a [`HotPlugin`]; see [`HotPlugin::builder`].
pub struct HotPluginBuilder {
    path: PathBuf,
    plugin: String,
    expected: InterfaceInfo,
    config: Config,
    callbacks: Vec<Callback>,
    first_copy: Option<(ShadowCopy, Option<Arc<PluginLibrary>>)>,
    forward: Option<Arc<dyn ForwardEvents>>,
    /// Stops the first copy when set (a hot directory being dropped).
    cancel: Arc<AtomicBool>,
}

impl HotPluginBuilder {
    /// Loads the first version from `copy`, a copy of the file already made and
    /// opened as `library` (directory mode does that to list a new library's plugins),
    /// instead of copying the file again.
    pub(crate) fn first_copy(
        mut self,
        copy: ShadowCopy,
        library: Option<Arc<PluginLibrary>>,
    ) -> Self {
        self.first_copy = Some((copy, library));
        self
    }

    /// Sends every event to `forward` instead of the hot plugin's own subscribers and
    /// callbacks (a hot directory's plugins report through the directory).
    pub(crate) fn forward_events(mut self, forward: Arc<dyn ForwardEvents>) -> Self {
        self.forward = Some(forward);
        self
    }

    /// The first copy stops when `cancel` is set (a hot directory being dropped).
    pub(crate) fn cancel_copy_with(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.cancel = cancel;
        self
    }

    /// All settings at once, as a hot directory configured them.
    pub(crate) fn config(mut self, config: Config) -> Self {
        self.config = config;
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

    /// The most old versions that may stay pinned in memory (default 8; see
    /// [`UnloadState::Pinned`](crate::UnloadState::Pinned)), and what to do past that:
    /// warn with a [`ReloadEvent::PinnedLimit`] for every further pinned version
    /// ([`PinnedPolicy::Warn`](crate::PinnedPolicy::Warn), the default), or refuse new
    /// builds ([`PinnedPolicy::Refuse`](crate::PinnedPolicy::Refuse)).
    pub fn max_pinned(mut self, max: usize, policy: crate::PinnedPolicy) -> Self {
        self.config.max_pinned = max;
        self.config.pinned_policy = policy;
        self
    }

    /// Runs each build in a process of its own (fidius-isolated), with `settings`
    /// (each call's deadline, workers, memory limit...): a crash in the plugin costs
    /// the calls in it, not the host, and the process is restarted; so does an
    /// endless call, given a deadline (`Isolation::deadline`; there is none by
    /// default). Needs the feature `isolated`. A new
    /// build starts in a new process and is validated there before the swap; calls in
    /// flight finish in the old process, which then exits, so an old version leaves
    /// nothing behind ([`UnloadState::Exited`](crate::UnloadState::Exited)), even one
    /// that would pin itself in memory in-process. Calls cost a round trip between
    /// two processes instead of a function call. Linux only.
    #[cfg(all(feature = "isolated", target_os = "linux"))]
    pub fn isolated(mut self, settings: fidius_isolated::Isolation) -> Self {
        self.config.isolation = Some(settings);
        self
    }

    /// Puts each new version on probation: for a while (by time, or by calls) the
    /// version it replaced stays loaded, and if its calls fail (panics, crashes...;
    /// see [`Probation`](crate::Probation)) or its health check does, the previous
    /// version is swapped back ([`ReloadEvent::RolledBack`]) and the failed build is
    /// quarantined until the file changes. Off by default.
    pub fn probation(mut self, probation: crate::Probation) -> Self {
        self.config.probation = Some(probation);
        self
    }

    /// A check run against each new version after it loaded and validated, before
    /// it serves any call (a canary call, say). An `Err` rejects the build at
    /// [`Stage::Check`](crate::Stage::Check); the current version keeps serving.
    /// A panic in the check counts as an `Err`. It runs on the reloading thread
    /// (a pool worker for watched reloads) with the reload locks held: keep it
    /// quick, and do not reload or roll back from it.
    pub fn pre_swap_check(
        mut self,
        check: impl Fn(&crate::VersionHandle) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.config.pre_swap_check = Some(crate::probation::Check(Arc::new(check)));
        self
    }

    /// Loads only builds that `trust` accepts: signed by one of its keys (the
    /// signature in the file beside the library, named as it plus `.sig`), or with one
    /// of its pinned SHA-256 digests. Each build is judged on its private copy (the
    /// bytes that will be loaded, hashed as they are copied) before the dynamic loader
    /// sees it; the signature is read as a pair with the library, and a signature that
    /// changes meanwhile is read again with a fresh copy. An untrusted build is
    /// rejected at the [`Stage::Trust`] stage (a `LoadError::Untrusted`), the first
    /// one included, and the current version keeps serving. A change to the
    /// signature file alone is a change of the plugin: deploy the signature first,
    /// then the library (or both within the debounce), and either order converges.
    ///
    /// See `fidius::host::trust`, and `fidius keygen`/`sign` in the `fidius-cli` crate.
    pub fn trust(mut self, trust: fidius::host::trust::Trust) -> Self {
        self.config.trust = Some(Arc::new(trust));
        self
    }

    /// Keeps the last good build in `dir`: each build that passed validation (and its
    /// probation, when there is one) is copied there, one file per plugin, replacing
    /// the one before. If the plugin file is refused when the hot plugin is built (a
    /// bad deploy, then a restart), the kept build serves instead, with a
    /// [`ReloadEvent::StartedFromLastGood`], and the file is watched as usual.
    ///
    /// `dir` is made private to this user (mode 0700) if it does not exist, and must
    /// be private if it does, as the shadow directory must. With a
    /// [`trust`](Self::trust), signatures are kept too, and the kept build is judged
    /// again before it loads. Off by default.
    pub fn last_known_good(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.last_good = Some(Arc::new(crate::last_good::LastGood::new(dir.into())));
        self
    }

    /// Counts into `metrics` instead of counters of its own: give several hot plugins
    /// the same value to count them together. See [`HotPlugin::metrics`].
    pub fn metrics(mut self, metrics: Arc<crate::HotMetrics>) -> Self {
        self.config.metrics = metrics;
        self
    }

    /// The largest library file loaded (default 512 MiB). A larger file is refused
    /// at the [`Stage::Copy`] stage from its size alone, without reading it.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.config.max_file_size = bytes;
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

/// A plugin that follows its library file: each new build is copied, loaded,
/// validated and swapped in while calls already running finish on the version they
/// started on. See the crate docs.
pub struct HotPlugin {
    shared: Arc<Shared>,
    /// The watch and the debouncer behind it, unless `watch(false)`.
    watching: Option<Watching>,
}

/// A watched file: its registration with the process's watcher, and the debouncer the
/// watcher feeds. The target is held here, so dropping this stops everything.
struct Watching {
    registration: Registration,
    /// The signature file's, with a trust: a new signature is a change of the plugin.
    _signature: Option<Registration>,
    debouncer: Arc<Debouncer>,
    _target: Arc<FileTarget>,
}

/// What the debouncer drives for one watched file.
struct FileTarget {
    shared: Arc<Shared>,
}

impl Target for FileTarget {
    fn debounce(&self) -> Duration {
        self.shared.config().debounce
    }

    fn paused(&self) -> bool {
        self.shared.is_paused()
    }

    fn run(&self, _path: &Path, attempt: u32) -> Ran {
        self.shared.reload_settled(attempt, None)
    }

    fn gone(&self, _path: &Path) -> Ran {
        self.shared.emit(ReloadEvent::Removed {
            path: self.shared.source().to_path_buf(),
        });
        Ran::Done
    }

    fn rescan(&self) -> Vec<PathBuf> {
        vec![self.shared.source().to_path_buf()]
    }

    fn moved(&self, from: Option<PathBuf>, to: Option<PathBuf>, kind: Option<WatcherKind>) {
        *self.shared.watcher.lock() = kind;
        let directory = self
            .shared
            .source()
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        self.shared.emit(ReloadEvent::Retargeted {
            directory,
            from,
            to,
        });
    }
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
            config: Config::default(),
            callbacks: Vec::new(),
            first_copy: None,
            forward: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    fn start(b: HotPluginBuilder) -> Result<Self, Rejection> {
        // Compared with the watcher's paths, so its directory must be canonical. A path
        // that cannot be resolved is kept as given: the copy step says what is wrong.
        // The path as configured (made absolute), not as it resolves now: a directory
        // switched under it is followed (see `watcher.rs`).
        let source = std::path::absolute(&b.path).unwrap_or(b.path);
        let events = match b.forward {
            Some(forward) => PluginEvents::Forward(forward),
            None => {
                let hub = EventHub::default();
                for cb in b.callbacks {
                    hub.on_event(cb);
                }
                PluginEvents::Own(hub)
            }
        };
        for stale in shadow::remove_stale(&source, &b.config.store.dir) {
            tracing::info!(path = %stale.display(), "removed a shadow copy left by an earlier run");
        }
        events.emit(
            &b.plugin,
            ReloadEvent::Detected {
                path: source.clone(),
                cause: crate::events::Cause::Start,
            },
        );
        // The watch starts after the first copy: a change in between is found by
        // comparing the file then and now.
        let before = debounce::fingerprint(&source);
        let retirement = Arc::new(Retirement::default());
        let first = match b.first_copy {
            Some((copy, listed)) => Ok((copy, listed)),
            None => pipeline::make_copy(&source, &b.config, 1, &b.cancel).map(|copy| (copy, None)),
        }
        .and_then(|copy| {
            pipeline::load_version(
                &source,
                &b.plugin,
                &b.expected,
                copy,
                1,
                None,
                retirement.clone(),
                b.config.isolation.as_ref(),
            )
        })
        .map(|v| v.expect("with no current version, content is never unchanged"));
        let mut from_last_good = false;
        let first = match first {
            Ok(first) => first,
            Err(r) => {
                b.config.metrics.rejected();
                events.emit(&b.plugin, ReloadEvent::Rejected(r.clone()));
                // A restart after a bad deploy: the last good build, if one is kept.
                let kept = b.config.last_good.as_ref().and_then(|store| {
                    let file = store.find(&source, &b.plugin)?;
                    let loaded = pipeline::make_copy(&file, &b.config, 1, &b.cancel)
                        .and_then(|copy| {
                            pipeline::load_version(
                                &file,
                                &b.plugin,
                                &b.expected,
                                (copy, None),
                                1,
                                None,
                                retirement.clone(),
                                b.config.isolation.as_ref(),
                            )
                        });
                    match loaded {
                        Ok(v) => Some((file, v?)),
                        Err(why) => {
                            tracing::warn!(plugin = %b.plugin, last_good = %file.display(), reason = %why, "the last good build cannot be loaded either");
                            None
                        }
                    }
                });
                let Some((last_good, first)) = kept else {
                    return Err(r);
                };
                events.emit(
                    &b.plugin,
                    ReloadEvent::StartedFromLastGood {
                        path: source.clone(),
                        last_good,
                        rejection: r,
                    },
                );
                from_last_good = true;
                first
            }
        };
        let loaded = first.info();
        let shared = Shared::new(Start {
            plugin: b.plugin,
            source,
            expected: b.expected,
            config: b.config,
            events,
            first,
            retirement,
        });
        let mut fallback = None;
        let watching = if shared.config().watch {
            let watching = watch_file(&shared)?;
            let kind = watching.registration.kind;
            *shared.watcher.lock() = Some(kind);
            fallback = watching
                .registration
                .fallback
                .clone()
                .map(|why| (kind, why));
            if debounce::fingerprint(shared.source()) != before {
                watching.debouncer.touch(shared.source());
            }
            Some(watching)
        } else {
            None
        };
        // Reported only now that the hot plugin exists: a failed start loaded nothing.
        // Kept as proven: with probation set, only a build that passed one is (the
        // first version is never on probation).
        if !from_last_good && shared.config().probation.is_none() {
            shared.keep_as_last_good(loaded.content_hash);
        }
        shared.emit(ReloadEvent::Loaded(loaded));
        if let Some((WatcherKind::Polling, reason)) = fallback {
            let directory = shared
                .source()
                .parent()
                .unwrap_or(Path::new(""))
                .to_path_buf();
            shared.emit(ReloadEvent::WatcherFallback { directory, reason });
        }
        Ok(Self { shared, watching })
    }

    /// A handle for calls, cheap to clone and usable from any thread: give it to the
    /// interface's typed client (`MyPluginClient::new(hot.handle())`). Every call goes
    /// to the version current when it starts.
    pub fn handle(&self) -> HotHandle {
        HotHandle::new(self.shared.clone())
    }

    /// Swaps the version the current one replaced back in, while it is still kept
    /// (the current version is on probation), and quarantines the current build
    /// like a failed probation. Returns `(from, to)` generations, or `None` when no
    /// previous version is kept. Waits for holds and a reload under way (so never
    /// call it while holding a [`hold`](Self::hold) on the same thread).
    pub fn rollback(&self) -> Option<(u64, u64)> {
        self.shared.roll_back("a rollback was asked for")
    }

    /// Reloads now, whatever the watcher saw, on the calling thread. Waits for any
    /// [`hold`](Self::hold) to end (so never call it while holding one on the same
    /// thread). May be called from an event callback.
    pub fn reload_now(&self) -> Result<ReloadOutcome, Rejection> {
        self.shared.reload_now(None)
    }

    /// As [`reload_now`](Self::reload_now), waiting at most `limit` for holds to end:
    /// past it, the reload is refused at the [`Stage::Held`] stage and nothing is
    /// done. Either way, a reload that must wait reports
    /// [`ReloadEvent::WaitingForHold`] first.
    pub fn reload_within(&self, limit: std::time::Duration) -> Result<ReloadOutcome, Rejection> {
        self.shared.reload_now(Some(limit))
    }

    /// A channel that receives every event from now on.
    pub fn subscribe(&self) -> Receiver<ReloadEvent> {
        self.hub().subscribe()
    }

    /// Calls `f` for every event from now on, on the thread where it happens (a
    /// hot-reload worker, or the thread calling [`reload_now`](Self::reload_now)).
    /// No lock is held while `f` runs: it may call any method of the hot plugin.
    pub fn on_event(&self, f: impl Fn(&ReloadEvent) + Send + Sync + 'static) {
        self.hub().on_event(Arc::new(f));
    }

    fn hub(&self) -> &EventHub<ReloadEvent> {
        self.shared
            .events
            .hub()
            .expect("a hot plugin that is not a directory's has its own events")
    }

    /// Stops reacting to file changes until [`resume`](Self::resume): the watcher's
    /// reloads only. Changes seen while paused are reloaded on resume, and
    /// [`reload_now`](Self::reload_now) still works. To keep *every* reload off,
    /// `reload_now` included, for a moment, take a [`hold`](Self::hold) instead.
    ///
    /// Without a watcher ([`HotPluginBuilder::watch`]`(false)`) nothing reacts to the
    /// file, so there is nothing to pause: this does nothing, and
    /// [`HotStatus::paused`](crate::HotStatus::paused) stays `false`.
    pub fn pause(&self) {
        if self.watching.is_some() {
            self.shared.set_paused(true);
        }
    }

    /// Reacts to file changes again, starting with any seen while paused.
    pub fn resume(&self) {
        self.shared.set_paused(false);
        if let Some(watching) = &self.watching {
            watching.debouncer.kick();
        }
    }

    /// Holds every reload off until the returned guard is dropped: while the host does
    /// something that must not see a swap. Calls keep working; a change seen meanwhile
    /// is reloaded afterwards, and [`reload_now`](Self::reload_now) waits for the hold
    /// to end (saying so with [`ReloadEvent::WaitingForHold`];
    /// [`reload_within`](Self::reload_within) waits at most as long as it is told).
    /// Unlike [`pause`](Self::pause), which only stops the watcher's reloads, a hold
    /// is meant to be short.
    pub fn hold(&self) -> ReloadHold<'_> {
        ReloadHold::new(
            &self.shared.hold,
            self.watching.as_ref().map(|w| &w.debouncer),
        )
    }

    /// The plugin's state, for a hot directory that drives it.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.shared.current.with(|v| v.generation)
    }

    /// A snapshot of versions, drains and counters.
    pub fn status(&self) -> HotStatus {
        self.shared.status()
    }

    /// Its counters (reloads, rejections, rollbacks...) and gauges (versions
    /// draining and pinned), to read at any time; see [`HotMetrics`](crate::HotMetrics).
    pub fn metrics(&self) -> Arc<crate::HotMetrics> {
        self.shared.config().metrics.clone()
    }
}

/// Registers the hot plugin's file with the process's watcher.
fn watch_file(shared: &Arc<Shared>) -> Result<Watching, Rejection> {
    let target = Arc::new(FileTarget {
        shared: shared.clone(),
    });
    let debouncer = Debouncer::new(Arc::downgrade(&target) as Weak<dyn Target>);
    let source = shared.source();
    let dir = source.parent().unwrap_or(Path::new(""));
    // Whatever directory the change was seen in, it is the configured file that
    // changed.
    let configured = source.to_path_buf();
    let sink = debouncer.sink(move |_| Some(configured.clone()));
    let cannot_watch = |reason: String| {
        let reason = format!("cannot watch the plugin's directory: {reason}");
        Rejection::new(source, Stage::Detect, reason, None)
    };
    let signature = match &shared.config().trust {
        Some(_) => {
            let name = fidius::host::trust::signature_path(source);
            let name = name.file_name().map(|n| n.to_os_string());
            Some(watcher::watch(dir, name, sink.clone()).map_err(cannot_watch)?)
        }
        None => None,
    };
    let registration = watcher::watch(dir, source.file_name().map(|n| n.to_os_string()), sink)
        .map_err(cannot_watch)?;
    Ok(Watching {
        registration,
        _signature: signature,
        debouncer,
        _target: target,
    })
}

impl Drop for HotPlugin {
    fn drop(&mut self) {
        // No more signals or timers, then no reload running or to come.
        drop(self.watching.take());
        self.shared.stop();
        // Old versions whose calls finished close now; those still in a call are
        // polled for until they are free, or until the last handle goes (which frees
        // them with everything).
        drain::reclaim_now_and_later(&self.shared);
    }
}
