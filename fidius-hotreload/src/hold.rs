//! Holding reloads off: [`ReloadHold`] and the gate behind it.
//!
//! A hold and a reload exclude each other the way readers and writers of a lock
//! would, but the other way round: any number of holds at once, any number of
//! reloads at once (a hot directory reloads several libraries in parallel; one
//! plugin's reloads are serialized by its own lock), never both. A hold waits for
//! the reloads already running; a reload on command waits for the holds; a reload
//! on a worker does not wait at all: its file waits for the last hold to end.
//! Neither side is held while events are delivered, and holds nest.

use crate::debounce::Debouncer;
use crate::events::NoWait;
use parking_lot::{Condvar, Mutex};
use std::sync::{Arc, Weak};

/// Holds and reloads of one hot plugin or hot directory.
#[derive(Default)]
pub(crate) struct HoldGate {
    state: Mutex<Counts>,
    changed: Condvar,
}

#[derive(Default)]
struct Counts {
    holds: usize,
    reloads: usize,
}

/// A reload inside the gate; it leaves when this is dropped.
pub(crate) struct Entered<'a>(&'a HoldGate);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.state.lock().reloads -= 1;
        self.0.changed.notify_all();
    }
}

impl HoldGate {
    /// Enters for a reload unless a hold is in place.
    pub fn try_enter(&self) -> Option<Entered<'_>> {
        let mut state = self.state.lock();
        if state.holds > 0 {
            return None;
        }
        state.reloads += 1;
        Some(Entered(self))
    }

    /// Enters for a reload once no hold is in place, waiting for holds to end until
    /// `deadline` (`None`: for ever). `None` when the deadline passed first.
    pub fn enter_until(&self, deadline: Option<std::time::Instant>) -> Option<Entered<'_>> {
        let mut state = self.state.lock();
        while state.holds > 0 {
            match deadline {
                Some(deadline) => {
                    if self.changed.wait_until(&mut state, deadline).timed_out() && state.holds > 0
                    {
                        return None;
                    }
                }
                None => self.changed.wait(&mut state),
            }
        }
        state.reloads += 1;
        Some(Entered(self))
    }

    /// Enters for a reload once no hold is in place, however long that takes.
    pub fn enter(&self) -> Entered<'_> {
        self.enter_until(None)
            .expect("with no deadline, entering always succeeds")
    }

    fn hold(&self) {
        let mut state = self.state.lock();
        while state.reloads > 0 {
            self.changed.wait(&mut state);
        }
        state.holds += 1;
    }

    fn release(&self) {
        self.state.lock().holds -= 1;
        self.changed.notify_all();
    }
}

/// Holds reloads off while alive; see [`HotPlugin::hold`](crate::HotPlugin::hold) and
/// [`HotDirectory::hold`](crate::HotDirectory::hold). Like a lock guard, it stays on
/// the thread that took it (it is not `Send`).
pub struct ReloadHold<'a> {
    gate: &'a HoldGate,
    /// While a hold is alive its thread never waits for another thread's event
    /// delivery (whose callbacks may be waiting for the hold); this also keeps the
    /// hold on the thread that took it.
    _no_wait: NoWait,
    /// Changes that waited for the hold go on when it ends.
    waiting: Option<Weak<Debouncer>>,
}

impl<'a> ReloadHold<'a> {
    /// Waits for the reloads running now, then holds the next ones off.
    pub(crate) fn new(gate: &'a HoldGate, waiting: Option<&Arc<Debouncer>>) -> Self {
        gate.hold();
        Self {
            gate,
            _no_wait: NoWait::enter(),
            waiting: waiting.map(Arc::downgrade),
        }
    }
}

impl Drop for ReloadHold<'_> {
    fn drop(&mut self) {
        self.gate.release();
        if let Some(debouncer) = self.waiting.as_ref().and_then(Weak::upgrade) {
            debouncer.kick();
        }
    }
}

impl std::fmt::Debug for ReloadHold<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadHold").finish_non_exhaustive()
    }
}
