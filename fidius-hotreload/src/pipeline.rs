//! The reload pipeline of one hot plugin: copy, load, validate, swap, retire.
//!
//! [`Shared`] is the state of one hot plugin, shared by its facade, its handles and
//! the jobs that reload it. A reload runs with the plugin's hold lock (for writing)
//! and its reload lock, so reloads of one plugin are serialized and wait for any
//! [`ReloadHold`](crate::ReloadHold). The events it produces are queued under the
//! locks and delivered only after both are released, so an event callback may call
//! any control (see `events.rs`), and no event of a later reload overtakes them.

use crate::debounce::{Ran, BACKOFF};
use crate::drain::{self, Drain, Retirement};
use crate::events::{
    Cause, PinnedPolicy, PluginEvents, Rejection, ReloadEvent, ReloadOutcome, Stage,
};
use crate::handoff::HandoffGate;
use crate::hazard::HazardCell;
use crate::hold::{Entered, HoldGate};
use crate::last_good::LastGood;
use crate::metrics::HotMetrics;
use crate::probation::{Check, OnProbation, Probation, Quarantined, Trial};
use crate::shadow::{self, ShadowCopy};
use crate::status::{DrainingVersion, HotStatus};
use crate::unload::UnloadState;
use crate::version::{Backend, Version};
use crate::watcher::WatcherKind;
use fidius::host::trust::{read_signature, signature_path, unreadable_signature, Trust};
use fidius::host::PluginLibrary;
use fidius::{InterfaceInfo, LoadError, PluginHandle};
use parking_lot::{Mutex, MutexGuard};
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

/// Default debounce: how long the file must be quiet before a reload starts.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(25);
/// Default bound on old versions still draining at once.
pub const DEFAULT_MAX_RETAINED: usize = 16;
/// Default number of retries of a file that fails to load.
const DEFAULT_LOAD_RETRIES: u32 = 3;
/// Default bound on old versions pinned in memory.
pub const DEFAULT_MAX_PINNED: usize = 8;
/// Default limit on the size of a library file: larger ones are refused unread.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 512 << 20;

/// Settings of one hot plugin (and of each plugin of a hot directory).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub debounce: Duration,
    pub store: shadow::Store,
    pub watch: bool,
    pub max_retained: usize,
    pub load_retries: u32,
    pub max_file_size: u64,
    pub max_pinned: usize,
    pub pinned_policy: PinnedPolicy,
    /// Each build runs in a process of its own, with these settings.
    pub isolation: Option<Isolation>,
    /// New versions are put on probation.
    pub probation: Option<Probation>,
    /// Run against a new version before it serves.
    pub pre_swap_check: Option<Check>,
    /// Only builds this trusts are loaded.
    pub trust: Option<Arc<Trust>>,
    /// Counted into; shared by every plugin given the same value.
    pub metrics: Arc<HotMetrics>,
    /// Where the last good build is kept, if anywhere.
    pub last_good: Option<Arc<LastGood>>,
}

/// Settings of isolated versions (`HotPluginBuilder::isolated`).
#[cfg(all(feature = "isolated", target_os = "linux"))]
pub(crate) type Isolation = fidius_isolated::Isolation;
/// Without isolation there are no settings to have.
#[cfg(not(all(feature = "isolated", target_os = "linux")))]
#[derive(Debug, Clone)]
pub(crate) enum Isolation {}

impl Default for Config {
    fn default() -> Self {
        Self {
            debounce: DEFAULT_DEBOUNCE,
            store: shadow::Store::new(),
            watch: true,
            max_retained: DEFAULT_MAX_RETAINED,
            load_retries: DEFAULT_LOAD_RETRIES,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_pinned: DEFAULT_MAX_PINNED,
            pinned_policy: PinnedPolicy::default(),
            isolation: None,
            probation: None,
            pre_swap_check: None,
            trust: None,
            metrics: Arc::default(),
            last_good: None,
        }
    }
}

/// An old version still in use.
#[derive(Clone)]
pub(crate) struct Draining {
    generation: u64,
    version: Weak<Version>,
}

impl Draining {
    pub fn of(version: &Arc<Version>) -> Self {
        Self {
            generation: version.generation,
            version: Arc::downgrade(version),
        }
    }
}

/// State shared by a hot plugin, its handles and the jobs that reload it.
pub(crate) struct Shared {
    pub current: HazardCell<Version>,
    expected: InterfaceInfo,
    plugin: String,
    source: PathBuf,
    config: Config,
    pub events: PluginEvents,
    draining: Mutex<Vec<Draining>>,
    pinned: Mutex<Vec<u64>>,
    next_generation: AtomicU64,
    reloads: AtomicU64,
    rejections: AtomicU64,
    /// Serializes reloads.
    reload_lock: Mutex<()>,
    /// Holds and reloads exclude each other here (`hold.rs`).
    pub hold: HoldGate,
    paused: AtomicBool,
    /// Set when the hot plugin is dropped: no reload starts after that.
    stopped: AtomicBool,
    polling: AtomicBool,
    /// Which watcher watches the file, if any.
    pub watcher: Mutex<Option<WatcherKind>>,
    /// The probation under way, if any (`probation.rs`).
    pub probation: Mutex<Option<OnProbation>>,
    /// Builds that failed their probation.
    pub quarantine: Mutex<Vec<Quarantined>>,
    /// A state handoff under way, for calls to wait on (`handoff.rs`).
    pub handoff: HandoffGate,
}

/// A version that was just loaded, and what to build a hot plugin from it.
pub(crate) struct Start {
    pub plugin: String,
    pub source: PathBuf,
    pub expected: InterfaceInfo,
    pub config: Config,
    pub events: PluginEvents,
    pub first: Version,
    pub retirement: Arc<Retirement>,
}

impl Shared {
    pub fn new(start: Start) -> Arc<Self> {
        let shared = Arc::new(Self {
            current: HazardCell::new(Arc::new(start.first)),
            expected: start.expected,
            plugin: start.plugin,
            source: start.source,
            config: start.config,
            events: start.events,
            draining: Mutex::new(Vec::new()),
            probation: Mutex::new(None),
            quarantine: Mutex::new(Vec::new()),
            handoff: HandoffGate::default(),
            pinned: Mutex::new(Vec::new()),
            next_generation: AtomicU64::new(2),
            reloads: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            reload_lock: Mutex::new(()),
            hold: HoldGate::default(),
            paused: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            watcher: Mutex::new(None),
        });
        let weak: Weak<dyn Drain> = Arc::downgrade(&shared) as Weak<dyn Drain>;
        start.retirement.report_to(weak);
        shared
    }

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

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    pub fn emit(&self, event: ReloadEvent) {
        self.config.metrics.count(&event);
        self.events.emit(&self.plugin, event);
    }

    /// A copy under way stops, and no reload starts from now on; returns at once.
    pub fn cancel(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// No reload starts from now on; returns once a reload already running is done.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        drop(self.reload_lock.lock());
    }

    /// Reloads now, on the caller's thread, waiting for the plugin's holds to end, for
    /// at most `limit` when one is given. A
    /// reload that must wait says so ([`ReloadEvent::WaitingForHold`]); one whose
    /// limit passes is refused at the [`Stage::Held`] stage, with nothing done. A
    /// rejection of the build is counted and reported.
    pub fn reload_now(
        self: &Arc<Self>,
        limit: Option<Duration>,
    ) -> Result<ReloadOutcome, Rejection> {
        // A limit too far to add is no limit.
        let deadline = limit.and_then(|l| Instant::now().checked_add(l));
        let (result, old) = {
            let _own = self.enter_gate(&self.hold, deadline, limit)?;
            let _serial = self.reload_lock.lock();
            self.queue(ReloadEvent::Detected {
                path: self.source.clone(),
                cause: Cause::Asked,
            });
            let (result, old) = self.pipeline();
            if let Err(r) = &result {
                self.queue_rejection(r.clone());
            }
            (result, old)
        };
        self.finish(old);
        result
    }

    /// Keeps the watched file as the last good build, on a worker, if it still has
    /// the content `content_hash` (see `last_good.rs`).
    pub(crate) fn keep_as_last_good(&self, content_hash: u64) {
        let Some(store) = self.config.last_good.clone() else {
            return;
        };
        let (source, plugin) = (self.source.clone(), self.plugin.clone());
        let trust = self.config.trust.clone();
        crate::pool::spawn(move || {
            match store.keep(&source, &plugin, content_hash, trust.as_deref()) {
                Ok(true) => {
                    tracing::debug!(plugin, path = %source.display(), "kept as the last good build")
                }
                Ok(false) => {
                    tracing::debug!(plugin, path = %source.display(), "changed since it was loaded; not kept as the last good build")
                }
                Err(why) => {
                    tracing::warn!(plugin, path = %source.display(), reason = %why, "cannot keep the last good build")
                }
            }
        });
    }

    /// Enters `gate` for a reload asked for, saying so when a hold makes it wait.
    fn enter_gate<'g>(
        &self,
        gate: &'g HoldGate,
        deadline: Option<Instant>,
        limit: Option<Duration>,
    ) -> Result<Entered<'g>, Rejection> {
        if let Some(entered) = gate.try_enter() {
            return Ok(entered);
        }
        self.emit(ReloadEvent::WaitingForHold {
            path: self.source.clone(),
        });
        gate.enter_until(deadline).ok_or_else(|| {
            let limit = limit.unwrap_or_default();
            Rejection::new(
                &self.source,
                Stage::Held,
                format!(
                    "a hold did not end within {} ms; nothing was reloaded",
                    limit.as_millis()
                ),
                None,
            )
        })
    }

    /// One attempt at reloading a watched file that settled (see `debounce.rs`): on a
    /// worker, so it never waits: not for a hold (`Held`: the file waits for the
    /// hold to end), nor for another reload of the plugin (`Busy`: the file is
    /// looked at again later). A load failure is tried again up to the configured
    /// number of times. `outer` is a hot directory's gate, respected like the
    /// plugin's own.
    pub fn reload_settled(self: &Arc<Self>, attempt: u32, outer: Option<&HoldGate>) -> Ran {
        let stopped = || self.stopped.load(Ordering::SeqCst);
        if stopped() {
            return Ran::Done;
        }
        let (ran, old) = {
            let _entered = match outer.map(HoldGate::try_enter) {
                Some(None) => return Ran::Held,
                entered => entered.flatten(),
            };
            let Some(_own) = self.hold.try_enter() else {
                return Ran::Held;
            };
            let Some(_serial) = self.reload_lock.try_lock() else {
                return Ran::Busy;
            };
            if stopped() {
                return Ran::Done;
            }
            if attempt == 0 {
                self.queue(ReloadEvent::Detected {
                    path: self.source.clone(),
                    cause: Cause::Changed,
                });
            }
            let (result, old) = self.pipeline();
            let retries = self.config.load_retries;
            let ran = match result {
                Err(r) if r.transient => {
                    // Reported once; tried again until it clears or the file changes.
                    if attempt < BACKOFF {
                        self.queue_rejection(r);
                    } else {
                        tracing::debug!(plugin = %self.plugin, attempt, reason = %r.reason, "still failing");
                    }
                    Ran::Backoff
                }
                Err(r) if r.stage == Stage::Load && attempt < retries => {
                    self.queue(ReloadEvent::Retrying {
                        attempt: attempt + 1,
                        left: retries - attempt,
                        failure: r,
                    });
                    Ran::Retry
                }
                Err(r) => {
                    self.queue_rejection(r);
                    Ran::Done
                }
                Ok(_) => Ran::Done,
            };
            (ran, old)
        };
        self.finish(old);
        ran
    }

    /// After a pipeline run, with its locks released: delivers the events it queued,
    /// then lets the old version (if it swapped one out) go, so that its `Unloaded`
    /// comes after the `Swapped`.
    pub(crate) fn finish(self: &Arc<Self>, old: Vec<Arc<Version>>) {
        self.events.flush();
        if !old.is_empty() {
            drop(old);
            drain::reclaim_now_and_later(self);
        }
    }

    /// A swap's locks, if they can be had at once: the plugin's hold gate and its
    /// reload lock.
    pub(crate) fn try_swap_locks(&self) -> Option<(Entered<'_>, MutexGuard<'_, ()>)> {
        let hold = self.hold.try_enter()?;
        let serial = self.reload_lock.try_lock()?;
        Some((hold, serial))
    }

    pub(crate) fn push_draining(&self, draining: Draining) {
        let mut list = self.draining.lock();
        list.push(draining);
        self.config.metrics.draining(1);
    }

    /// Forgets the draining versions `keep` says no to, and counts them out.
    fn forget_draining(&self, keep: impl FnMut(&Draining) -> bool) {
        let mut draining = self.draining.lock();
        let before = draining.len();
        draining.retain(keep);
        self.config
            .metrics
            .draining(draining.len() as i64 - before as i64);
    }

    /// Rolls back to the version the current one replaced, while it is still kept
    /// (its probation is under way). Waits for holds and a reload under way.
    pub fn roll_back(self: &Arc<Self>, reason: &str) -> Option<(u64, u64)> {
        let (rolled, old) = {
            let _own = self.hold.enter();
            let _serial = self.reload_lock.lock();
            let from = self.current.with(|v| v.generation);
            let old = self.roll_back_locked(reason);
            let to = self.current.with(|v| v.generation);
            (old.as_ref().map(|_| (from, to)), old)
        };
        self.finish(old.into_iter().collect());
        rolled
    }

    /// Counts a rejection and queues its event (under the reload locks, so that it
    /// keeps its place among the reloads' events).
    fn queue_rejection(&self, rejection: Rejection) {
        self.rejections.fetch_add(1, Ordering::Relaxed);
        self.queue(ReloadEvent::Rejected(rejection));
    }

    /// Copy, load, validate, swap. Runs with the reload locks held, so it only queues
    /// its events, for the caller to deliver once they are released. Returns the old
    /// version after a swap, for the caller to let go of after that.
    fn pipeline(self: &Arc<Self>) -> (Result<ReloadOutcome, Rejection>, Vec<Arc<Version>>) {
        let span = tracing::info_span!("fidius_reload", plugin = %self.plugin);
        let _span = span.enter();
        let mut old = Vec::new();
        let result = self.pipeline_into(&mut old);
        (result, old)
    }

    pub(crate) fn queue(&self, event: ReloadEvent) {
        self.config.metrics.count(&event);
        self.events.enqueue(&self.plugin, event);
    }

    fn pipeline_into(
        self: &Arc<Self>,
        old: &mut Vec<Arc<Version>>,
    ) -> Result<ReloadOutcome, Rejection> {
        let started = Instant::now();
        let current = self.current.load_full();
        self.prune_draining();
        let draining = self.draining.lock().len();
        if draining >= self.config.max_retained {
            return Err(Rejection::new(
                &self.source,
                Stage::Retention,
                format!(
                    "{} old versions are still in use (the limit is {}); the new build waits",
                    draining, self.config.max_retained
                ),
                None,
            ));
        }
        let pinned = self.pinned.lock().len();
        if self.config.pinned_policy == PinnedPolicy::Refuse && pinned >= self.config.max_pinned {
            return Err(Rejection::new(
                &self.source,
                Stage::Retention,
                format!(
                    "{pinned} old versions are pinned in memory (the limit is {}), likely by a \
                     thread-local with a destructor on a host thread or a thread the plugin \
                     started; new builds are refused (PinnedPolicy::Refuse)",
                    self.config.max_pinned
                ),
                None,
            ));
        }
        // Reloads are serialized, so the number is only taken (below) once the new
        // version is actually swapped in: generations count versions, not attempts.
        let generation = self.next_generation.load(Ordering::SeqCst);
        let copy = make_copy(&self.source, &self.config, generation, &self.stopped)?;
        let copied = started.elapsed();
        if let Some(q) = self.quarantined(copy.content_hash) {
            return Err(Rejection::new(
                &self.source,
                Stage::Quarantine,
                format!(
                    "this build failed its probation as generation {} and was rolled back ({}); it is not loaded again until the file changes",
                    q.generation, q.reason
                ),
                None,
            ));
        }
        let retirement = current.retirement.clone();
        let loaded = load_version(
            &self.source,
            &self.plugin,
            &self.expected,
            (copy, None),
            generation,
            Some(&current),
            retirement,
            self.config.isolation.as_ref(),
        )?;
        let loaded_in = started.elapsed() - copied;
        let Some(new) = loaded else {
            let generation = current.generation;
            self.queue(ReloadEvent::Unchanged {
                path: self.source.clone(),
                generation,
            });
            return Ok(ReloadOutcome::Unchanged { generation });
        };
        let to = new.info();
        self.queue(ReloadEvent::Loaded(to.clone()));
        let new = Arc::new(new);
        // Taken now, even if the check below refuses the build: its events name
        // this generation, and no later build may reuse it.
        self.next_generation.store(generation + 1, Ordering::SeqCst);
        if let Some(check) = &self.config.pre_swap_check {
            if let Err(why) = crate::probation::run_check(&check.0, &new) {
                // Let go of after the locks, like any version.
                old.push(new);
                return Err(Rejection::new(
                    &self.source,
                    Stage::Check,
                    format!("the pre-swap check failed: {why}"),
                    None,
                ));
            }
        }
        // Both carry state: the new version takes it over before the swap, with
        // calls held off (`handoff.rs`); a failure leaves the old one serving.
        let handoff = if current.handle.carries_state() && new.handle.carries_state() {
            match self.hand_state_over(&current, &new, crate::handoff::DRAIN_LIMIT) {
                Ok(handoff) => Some(handoff),
                Err(rejection) => {
                    old.push(new);
                    return Err(rejection);
                }
            }
        } else {
            None
        };
        // Reloads are serialized, so `current` is what the swap replaces. On
        // probation, the version to roll back to is the last one that proved itself:
        // `current`, or, if `current` is still on probation itself, the one it is on
        // trial against (`current` then drains without having passed).
        let previous = match self.replace_on_trial(&current) {
            Some(proven) => proven,
            None => current.clone(),
        };
        let on_probation = self.begin_probation(&new, previous);
        self.current.swap(new);
        if let Some(handoff) = handoff {
            handoff.swapped();
        }
        self.reloads.fetch_add(1, Ordering::Relaxed);
        // A build that is not the one quarantined: the file changed.
        self.quarantine.lock().clear();
        let from = current.info();
        let outcome = ReloadOutcome::Swapped {
            from: from.generation,
            to: to.generation,
        };
        tracing::info!(
            plugin = %self.plugin,
            from = from.generation,
            to = to.generation,
            copy_ms = ms(copied),
            load_ms = ms(loaded_in),
            total_ms = ms(started.elapsed()),
            "plugin swapped"
        );
        if !on_probation {
            self.keep_as_last_good(to.content_hash);
        }
        self.queue(ReloadEvent::Swapped { from, to });
        let generation = current.generation;
        // The version replaced drains, unless it is kept to roll back to.
        let kept = on_probation && !current.trial.replaced();
        if !kept {
            self.push_draining(Draining::of(&current));
        }
        // The caller gives the old version up once these events are out (so that its
        // `Unloaded` comes after them), at once unless a call is still in it.
        let in_flight = self.in_flight(&current);
        old.push(current);
        if in_flight > 0 && !kept {
            self.queue(ReloadEvent::Draining {
                generation,
                in_flight,
            });
        }
        Ok(outcome)
    }

    /// Calls and other holders of an old version, besides the caller's `version`.
    fn in_flight(&self, version: &Arc<Version>) -> usize {
        self.current.holders(version)
    }

    /// Forgets old versions that are gone, or stranded (they will never go; see
    /// [`ReloadEvent::Stranded`]), so that they count against no bound.
    fn prune_draining(&self) {
        self.forget_draining(|d| {
            d.version.strong_count() > 0 && !self.current.is_stranded(d.version.as_ptr())
        });
    }

    pub fn status(&self) -> HotStatus {
        // Versions no call uses any more are given up on a worker: closing one
        // reports `Unloaded`, and the caller of `status` may hold locks of its own (a
        // hold, say) that the callbacks receiving it would wait for.
        let free = self.current.reclaim();
        self.prune_draining();
        let draining: Vec<_> = self.draining.lock().clone();
        let mut looked_at = Vec::new();
        let draining = draining
            .iter()
            .filter_map(|d| {
                let version = d.version.upgrade()?;
                // One just given up by the reclaim above is still listed until the
                // worker drops it, but nothing holds it: `free`'s reference is no
                // holder.
                let leaving = free.iter().any(|f| Arc::ptr_eq(f, &version));
                let in_flight = self.in_flight(&version) - usize::from(leaving);
                looked_at.push(version);
                Some(DrainingVersion {
                    generation: d.generation,
                    in_flight,
                })
            })
            .collect();
        // Any of these may have lost its last other holder meanwhile.
        let free: Vec<_> = free.into_iter().chain(looked_at).collect();
        if !free.is_empty() {
            crate::pool::spawn(move || drop(free));
        }
        let watcher = *self.watcher.lock();
        let pinned = self.pinned.lock().clone();
        // Only a slot, not an owned reference: an owned one could be the last, and
        // close the version here.
        let (current, loaded_at, process) = self
            .current
            .with(|v| (v.info(), v.loaded_at, v.handle.process()));
        HotStatus {
            plugin: self.plugin.clone(),
            source: self.source.clone(),
            current,
            loaded_at,
            draining,
            pinned,
            reloads: self.reloads.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
            paused: self.is_paused(),
            watching: watcher.is_some(),
            watcher,
            process,
            probation: self.probation_status(),
            quarantined: self.quarantine.lock().clone(),
        }
    }
}

impl Drop for Shared {
    /// Versions still draining when the plugin goes are no longer counted by it (they
    /// leave when their last holder does, reported to nobody).
    fn drop(&mut self) {
        let left = self.draining.get_mut().len();
        self.config.metrics.draining(-(left as i64));
    }
}

impl Drain for Shared {
    fn reclaim(&self) -> bool {
        drop(self.current.reclaim());
        // Reported only while no reload runs, so that a version stranded just after
        // its swap is reported after that swap's events, not before. Otherwise the
        // next look reports it (stranded values keep `has_retiring` true until then).
        if let Some(no_reload) = self.reload_lock.try_lock() {
            let stranded = self.current.take_stranded();
            self.prune_draining();
            for version in &stranded {
                self.queue(ReloadEvent::Stranded {
                    generation: version.generation,
                });
            }
            drop(no_reload);
            self.events.flush();
        }
        self.current.has_retiring()
    }

    fn retired(&self, generation: u64, copy: ShadowCopy) {
        let state = copy.close();
        let pinned = (state == UnloadState::Pinned).then(|| {
            let mut pinned = self.pinned.lock();
            pinned.push(generation);
            pinned.len()
        });
        self.forget_draining(|d| d.generation != generation);
        self.emit(ReloadEvent::Unloaded { generation, state });
        if let Some(pinned) = pinned.filter(|&n| n >= self.config.max_pinned) {
            self.emit(ReloadEvent::PinnedLimit {
                pinned,
                limit: self.config.max_pinned,
                refusing: self.config.pinned_policy == PinnedPolicy::Refuse,
            });
        }
    }

    fn polling(&self) -> &AtomicBool {
        &self.polling
    }

    #[cfg(all(feature = "isolated", target_os = "linux"))]
    fn process_event(&self, generation: u64, event: fidius_isolated::IsolatedEvent) {
        self.emit(ReloadEvent::Process { generation, event });
    }
}

/// A duration in milliseconds, for traces.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Copies the watched file for version `generation`, unless `cancel` is set first.
/// With a [`Trust`], the copy is judged before anything loads it: its SHA-256 (taken
/// while it was written) against the signature file read as a pair with it.
pub(crate) fn make_copy(
    source: &Path,
    config: &Config,
    generation: u64,
    cancel: &AtomicBool,
) -> Result<ShadowCopy, Rejection> {
    let limits = shadow::Limits {
        max_size: config.max_file_size,
        cancel,
        inspect: true,
        digest: config.trust.is_some(),
    };
    let copy = |limits: &shadow::Limits| {
        shadow::copy(source, &config.store, generation, limits)
            .map_err(|e| e.rejection(source, &config.store))
    };
    let Some(trust) = &config.trust else {
        return copy(&limits);
    };
    let sig_path = signature_path(source);
    let read_sig = || {
        read_signature(&sig_path).map_err(|e| match unreadable_signature(&sig_path, &e) {
            // There, and no signature: final, as a bad signature is.
            Some(reason) => {
                let error = LoadError::Untrusted {
                    path: source.to_path_buf(),
                    reason,
                };
                Rejection::new(source, Stage::Trust, error.to_string(), Some(error))
            }
            // An I/O error may pass: tried again later.
            None => {
                let reason = format!("cannot read the signature {}: {e}", sig_path.display());
                let mut rejection = Rejection::new(source, Stage::Trust, reason, None);
                rejection.transient = true;
                rejection
            }
        })
    };
    // The library and its signature are read as a pair: a signature that changes
    // while the library is copied (a deploy in progress) is read again with a new
    // copy, never judged against the wrong one.
    let mut attempt = 1;
    loop {
        let before = read_sig()?;
        let copied = copy(&limits)?;
        let after = read_sig()?;
        if before != after {
            drop(copied);
            if attempt < SIGNATURE_ATTEMPTS {
                attempt += 1;
                continue;
            }
            // Still changing: a deploy in progress. Tried again later, on a timer (a
            // worker never sleeps).
            let reason = format!(
                "the signature {} kept changing while the library was copied",
                sig_path.display()
            );
            let mut rejection = Rejection::new(source, Stage::Trust, reason, None);
            rejection.transient = true;
            return Err(rejection);
        }
        let digest = copied.digest.expect("the copy was asked for its digest");
        return match trust.check(&digest, after.as_deref(), &sig_path) {
            Ok(verified) => {
                tracing::debug!(path = %source.display(), generation, %verified, "trusted build");
                Ok(copied)
            }
            Err(reason) => {
                let error = LoadError::Untrusted {
                    path: source.to_path_buf(),
                    reason,
                };
                Err(Rejection::new(
                    source,
                    Stage::Trust,
                    error.to_string(),
                    Some(error),
                ))
            }
        };
    }
}

/// How many times a build is copied again at once when its signature changed
/// meanwhile, before the reload is put off.
const SIGNATURE_ATTEMPTS: u32 = 3;

/// Loads and validates one version from its copy (let go of again on failure), in
/// this process or, with `isolation`, in a process of its own.
/// `listed` is a library already open from the same copy (directory mode), if any.
/// `current`, when given, is the running version: identical content gives `Ok(None)`,
/// and a handle into the same loaded library is refused.
#[allow(clippy::too_many_arguments)]
pub(crate) fn load_version(
    source: &Path,
    plugin: &str,
    expected: &InterfaceInfo,
    (mut copy, listed): (ShadowCopy, Option<Arc<PluginLibrary>>),
    generation: u64,
    current: Option<&Version>,
    retirement: Arc<Retirement>,
    isolation: Option<&Isolation>,
) -> Result<Option<Version>, Rejection> {
    let reject = |stage, reason, error| Rejection::new(source, stage, reason, error);
    if let Some(current) = current {
        if current.copy.content_hash == copy.content_hash {
            return Ok(None);
        }
    }
    if let Some(isolation) = isolation {
        drop(listed);
        #[cfg(all(feature = "isolated", target_os = "linux"))]
        {
            let handle = load_isolated(source, plugin, expected, &mut copy, isolation)?;
            if let Backend::Isolated { plugin, .. } = &handle {
                // Its process's crashes and restarts become this plugin's events.
                let retirement = retirement.clone();
                plugin.on_event(move |e| retirement.process_event(generation, e));
            }
            return Ok(Some(Version {
                generation,
                handle: ManuallyDrop::new(handle),
                copy: ManuallyDrop::new(copy),
                loaded_at: SystemTime::now(),
                retirement,
                trial: Trial::default(),
            }));
        }
        #[cfg(not(all(feature = "isolated", target_os = "linux")))]
        match *isolation {}
    }
    // Messages name the user's file, not the copy's load path.
    let explain = |e: &fidius::LoadError| copy.explain(e, source);
    // The library the copy was listed with (directory mode) is this very library:
    // used as it is, not opened (and reported) a second time. Errors name the user's
    // file, not the loader's path to the copy.
    let library = match listed {
        Some(listed) => listed,
        None => PluginLibrary::open(copy.load_path())
            .map_err(|e| reject(Stage::Load, explain(&e), Some(e.with_path(source))))?,
    };
    let handle: PluginHandle = library
        .handle(plugin, Some(expected))
        .map_err(|e| reject(Stage::Validate, explain(&e), Some(e.with_path(source))))?;
    drop(library);
    if let Some(current) = current {
        if matches!(&*current.handle, Backend::Local(h) if handle.same_code(h)) {
            return Err(reject(
                Stage::Validate,
                "the dynamic loader returned the library already loaded instead of the new file"
                    .into(),
                None,
            ));
        }
    }
    copy.loaded(handle.library_address());
    Ok(Some(Version {
        generation,
        handle: ManuallyDrop::new(Backend::Local(handle)),
        copy: ManuallyDrop::new(copy),
        loaded_at: SystemTime::now(),
        retirement,
        trial: Trial::default(),
    }))
}

/// The plugins of a copy, listed by a process started for the purpose (nothing of
/// the library is loaded here).
#[cfg(all(feature = "isolated", target_os = "linux"))]
pub(crate) fn list_isolated(
    source: &Path,
    copy: &ShadowCopy,
    isolation: &Isolation,
) -> Result<Vec<fidius::PluginInfo>, Rejection> {
    let descriptor = descriptor_of(source, copy)?;
    fidius_isolated::IsolatedPlugin::builder_for(source, "", None)
        .isolation(isolation.clone())
        .library_descriptor(descriptor)
        .list_plugins()
        .map_err(|e| start_rejection(source, e))
}

/// A descriptor of `copy` for a plugin process to load it through.
#[cfg(all(feature = "isolated", target_os = "linux"))]
fn descriptor_of(source: &Path, copy: &ShadowCopy) -> Result<Arc<rustix::fd::OwnedFd>, Rejection> {
    copy.descriptor().map_err(|e| {
        Rejection::new(
            source,
            Stage::Load,
            format!(
                "cannot hand the copy of {} to a plugin process: {e}",
                source.display()
            ),
            None,
        )
    })
}

/// The rejection of a build its plugin process refused, at the stage an in-process
/// load would have failed at: finding the plugin and checking its interface is
/// validation, the rest is loading.
#[cfg(all(feature = "isolated", target_os = "linux"))]
fn start_rejection(source: &Path, error: fidius_isolated::StartError) -> Rejection {
    use fidius::LoadError;
    match error {
        fidius_isolated::StartError::Load(e) => {
            let stage = match e {
                LoadError::PluginNotFound { .. } | LoadError::InterfaceMismatch { .. } => {
                    Stage::Validate
                }
                _ => Stage::Load,
            };
            Rejection::new(source, stage, e.to_string(), Some(e))
        }
        e => Rejection::new(source, Stage::Load, e.to_string(), None),
    }
}

/// Starts an isolated version: a plugin process that loads the copy (through its
/// descriptor, so it loads exactly these bytes) and validates it there.
#[cfg(all(feature = "isolated", target_os = "linux"))]
fn load_isolated(
    source: &Path,
    plugin: &str,
    expected: &InterfaceInfo,
    copy: &mut ShadowCopy,
    isolation: &Isolation,
) -> Result<Backend, Rejection> {
    use fidius_isolated::IsolatedPlugin;
    let descriptor = descriptor_of(source, copy)?;
    let plugin = IsolatedPlugin::builder_for(source, plugin, Some(*expected))
        .isolation(isolation.clone())
        .library_descriptor(descriptor)
        .build()
        .map_err(|e| start_rejection(source, e))?;
    copy.isolated();
    let handle = plugin.handle();
    Ok(Backend::Isolated { plugin, handle })
}
