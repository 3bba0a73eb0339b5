//! State handoff: when the current version and a new build both carry state
//! (`fidius::PluginState`), the new version takes the old one's state before it is
//! swapped in, and no update made in between is lost:
//!
//! 1. the old version is *frozen*: a call that reaches it from then on waits (for at
//!    most [`HANDOFF_WAIT`]) and then goes to whichever version is current;
//! 2. calls already running in it finish (the handoff waits for them, at most
//!    [`DRAIN_LIMIT`]);
//! 3. its state is saved, and restored into the new version;
//! 4. the swap happens, and the waiting calls proceed on the new version.
//!
//! If the calls do not finish in time, or saving or restoring fails (the new version
//! may refuse the state), the old version is thawed and keeps serving with its state,
//! and the build is rejected at [`Stage::State`].
//!
//! Freezing rests on the hazard slots' ordering: a call announces its version, then
//! reads the version's flags; the handoff sets the flag, then counts announcements
//! and owned references (`HazardCell::busy`). So a call either sees the flag or is
//! counted and waited for; none slips past unseen. Where that cannot be proven
//! (membarrier failed under calls that rely on it), the handoff is refused.

use crate::events::{Rejection, ReloadEvent, Stage};
use crate::pipeline::Shared;
use crate::probation::FROZEN;
use crate::version::Version;
use fidius::CallError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a call waits for a handoff under way before it fails.
pub const HANDOFF_WAIT: Duration = Duration::from_secs(10);
/// How long a handoff waits for the calls running in the old version to finish.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// A handoff in progress: whether one is, for the calls that wait on it.
#[derive(Default)]
pub(crate) struct HandoffGate {
    in_progress: parking_lot::Mutex<bool>,
    over: parking_lot::Condvar,
}

/// A handoff that succeeded, until its swap is done: dropped, it ends the handoff
/// (waiting calls go on), thawing the old version first unless the swap happened.
pub(crate) struct Handoff<'a> {
    shared: &'a Shared,
    old: Arc<Version>,
    swapped: bool,
}

impl Handoff<'_> {
    /// The new version is current: calls that waited go to it.
    pub fn swapped(mut self) {
        self.swapped = true;
    }
}

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        if !self.swapped {
            self.old.trial.set(FROZEN, false);
        }
        self.shared.handoff_done();
    }
}

impl Shared {
    /// Steps 1 to 3 for `old` (the current version) and `new` (not yet swapped in),
    /// under the reload lock, waiting at most `drain_limit` for the calls in `old`.
    /// On success the caller swaps, then calls [`Handoff::swapped`]. On failure the
    /// old version serves on, thawed.
    pub(crate) fn hand_state_over(
        &self,
        old: &Arc<Version>,
        new: &Version,
        drain_limit: Duration,
    ) -> Result<Handoff<'_>, Rejection> {
        let started = Instant::now();
        *self.handoff.in_progress.lock() = true;
        old.trial.set(FROZEN, true);
        // From here on the guard thaws and releases on any way out.
        let handoff = Handoff {
            shared: self,
            old: old.clone(),
            swapped: false,
        };
        match self.take_state(old, new, started, drain_limit) {
            Ok(()) => Ok(handoff),
            Err(why) => Err(Rejection::new(self.source(), Stage::State, why, None)),
        }
    }

    fn take_state(
        &self,
        old: &Arc<Version>,
        new: &Version,
        started: Instant,
        drain_limit: Duration,
    ) -> Result<(), String> {
        // Calls and owned references in it (besides the cell's, and ours: `old`, and
        // the guard's). Calls are short: the first looks only yield the processor;
        // longer waits sleep, up to 2 ms at a time.
        let mut pause = Duration::from_micros(100);
        loop {
            let Some(busy) = self.current.busy(old, 2) else {
                return Err(format!(
                    "membarrier failed, and calls in generation {} may not have been seen; the state stays with it",
                    old.generation
                ));
            };
            if busy == 0 {
                break;
            }
            let waited = started.elapsed();
            if waited > drain_limit {
                return Err(format!(
                    "{busy} calls or streams were still in generation {} after {drain_limit:?}; the state stays with it",
                    old.generation
                ));
            }
            if waited < Duration::from_micros(500) {
                std::thread::yield_now();
            } else {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(2));
            }
        }
        let drained = started.elapsed();
        let saved = match old.handle.save_state() {
            Some(Ok(saved)) => saved,
            Some(Err(e)) => {
                return Err(format!(
                    "saving the state of generation {} failed: {e}",
                    old.generation
                ))
            }
            None => return Err("the current version carries no state".into()),
        };
        match new.handle.restore_state(&saved) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(format!(
                    "the new version did not take the state of generation {} (layout {}): {e}",
                    old.generation,
                    saved.version()
                ))
            }
            None => return Err("the new version carries no state".into()),
        }
        self.queue(ReloadEvent::StateHandedOver {
            from: old.generation,
            to: new.generation,
            bytes: saved.bytes().len(),
            layout: saved.version(),
            drained,
            paused: started.elapsed(),
        });
        Ok(())
    }

    /// The handoff is over (after the swap, or failed): waiting calls go on.
    pub(crate) fn handoff_done(&self) {
        *self.handoff.in_progress.lock() = false;
        self.handoff.over.notify_all();
    }

    /// A call found its version frozen: waits until the handoff is over, then the
    /// caller tries again on whichever version is current.
    #[cold]
    pub(crate) fn wait_for_handoff(&self) -> Result<(), CallError> {
        let until = Instant::now() + HANDOFF_WAIT;
        let mut in_progress = self.handoff.in_progress.lock();
        while *in_progress {
            if self
                .handoff
                .over
                .wait_until(&mut in_progress, until)
                .timed_out()
            {
                return Err(CallError::Unavailable {
                    plugin: self.plugin().to_string(),
                    reason: format!(
                        "a state handoff to a new version took longer than {HANDOFF_WAIT:?}"
                    ),
                });
            }
        }
        Ok(())
    }
}
