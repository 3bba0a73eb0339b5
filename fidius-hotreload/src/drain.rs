//! Draining and unloading: an old version is given up once no call is in it, and its
//! library is closed when the last thing holding it goes.
//!
//! A swap leaves the old version in the hazard cell's retiring list (`hazard.rs`).
//! Calls do not report their end (that would cost every call; BENCHMARKS.md), so
//! while a call may still be in an old version it is polled for, with a timer on
//! the shared pool: 1 ms at first, backing off to 100 ms. When the version's last
//! holder goes (at once, or later for a stream), its library is closed on that
//! thread, which then checks whether the library left memory, lets go of its copy and
//! reports. Versions are only ever dropped where no lock is held.

use crate::pool;
use crate::shadow::ShadowCopy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// What drains: the state of one hot plugin.
pub(crate) trait Drain: Send + Sync + 'static {
    /// Gives up the old versions no call is in any more (each closes once nothing
    /// else holds it). Returns whether some are still in calls.
    fn reclaim(&self) -> bool;
    /// A version's library was closed: check whether it left memory, let go of its
    /// copy, report.
    fn retired(&self, generation: u64, copy: ShadowCopy);
    /// Set while a poll for old versions' calls is scheduled.
    fn polling(&self) -> &AtomicBool;
    /// Something happened to the process isolated version `generation` runs in.
    #[cfg(all(feature = "isolated", target_os = "linux"))]
    fn process_event(&self, generation: u64, event: fidius_isolated::IsolatedEvent);
}

/// First and longest wait between two looks at old versions still in calls. A call
/// that ends is noticed within a millisecond or so at first; a long call costs a look
/// (one membarrier and a scan of the hazard slots) every 100 ms at most.
const FIRST_LOOK: Duration = Duration::from_millis(1);
const LONGEST_WAIT: Duration = Duration::from_millis(100);

/// Gives up what can be given up now, and polls for the rest until it is free or the
/// plugin is gone (which frees it with everything else).
pub(crate) fn reclaim_now_and_later(target: &Arc<impl Drain>) {
    if target.reclaim() && !target.polling().swap(true, Ordering::SeqCst) {
        let weak: Weak<dyn Drain> = Arc::downgrade(target) as Weak<dyn Drain>;
        look_after(weak, FIRST_LOOK);
    }
}

fn look_after(target: Weak<dyn Drain>, wait: Duration) {
    pool::after(wait, move || {
        let Some(strong) = target.upgrade() else {
            return;
        };
        if strong.reclaim() {
            return look_after(target, (wait * 2).min(LONGEST_WAIT));
        }
        strong.polling().store(false, Ordering::SeqCst);
        // A swap between the look above and the store may have found the flag still
        // set and left the polling to us.
        if strong.reclaim() && !strong.polling().swap(true, Ordering::SeqCst) {
            look_after(target, FIRST_LOOK);
        }
    });
}

/// Where a closed version is reported: set once the plugin's state exists (the first
/// version is loaded before it).
#[derive(Default)]
pub(crate) struct Retirement(OnceLock<Weak<dyn Drain>>);

impl Retirement {
    pub fn report_to(&self, target: Weak<dyn Drain>) {
        let _ = self.0.set(target);
    }

    /// The library of version `generation` was closed, on this thread. The rest is
    /// done here too, not on a worker: a job would keep the plugin alive, and with it
    /// the current version, after its last handle went. Without a plugin to report to
    /// (it is gone, or was never started), the copy is just let go.
    /// Reports an event of isolated version `generation`'s process, if the plugin
    /// is still there.
    #[cfg(all(feature = "isolated", target_os = "linux"))]
    pub fn process_event(&self, generation: u64, event: &fidius_isolated::IsolatedEvent) {
        if let Some(target) = self.0.get().and_then(Weak::upgrade) {
            target.process_event(generation, event.clone());
        }
    }

    pub fn retired(&self, generation: u64, copy: ShadowCopy) {
        match self.0.get().and_then(Weak::upgrade) {
            Some(target) => target.retired(generation, copy),
            None => drop(copy),
        }
    }
}
