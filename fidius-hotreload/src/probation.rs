//! Probation and rollback: a version swapped in is watched for a while, with the
//! previous one kept loaded beside it; if calls fail, the previous version is swapped
//! back and the failed build is quarantined until the file changes.
//!
//! Calls count on the hot path only while their version is on probation (one
//! relaxed load otherwise): each call, and each call that failed in a way that counts
//! ([`Probation::fails`]). The rest happens on the shared pool: the end of the
//! window, the health check, and the rollback itself, which swaps like a reload
//! (under the reload lock, never during a hold).

use crate::events::ReloadEvent;
use crate::handle::VersionHandle;
use crate::pipeline::{Draining, Shared};
use crate::version::Version;
use fidius::CallError;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// A check the host runs against one version: a canary call before it serves
/// ([`HotPluginBuilder::pre_swap_check`](crate::HotPluginBuilder::pre_swap_check)),
/// or a health check at the end of its probation ([`Probation::health_check`]).
/// `Err` says why the version is not fit.
pub type VersionCheck = Arc<dyn Fn(&VersionHandle) -> Result<(), String> + Send + Sync>;

/// A [`VersionCheck`] in the settings (which must be `Debug`).
#[derive(Clone)]
pub(crate) struct Check(pub VersionCheck);

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Check")
    }
}

/// How long a rollback waits for the calls in the failing version to leave before it
/// goes back without that version's state.
const ROLLBACK_DRAIN_LIMIT: Duration = Duration::from_millis(100);

/// Default probation window.
pub const DEFAULT_PROBATION_WINDOW: Duration = Duration::from_secs(10);
/// Default number of failed calls that fails a probation.
pub const DEFAULT_MAX_FAILURES: u32 = 3;

/// How a new version is put on probation
/// ([`HotPluginBuilder::probation`](crate::HotPluginBuilder::probation)).
///
/// ```
/// use fidius_hotreload::Probation;
/// use std::time::Duration;
///
/// let probation = Probation::default()
///     .window(Duration::from_secs(30))
///     .max_failures(5)
///     .health_check(|version| {
///         // A canary call through `version`, the version on probation.
///         Ok(())
///     });
/// ```
#[derive(Clone)]
pub struct Probation {
    pub(crate) window: Duration,
    pub(crate) calls: Option<u64>,
    pub(crate) max_failures: u32,
    pub(crate) plugin_errors_fail: bool,
    pub(crate) health_check: Option<VersionCheck>,
}

impl Default for Probation {
    fn default() -> Self {
        Self {
            window: DEFAULT_PROBATION_WINDOW,
            calls: None,
            max_failures: DEFAULT_MAX_FAILURES,
            plugin_errors_fail: false,
            health_check: None,
        }
    }
}

impl std::fmt::Debug for Probation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probation")
            .field("window", &self.window)
            .field("calls", &self.calls)
            .field("max_failures", &self.max_failures)
            .field("plugin_errors_fail", &self.plugin_errors_fail)
            .field("health_check", &self.health_check.is_some())
            .finish()
    }
}

impl Probation {
    /// How long a new version is on probation (default
    /// [`DEFAULT_PROBATION_WINDOW`]).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Ends the probation early, passed, after this many calls.
    pub fn calls(mut self, calls: u64) -> Self {
        self.calls = Some(calls.max(1));
        self
    }

    /// Failed calls that fail the probation (default [`DEFAULT_MAX_FAILURES`]).
    pub fn max_failures(mut self, failures: u32) -> Self {
        self.max_failures = failures.max(1);
        self
    }

    /// Whether a call that returns the plugin's own error (`CallError::Plugin`) counts
    /// as a failure. By default it does not: it is the plugin's business.
    pub fn plugin_errors_fail(mut self, fail: bool) -> Self {
        self.plugin_errors_fail = fail;
        self
    }

    /// A check run against the version on probation when its window ends; an `Err`
    /// fails the probation (and rolls back).
    pub fn health_check(
        mut self,
        check: impl Fn(&VersionHandle) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.health_check = Some(Arc::new(check));
        self
    }

    /// Whether a call that ended in `error` counts against a version on probation:
    /// a panic, a crash or deadline kill of its process, an answer the host could
    /// not read from the plugin, and (if asked) the plugin's own errors. Not: a
    /// method that is not implemented, or the host's own encoding failures.
    pub(crate) fn fails(&self, error: &CallError) -> bool {
        match error {
            CallError::Plugin(_) => self.plugin_errors_fail,
            CallError::Panic(_)
            | CallError::PluginSerialization(_)
            | CallError::UnknownStatus(_)
            | CallError::Timeout { .. }
            | CallError::Crashed { .. }
            | CallError::ProcessKilled { .. }
            | CallError::Unavailable { .. } => true,
            _ => false,
        }
    }
}

/// The calls of one version while it is on probation; on the version itself, so a
/// call finds it without a lock.
/// On a cache line of its own: calls on probation count here from every thread.
/// Every call reads `flags` (one load): on probation, and frozen for a state
/// handoff (`handoff.rs`).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Trial {
    flags: AtomicU8,
    calls: AtomicU64,
    failures: AtomicU32,
    /// A verdict on it was handed over (so it is given once).
    decided: AtomicBool,
    /// A newer build replaced it while it was on probation.
    replaced: AtomicBool,
}

impl Trial {
    /// The flags a call looks at: [`ON_PROBATION`], [`FROZEN`].
    #[inline]
    pub fn flags(&self) -> u8 {
        self.flags.load(Ordering::Relaxed)
    }

    pub fn active(&self) -> bool {
        self.flags() & ON_PROBATION != 0
    }

    pub fn set(&self, flag: u8, on: bool) {
        if on {
            self.flags.fetch_or(flag, Ordering::SeqCst);
        } else {
            self.flags.fetch_and(!flag, Ordering::SeqCst);
        }
    }

    pub fn replaced(&self) -> bool {
        self.replaced.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// [`Trial::flags`]: the version is on probation (its calls are counted).
pub(crate) const ON_PROBATION: u8 = 1;
/// [`Trial::flags`]: a state handoff is taking the version's state: calls wait for
/// the next version instead (`handoff.rs`).
pub(crate) const FROZEN: u8 = 2;

/// The probation under way: the version on trial and the one kept to roll back to.
pub(crate) struct OnProbation {
    pub generation: u64,
    pub previous: Arc<Version>,
    pub started: Instant,
}

/// What the status shows of a probation under way.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbationStatus {
    /// The version on probation.
    pub generation: u64,
    /// The version kept loaded to roll back to.
    pub previous: u64,
    /// Calls it served so far.
    pub calls: u64,
    /// Calls that failed in a way that counts.
    pub failures: u32,
    /// Time left in its window.
    pub remaining: Duration,
}

/// A build that failed its probation: not loaded again while the file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quarantined {
    /// The generation it had.
    pub generation: u64,
    /// Its content hash (see [`VersionInfo::content_hash`](crate::VersionInfo)).
    pub content_hash: u64,
    /// Why it was rolled back.
    pub reason: String,
}

impl Shared {
    /// Puts `new` on probation beside `previous` (called under the reload lock,
    /// before the swap): calls start counting at once. Returns whether it did
    /// (whether probation is configured).
    pub(crate) fn begin_probation(self: &Arc<Self>, new: &Version, previous: Arc<Version>) -> bool {
        let Some(probation) = &self.config().probation else {
            return false;
        };
        new.trial.set(ON_PROBATION, true);
        *self.probation.lock() = Some(OnProbation {
            generation: new.generation,
            previous,
            started: Instant::now(),
        });
        let generation = new.generation;
        let weak = Arc::downgrade(self);
        crate::pool::after(probation.window, move || {
            if let Some(shared) = weak.upgrade() {
                shared.window_over(generation);
            }
        });
        true
    }

    /// A newer build replaces `current` while it is still on probation: it ends
    /// unproven (and drains), and the version it was on trial against is returned,
    /// to stay the one to roll back to: the last version that proved itself. Under
    /// the reload lock.
    pub(crate) fn replace_on_trial(&self, current: &Arc<Version>) -> Option<Arc<Version>> {
        let on = self.probation.lock().take()?;
        current.trial.set(ON_PROBATION, false);
        current.trial.replaced.store(true, Ordering::SeqCst);
        Some(on.previous)
    }

    /// Ends the probation under way as passed: the previous version drains as after
    /// any swap. Under the reload lock.
    pub(crate) fn pass_probation(&self) -> Option<Arc<Version>> {
        let on = self.probation.lock().take()?;
        let proven = self.current.with(|v| {
            (v.generation == on.generation).then(|| {
                v.trial.set(ON_PROBATION, false);
                v.info()
            })
        });
        self.queue(ReloadEvent::ProbationPassed {
            generation: on.generation,
        });
        if let Some(proven) = proven {
            self.keep_as_last_good(proven.content_hash);
        }
        self.push_draining(Draining::of(&on.previous));
        Some(on.previous)
    }

    /// Counts a call of version `v`, on probation; `error` is how it failed, if it
    /// did. Crossing a threshold hands the decision to the pool.
    #[cold]
    pub(crate) fn judge(self: &Arc<Self>, v: &Version, error: Option<&CallError>) {
        let Some(probation) = &self.config().probation else {
            return;
        };
        if v.trial.decided.load(Ordering::Relaxed) {
            // Still counted, for the rollback's report and for `decide`.
            v.trial.calls.fetch_add(1, Ordering::Relaxed);
            if error.is_some_and(|e| probation.fails(e)) {
                v.trial.failures.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let calls = v.trial.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let failed = error.is_some_and(|e| probation.fails(e));
        let failures = if failed {
            v.trial.failures.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            v.trial.failures.load(Ordering::Relaxed)
        };
        let verdict = if failures >= probation.max_failures {
            Some(Verdict::Fail(format!(
                "{failures} of {calls} calls failed (the limit is {}); the last: {}",
                probation.max_failures,
                error.map_or_else(String::new, ToString::to_string)
            )))
        } else if probation.calls.is_some_and(|n| calls >= n) {
            Some(Verdict::Pass)
        } else {
            None
        };
        if let Some(verdict) = verdict {
            if !v.trial.decided.swap(true, Ordering::SeqCst) {
                self.decide_later(v.generation, verdict);
            }
        }
    }

    /// The window of version `generation`'s probation is over: a health check
    /// decides, if there is one. It runs with the swap locks held, so that no state
    /// handoff takes the version's state meanwhile; never waits for them.
    fn window_over(self: &Arc<Self>, generation: u64) {
        let Some(probation) = &self.config().probation else {
            return;
        };
        let Some(locks) = self.try_swap_locks() else {
            let weak = Arc::downgrade(self);
            crate::pool::after(Duration::from_millis(5), move || {
                if let Some(shared) = weak.upgrade() {
                    shared.window_over(generation);
                }
            });
            return;
        };
        let on_trial = self.current.load_full();
        if on_trial.generation != generation || !on_trial.trial.active() {
            return;
        }
        if on_trial.trial.decided.swap(true, Ordering::SeqCst) {
            return;
        }
        let verdict = match &probation.health_check {
            None => Verdict::Pass,
            Some(check) => match run_check(check, &on_trial) {
                Ok(()) => Verdict::Pass,
                Err(why) => Verdict::Fail(format!("the health check failed: {why}")),
            },
        };
        let old = self.decide_locked(generation, verdict);
        drop(locks);
        // Let go of after the locks, like any version.
        drop(on_trial);
        self.finish(old.into_iter().collect());
    }

    /// Acts on a verdict on the pool (not in the call that reached it).
    fn decide_later(self: &Arc<Self>, generation: u64, verdict: Verdict) {
        let weak = Arc::downgrade(self);
        crate::pool::spawn(move || {
            if let Some(shared) = weak.upgrade() {
                shared.decide(generation, verdict);
            }
        });
    }

    /// Passes or fails version `generation`'s probation, if it is still under way.
    /// Never waits: while a hold or a reload is in the way, it tries again shortly.
    fn decide(self: &Arc<Self>, generation: u64, verdict: Verdict) {
        let Some(locks) = self.try_swap_locks() else {
            let weak: Weak<Shared> = Arc::downgrade(self);
            crate::pool::after(Duration::from_millis(5), move || {
                if let Some(shared) = weak.upgrade() {
                    shared.decide(generation, verdict);
                }
            });
            return;
        };
        let old = self.decide_locked(generation, verdict);
        drop(locks);
        self.finish(old.into_iter().collect());
    }

    /// Passes or fails version `generation`'s probation if it is still under way,
    /// under the swap locks; returns the version to let go of after them.
    fn decide_locked(&self, generation: u64, verdict: Verdict) -> Option<Arc<Version>> {
        if self
            .probation
            .lock()
            .as_ref()
            .is_none_or(|on| on.generation != generation)
        {
            return None;
        }
        // Failures that crossed the threshold after a pass was handed over (by the
        // window or the call count) still fail it.
        let max_failures = self
            .config()
            .probation
            .as_ref()
            .map_or(u32::MAX, |p| p.max_failures);
        let failures = self.current.with(|v| v.trial.failures());
        let verdict = match verdict {
            Verdict::Pass if failures >= max_failures => Verdict::Fail(format!(
                "{failures} calls failed (the limit is {max_failures})"
            )),
            verdict => verdict,
        };
        match verdict {
            Verdict::Pass => self.pass_probation(),
            Verdict::Fail(reason) => self.roll_back_locked(&reason),
        }
    }

    /// Swaps the previous version back in, quarantines the version on probation,
    /// and returns it (to let go of once the events are out). Under the reload lock.
    pub(crate) fn roll_back_locked(&self, reason: &str) -> Option<Arc<Version>> {
        let on = self.probation.lock().take()?;
        let failed = self.current.load_full();
        failed.trial.set(ON_PROBATION, false);
        // The state at rollback time goes back with the previous version, when both
        // carry state; without it (the failed version cannot save, say) the previous
        // version serves with the state it had when it was replaced.
        // A failing version's calls may hang: the rollback waits for them briefly.
        let mut handoff = None;
        if failed.handle.carries_state() && on.previous.handle.carries_state() {
            match self.hand_state_over(&failed, &on.previous, ROLLBACK_DRAIN_LIMIT) {
                Ok(h) => handoff = Some(h),
                Err(r) => {
                    tracing::error!(plugin = %self.plugin(), reason = %r.reason, "rolling back without the failed version's state")
                }
            }
        }
        // It was frozen when its state was handed to the version now failing.
        on.previous.trial.set(FROZEN, false);
        let (calls, failures) = (
            failed.trial.calls.load(Ordering::Relaxed),
            failed.trial.failures.load(Ordering::Relaxed),
        );
        self.current.swap(on.previous.clone());
        if let Some(handoff) = handoff {
            handoff.swapped();
        }
        self.quarantine.lock().push(Quarantined {
            generation: failed.generation,
            content_hash: failed.copy.content_hash,
            reason: reason.to_string(),
        });
        self.queue(ReloadEvent::RolledBack {
            from: failed.generation,
            to: on.previous.generation,
            reason: reason.to_string(),
            calls,
            failures,
            after: on.started.elapsed(),
        });
        self.push_draining(Draining::of(&failed));
        Some(failed)
    }

    /// The quarantine entry of a build with this content, if it failed a probation.
    pub(crate) fn quarantined(&self, content_hash: u64) -> Option<Quarantined> {
        self.quarantine
            .lock()
            .iter()
            .find(|q| q.content_hash == content_hash)
            .cloned()
    }

    pub(crate) fn probation_status(&self) -> Option<ProbationStatus> {
        let probation = self.config().probation.as_ref()?;
        let on = self.probation.lock();
        let on = on.as_ref()?;
        let (calls, failures) = self.current.with(|v| {
            (
                v.trial.calls.load(Ordering::Relaxed),
                v.trial.failures.load(Ordering::Relaxed),
            )
        });
        Some(ProbationStatus {
            generation: on.generation,
            previous: on.previous.generation,
            calls,
            failures,
            remaining: probation.window.saturating_sub(on.started.elapsed()),
        })
    }
}

enum Verdict {
    Pass,
    Fail(String),
}

/// Runs a host's check against `version`; a panic in it is a failure.
pub(crate) fn run_check(check: &VersionCheck, version: &Arc<Version>) -> Result<(), String> {
    let handle = VersionHandle::new(version.clone());
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&handle))) {
        Ok(result) => result,
        Err(panic) => Err(format!(
            "the check panicked: {}",
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        )),
    }
}
