//! What a hot-reloading plugin reports: [`ReloadEvent`]s, delivered to channel
//! subscribers and callbacks, and emitted as `tracing` events.

use crate::unload::UnloadState;
use fidius::LoadError;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::ThreadId;

/// The stage of the reload pipeline where a new build was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// The file was missing when its turn came (removed, or renamed away).
    Detect,
    /// Copying it failed: it could not be read, it is not a regular file, or the
    /// private copy could not be written.
    Copy,
    /// The shadow directory or the copy is not safe to load from: the directory is not
    /// a private one of this process's user (another user's, group- or
    /// world-writable, a symbolic link), or something else was where this process's
    /// copy should be. Someone may be trying to get their code loaded into the host;
    /// nothing was loaded. Also reported through `tracing` at error level.
    Security,
    /// The host trusts only signed or pinned builds
    /// ([`HotPluginBuilder::trust`](crate::HotPluginBuilder::trust)), and this one is
    /// not: unsigned, signed by an unknown key, a signature that does not match its
    /// content, or a digest not pinned. It was judged on its private copy, before the
    /// dynamic loader saw it: none of its code ran. The error is
    /// `LoadError::Untrusted`.
    Trust,
    /// The copy is not a loadable fidius library: not a library of this platform,
    /// truncated, no registry, bad magic or versions, invalid descriptors.
    Load,
    /// The library loaded, but does not hold the expected plugin with the expected
    /// interface, or the loader handed back a library already loaded.
    Validate,
    /// Too many old versions are still draining (see
    /// [`HotPluginBuilder::max_retained`](crate::HotPluginBuilder::max_retained)), or
    /// pinned in memory under [`PinnedPolicy::Refuse`].
    Retention,
    /// The host's pre-swap check refused the new version
    /// ([`HotPluginBuilder::pre_swap_check`](crate::HotPluginBuilder::pre_swap_check)):
    /// it never served a call.
    Check,
    /// This build failed its probation before and was rolled back; it is not loaded
    /// again until the file changes.
    Quarantine,
    /// A reload asked for with a bound (`reload_within`) found a
    /// [`hold`](crate::HotPlugin::hold) that did not end in time. Nothing was copied
    /// or loaded; the hold's holder decides when reloads may happen.
    Held,
    /// Both versions carry state, and handing it over failed: calls did not leave
    /// the old version in time, saving failed, or the new version refused the state.
    /// The old version serves on with its state.
    State,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Detect => "detect",
            Stage::Copy => "copy",
            Stage::Security => "security",
            Stage::Trust => "trust",
            Stage::Load => "load",
            Stage::Check => "pre-swap check",
            Stage::Quarantine => "quarantine",
            Stage::State => "state handoff",
            Stage::Validate => "validate",
            Stage::Retention => "retention",
            Stage::Held => "hold",
        })
    }
}

/// A new build that was refused. The version that was serving keeps serving.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The plugin file.
    pub path: PathBuf,
    /// Where the pipeline stopped.
    pub stage: Stage,
    /// Why, naming both sides of any mismatch.
    pub reason: String,
    /// The load error behind the rejection, for the load and validate stages.
    pub error: Option<Arc<LoadError>>,
    /// The failure may clear up by itself: no space left for the copy, an I/O error.
    /// The build is tried again, with a growing delay (up to 30 s), until that
    /// happens or the file changes; only this first failure is reported.
    pub transient: bool,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rejected {} at the {} stage: {}",
            self.path.display(),
            self.stage,
            self.reason
        )
    }
}

impl std::error::Error for Rejection {}

impl Rejection {
    /// A rejection of `path` at `stage`, not transient, with the load error behind it
    /// if there is one.
    pub(crate) fn new(
        path: &std::path::Path,
        stage: Stage,
        reason: String,
        error: Option<LoadError>,
    ) -> Self {
        Self {
            path: path.to_path_buf(),
            stage,
            reason,
            error: error.map(Arc::new),
            transient: false,
        }
    }

    /// Emits this rejection as a `tracing` event: at error level for the
    /// [`Stage::Security`] and [`Stage::Trust`] stages, warning otherwise. `plugin` is
    /// empty where no plugin is known yet (a library new to a hot directory).
    pub(crate) fn trace(&self, plugin: &str) {
        if matches!(self.stage, Stage::Security | Stage::Trust) {
            tracing::error!(plugin, path = %self.path.display(), stage = %self.stage, reason = %self.reason, "security: new build refused")
        } else {
            tracing::warn!(plugin, path = %self.path.display(), stage = %self.stage, reason = %self.reason, "new build rejected")
        }
    }
}

/// Facts about one loaded version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// Starts at 1 and grows by one for every version loaded.
    pub generation: u64,
    /// A 64-bit hash of the library file's content (XXH3, 64-bit): a build whose
    /// hash equals the running version's is not reloaded.
    pub content_hash: u64,
    /// The interface version the plugin was built against.
    pub interface_version: u32,
    /// The private copy the version was loaded from, under the name this process's
    /// memory map (`/proc/self/maps`) gives it: `/memfd:fidius:<file>:…` for an
    /// in-memory copy (the default on Linux; it is no file anywhere), or the file in
    /// the private shadow directory (already unlinked on Unix once loaded).
    pub shadow: PathBuf,
}

/// Everything that happens to a hot-reloading plugin.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ReloadEvent {
    /// The pipeline starts: for the first version, a reload asked for, or a change
    /// to the plugin file that was noticed.
    Detected {
        /// The plugin file.
        path: PathBuf,
        /// What started it.
        cause: Cause,
    },
    /// A reload asked for must wait: a [`hold`](crate::HotPlugin::hold) is active.
    /// The reload follows when the hold ends (or, with `reload_within`, gives up at
    /// its bound).
    WaitingForHold {
        /// The plugin file.
        path: PathBuf,
    },
    /// The plugin file was refused at start, and the last good build kept for it
    /// ([`HotPluginBuilder::last_known_good`](crate::HotPluginBuilder::last_known_good))
    /// serves instead. The file is watched as usual: a good build replaces it.
    StartedFromLastGood {
        /// The plugin file.
        path: PathBuf,
        /// The kept build that serves.
        last_good: PathBuf,
        /// Why the file was refused.
        rejection: Rejection,
    },
    /// The file's content is identical to the running version: nothing to do.
    Unchanged {
        /// The plugin file.
        path: PathBuf,
        /// The generation that keeps serving.
        generation: u64,
    },
    /// A new version was copied, loaded and validated; it is about to be swapped in.
    Loaded(VersionInfo),
    /// A new build was refused; the current version keeps serving.
    Rejected(Rejection),
    /// An attempt to load a new build failed and will be tried again (a file can
    /// still be settling when its events stop; see
    /// [`HotPluginBuilder::load_retries`](crate::HotPluginBuilder::load_retries)).
    /// Reported for every failed attempt, including one a later attempt recovers
    /// from; the last failure is reported as [`Rejected`](Self::Rejected).
    Retrying {
        /// The failed attempt, from 1.
        attempt: u32,
        /// Attempts still to come.
        left: u32,
        /// Why it failed.
        failure: Rejection,
    },
    /// New calls now go to `to`; calls already running finish on `from`.
    Swapped {
        /// The version swapped out.
        from: VersionInfo,
        /// The version swapped in.
        to: VersionInfo,
    },
    /// An old version still has calls, clients' references or streams in flight.
    Draining {
        /// Its generation.
        generation: u64,
        /// References still holding it (in-flight calls and anything kept from them).
        in_flight: usize,
    },
    /// An old version was closed; `state` says whether its library really left memory.
    Unloaded {
        /// Its generation.
        generation: u64,
        /// Unmapped, pinned, or unknown on this platform.
        state: UnloadState,
    },
    /// An old version will not be closed before the plugin is dropped: `membarrier`
    /// stopped working (a seccomp filter applied after start-up, say) while calls
    /// may have been using it without a fence, so no check can tell when they end.
    /// Happens only to the versions current or draining at that moment (the current
    /// one when it is swapped out); later versions drain as usual. A stranded version
    /// no longer counts as draining.
    Stranded {
        /// Its generation.
        generation: u64,
    },
    /// Something happened to the process an isolated version runs in
    /// (`HotPluginBuilder::isolated`): it ended (a crash, a call past its deadline),
    /// was restarted, or failed to restart.
    #[cfg(all(feature = "isolated", target_os = "linux"))]
    Process {
        /// The version's generation.
        generation: u64,
        /// What happened.
        event: fidius_isolated::IsolatedEvent,
    },
    /// The new version took the old one's state before it was swapped in
    /// (`fidius::PluginState`); calls that arrived meanwhile waited, and went to it.
    StateHandedOver {
        /// The version the state was saved from.
        from: u64,
        /// The version it was restored into.
        to: u64,
        /// The saved state's size.
        bytes: usize,
        /// Its layout version (`PluginState::STATE_VERSION` of the saver).
        layout: u32,
        /// How long the calls already in the old version took to finish.
        drained: std::time::Duration,
        /// How long new calls were held off in all (drain, save and restore).
        paused: std::time::Duration,
    },
    /// A version passed its probation; the one it replaced now drains.
    ProbationPassed {
        /// The version that passed.
        generation: u64,
    },
    /// A version failed its probation (or a rollback was asked for): the version it
    /// replaced serves again, and its build is quarantined until the file changes.
    RolledBack {
        /// The version that failed.
        from: u64,
        /// The version serving again.
        to: u64,
        /// Why.
        reason: String,
        /// Calls it served while on probation.
        calls: u64,
        /// Those that failed in a way that counts.
        failures: u32,
        /// How long after its swap.
        after: std::time::Duration,
    },
    /// The plugin file was removed and nothing replaced it. The current version keeps
    /// serving.
    Removed {
        /// The plugin file.
        path: PathBuf,
    },
    /// The plugin's directory, as configured, now names another directory (a
    /// `current` symbolic link was switched, or the directory was replaced at its
    /// path): that one is watched instead, and the file is looked at again. `to` is
    /// `None` while the path names nothing: nothing is seen until it comes back, and
    /// [`HotStatus::watching`](crate::HotStatus::watching) is `false` meanwhile.
    Retargeted {
        /// The plugin file's directory as configured.
        directory: PathBuf,
        /// The directory it named (canonical).
        from: Option<PathBuf>,
        /// The directory it names now (canonical), if any.
        to: Option<PathBuf>,
    },
    /// Old versions pinned in memory (see [`UnloadState::Pinned`]) reached the
    /// bound set with [`HotPluginBuilder::max_pinned`](crate::HotPluginBuilder::max_pinned).
    /// The likely cause is in the plugin: a `thread_local!` whose value needs dropping,
    /// used on a host thread that is still running, or a thread it started and never
    /// stopped; each such version stays in memory until the process exits. Emitted
    /// for every version pinned at or past the bound.
    PinnedLimit {
        /// Versions pinned so far.
        pinned: usize,
        /// The bound.
        limit: usize,
        /// New builds are refused from now on ([`PinnedPolicy::Refuse`]); otherwise
        /// they still load.
        refusing: bool,
    },
    /// The plugin's directory is polled (every
    /// [`POLL_INTERVAL`](crate::POLL_INTERVAL)) because the native file watcher
    /// could not be had. Reloads still happen, a little later. Emitted once, when
    /// watching starts; [`HotStatus::watcher`](crate::HotStatus::watcher) says the same.
    WatcherFallback {
        /// The watched directory.
        directory: PathBuf,
        /// Why the native watcher is not used.
        reason: String,
    },
}

/// What started a run of the reload pipeline ([`ReloadEvent::Detected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The first version, when the hot plugin is built.
    Start,
    /// `reload_now` (of the plugin, or of its directory).
    Asked,
    /// A change to the file, seen by the watcher.
    Changed,
}

/// What to do once [`HotPluginBuilder::max_pinned`](crate::HotPluginBuilder::max_pinned)
/// old versions are pinned in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinnedPolicy {
    /// Keep loading new builds, with a [`ReloadEvent::PinnedLimit`] for each version
    /// pinned past the bound (default: a developer's edit-reload loop goes on).
    #[default]
    Warn,
    /// Refuse new builds at the [`Stage::Retention`] stage: the version serving
    /// keeps serving, and memory stops growing.
    Refuse,
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

/// An event callback.
pub(crate) type Callback<E = ReloadEvent> = Arc<dyn Fn(&E) + Send + Sync>;

thread_local! {
    /// How many reasons this thread has never to wait for another thread's delivery:
    /// deliveries (of any hub) it is inside, and reload holds it has.
    static MUST_NOT_WAIT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether this thread runs event callbacks or holds reloads off: it must not wait
/// for another thread's delivery, whose callbacks may wait for it (a callback
/// calling `reload_now` waits for every hold to end).
fn must_not_wait() -> bool {
    MUST_NOT_WAIT.with(|d| d.get() > 0)
}

/// While alive, this thread never waits for another thread's delivery (see
/// [`EventHub::flush`]). Tied to its thread.
pub(crate) struct NoWait(std::marker::PhantomData<*const ()>);

impl NoWait {
    pub fn enter() -> Self {
        MUST_NOT_WAIT.with(|d| d.set(d.get() + 1));
        NoWait(std::marker::PhantomData)
    }
}

impl Drop for NoWait {
    fn drop(&mut self) {
        MUST_NOT_WAIT.with(|d| d.set(d.get() - 1));
    }
}

/// Fans events out to channel subscribers and callbacks; shared by hot plugins and hot
/// directories.
///
/// Events are delivered in the order they were emitted, and **no lock of the hub or
/// of the reload machinery is held while a callback runs**, so a callback may call
/// anything: `reload_now`, `hold`, `on_event`, `subscribe`, `status`... An event
/// emitted from inside a callback of the same hub is delivered once that callback
/// returns (after the events already queued). An event emitted while another thread
/// is delivering is delivered by that thread, and `emit` returns once it has been.
pub(crate) struct EventHub<E> {
    subscribers: Mutex<Vec<Sender<E>>>,
    callbacks: Mutex<Vec<Callback<E>>>,
    delivery: Mutex<Delivery<E>>,
    delivered: Condvar,
}

struct Delivery<E> {
    queue: VecDeque<E>,
    /// The thread delivering the queue, if one is.
    by: Option<ThreadId>,
    /// Events queued and delivered so far.
    queued: u64,
    done: u64,
}

impl<E> Default for EventHub<E> {
    fn default() -> Self {
        Self {
            subscribers: Mutex::new(Vec::new()),
            callbacks: Mutex::new(Vec::new()),
            delivery: Mutex::new(Delivery {
                queue: VecDeque::new(),
                by: None,
                queued: 0,
                done: 0,
            }),
            delivered: Condvar::new(),
        }
    }
}

/// How an event is traced when it is queued. A plugin's events are traced with its
/// name by [`PluginEvents`], so their hub traces nothing more.
pub(crate) trait Traced {
    fn trace(&self) {}
}

impl Traced for ReloadEvent {}

impl<E: Clone + Traced> EventHub<E> {
    pub fn subscribe(&self) -> Receiver<E> {
        let (tx, rx) = channel();
        self.subscribers.lock().push(tx);
        rx
    }

    pub fn on_event(&self, f: Callback<E>) {
        self.callbacks.lock().push(f);
    }

    /// Queues `event` and delivers the queue (see [`flush`](Self::flush)).
    pub fn emit(&self, event: E) {
        self.enqueue(event);
        self.flush();
    }

    /// Queues `event` without delivering it: safe under any lock. Events queued under
    /// a lock keep their order against everything queued after it is released; call
    /// [`flush`](Self::flush) once it is.
    pub fn enqueue(&self, event: E) {
        event.trace();
        let mut delivery = self.delivery.lock();
        delivery.queue.push_back(event);
        delivery.queued += 1;
    }

    /// Delivers everything queued so far, or makes sure it will be:
    ///
    /// * from inside a callback of this hub, nothing happens now: the delivery loop
    ///   further up this thread's stack delivers it when the callback returns;
    /// * while another thread delivers, it delivers ours too. We wait for that, unless
    ///   this thread is itself inside a callback (of any hub) or holds reloads off:
    ///   that other thread's callbacks may be waiting for this one (for its delivery
    ///   to finish, or for its hold to end), and would wait forever;
    /// * otherwise this thread delivers, in order, until the queue is empty.
    pub fn flush(&self) {
        let me = std::thread::current().id();
        let mut delivery = self.delivery.lock();
        let mine = delivery.queued;
        match delivery.by {
            Some(by) if by == me => return,
            Some(_) => {
                if !must_not_wait() {
                    while delivery.done < mine {
                        self.delivered.wait(&mut delivery);
                    }
                }
                return;
            }
            None if delivery.queue.is_empty() => return,
            None => delivery.by = Some(me),
        }
        while let Some(event) = delivery.queue.pop_front() {
            MutexGuard::unlocked(&mut delivery, || {
                let _inside = NoWait::enter();
                self.deliver(&event)
            });
            delivery.done += 1;
            self.delivered.notify_all();
        }
        delivery.by = None;
    }

    fn deliver(&self, event: &E) {
        // A snapshot: a callback may add callbacks or subscribers.
        let callbacks: Vec<Callback<E>> = self.callbacks.lock().clone();
        for cb in callbacks {
            // A panicking callback must not take the reload machinery down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(event)));
        }
        // Sending on a channel never blocks and runs no user code.
        self.subscribers
            .lock()
            .retain(|tx| tx.send(event.clone()).is_ok());
    }
}

/// Receives a hot directory's plugin's events (see `directory.rs`).
pub(crate) trait ForwardEvents: Send + Sync {
    /// Queues `event`; see [`EventHub::enqueue`].
    fn enqueue(&self, event: &ReloadEvent);
    /// Delivers what was queued; see [`EventHub::flush`].
    fn flush(&self);
}

/// Where a hot plugin's events go: its own hub, or (for a plugin of a hot directory)
/// on to the directory's.
pub(crate) enum PluginEvents {
    Own(EventHub<ReloadEvent>),
    Forward(Arc<dyn ForwardEvents>),
}

impl PluginEvents {
    /// Emits `event` of `plugin`, as a `tracing` event too. Never call it with a lock
    /// held that a control call takes: callbacks may make any control call. Under
    /// such a lock, [`enqueue`](Self::enqueue) instead and flush after.
    pub fn emit(&self, plugin: &str, event: ReloadEvent) {
        self.enqueue(plugin, event);
        self.flush();
    }

    /// Queues `event` of `plugin` (and traces it) without delivering it.
    pub fn enqueue(&self, plugin: &str, event: ReloadEvent) {
        trace(plugin, &event);
        match self {
            PluginEvents::Own(hub) => hub.enqueue(event),
            PluginEvents::Forward(forward) => forward.enqueue(&event),
        }
    }

    /// Delivers what was queued.
    pub fn flush(&self) {
        match self {
            PluginEvents::Own(hub) => hub.flush(),
            PluginEvents::Forward(forward) => forward.flush(),
        }
    }

    /// The plugin's own hub; `None` for a directory's plugin.
    pub fn hub(&self) -> Option<&EventHub<ReloadEvent>> {
        match self {
            PluginEvents::Own(hub) => Some(hub),
            PluginEvents::Forward(_) => None,
        }
    }
}

fn trace(plugin: &str, event: &ReloadEvent) {
    match event {
        ReloadEvent::Detected { path, cause } => match cause {
            Cause::Changed => {
                tracing::debug!(plugin, path = %path.display(), "change detected")
            }
            Cause::Asked => tracing::debug!(plugin, path = %path.display(), "reload asked for"),
            Cause::Start => tracing::debug!(plugin, path = %path.display(), "first load"),
        },
        ReloadEvent::StartedFromLastGood {
            path,
            last_good,
            rejection,
        } => tracing::warn!(
            plugin,
            path = %path.display(),
            last_good = %last_good.display(),
            reason = %rejection.reason,
            "the plugin file was refused at start; serving the last good build"
        ),
        ReloadEvent::WaitingForHold { path } => {
            tracing::info!(plugin, path = %path.display(), "a reload waits for a hold to end")
        }
        ReloadEvent::Unchanged { generation, .. } => {
            tracing::debug!(plugin, generation, "content unchanged; nothing to reload")
        }
        ReloadEvent::Loaded(v) => {
            tracing::debug!(plugin, generation = v.generation, shadow = %v.shadow.display(), "new version loaded")
        }
        ReloadEvent::Rejected(r) => r.trace(plugin),
        ReloadEvent::Retrying {
            attempt,
            left,
            failure,
        } => {
            tracing::warn!(plugin, attempt, left, stage = %failure.stage, reason = %failure.reason, "loading the new build failed; trying again")
        }
        // Traced by the pipeline as it swaps, with how long each stage took.
        ReloadEvent::Swapped { .. } => {}
        ReloadEvent::Draining {
            generation,
            in_flight,
        } => tracing::debug!(plugin, generation, in_flight, "old version draining"),
        // A pinned version is memory that stays until the process exits.
        ReloadEvent::Unloaded {
            generation,
            state: UnloadState::Pinned,
        } => tracing::warn!(
            plugin,
            generation,
            state = %UnloadState::Pinned,
            "old version unloaded but still mapped: likely a thread-local with a destructor on a host thread, or a thread the plugin started"
        ),
        ReloadEvent::Unloaded { generation, state } => {
            tracing::info!(plugin, generation, %state, "old version unloaded")
        }
        ReloadEvent::Stranded { generation } => {
            tracing::warn!(
                plugin,
                generation,
                "old version stays loaded: membarrier stopped working while calls could use it"
            )
        }
        #[cfg(all(feature = "isolated", target_os = "linux"))]
        ReloadEvent::Process { generation, event } => {
            tracing::info!(plugin, generation, event = ?event, "isolated version's process")
        }
        ReloadEvent::StateHandedOver {
            from,
            to,
            bytes,
            paused,
            ..
        } => {
            tracing::info!(plugin, from, to, bytes, paused = ?paused, "state handed over")
        }
        ReloadEvent::ProbationPassed { generation } => {
            tracing::info!(plugin, generation, "version passed its probation")
        }
        ReloadEvent::RolledBack {
            from,
            to,
            reason,
            calls,
            failures,
            after,
        } => {
            tracing::error!(plugin, from, to, reason, calls, failures, after = ?after, "rolled back")
        }
        ReloadEvent::Removed { path } => {
            tracing::warn!(plugin, path = %path.display(), "plugin file removed; current version keeps serving")
        }
        ReloadEvent::Retargeted { directory, to, .. } => match to {
            Some(to) => {
                tracing::info!(plugin, directory = %directory.display(), to = %to.display(), "the plugin's directory now names another; following it")
            }
            None => {
                tracing::warn!(plugin, directory = %directory.display(), "the plugin's directory is gone; deaf until it comes back")
            }
        },
        ReloadEvent::PinnedLimit {
            pinned,
            limit,
            refusing,
        } => {
            tracing::warn!(plugin, pinned, limit, refusing, "old versions stay pinned in memory; likely a thread-local with a destructor on a host thread, or a thread the plugin started")
        }
        ReloadEvent::WatcherFallback { directory, reason } => {
            tracing::warn!(plugin, directory = %directory.display(), reason, "polling the plugin's directory")
        }
    }
}
