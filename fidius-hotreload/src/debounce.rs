//! From file events to "this file is ready": one debounce-and-settle rule, and one
//! retry rule, for hot plugins and hot directories alike.
//!
//! Each watched path goes through these phases:
//!
//! 1. **Quiet**: events keep coming; wait until there has been none for a debounce.
//! 2. **Settling**: take the file's size and modification time, and wait half a
//!    debounce more (at least 5 ms). Any event meanwhile, or a different size or time
//!    at the end, starts over. A file that is gone is reported gone.
//! 3. **Running**: the target runs the reload pipeline for it on a worker. Events that
//!    arrive meanwhile are remembered, and the path starts over when the run ends.
//! 4. **Retrying**: the run asked to be tried again (a file that settled can still fail
//!    to load while whatever writes it finishes): run again one debounce later, unless
//!    new events start it over first.
//!
//! A path whose target is paused or held waits (**parked**) until [`Debouncer::kick`].
//! All waiting is done with timers on the shared pool (`pool.rs`); no thread is
//! blocked per path.

use crate::pool;
use crate::watcher::{Signal, Sink, WatcherKind};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

/// What the debouncer drives: a hot plugin (one path) or a hot directory (one path per
/// library).
pub(crate) trait Target: Send + Sync + 'static {
    /// How long a path must be quiet before it settles.
    fn debounce(&self) -> Duration;
    /// Whether reloads should wait (paused). A parked path goes on at the next kick.
    fn paused(&self) -> bool;
    /// Runs the pipeline for `path`, which settled; `attempt` is 0 for the first run
    /// after a change and counts the retries after it.
    fn run(&self, path: &Path, attempt: u32) -> Ran;
    /// `path` was gone when it should have settled. `Held` or `Busy` if that could
    /// not be acted on yet.
    fn gone(&self, path: &Path) -> Ran;
    /// Events were lost: every path of the target should be looked at again.
    fn rescan(&self) -> Vec<PathBuf>;
    /// The configured directory now names another directory (`to`), or nothing
    /// (`None`: deaf until it comes back); see `watcher.rs`.
    fn moved(&self, from: Option<PathBuf>, to: Option<PathBuf>, kind: Option<WatcherKind>);
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ran {
    /// Finished, however it turned out.
    Done,
    /// Try again one debounce later.
    Retry,
    /// Reloads are held off: wait for the next kick.
    Held,
    /// Another reload of the same plugin is running: the same attempt, one debounce
    /// later.
    Busy,
    /// A failure that may clear by itself (a full disk): try again after a delay
    /// that doubles each time, up to [`LONGEST_BACKOFF`].
    Backoff,
}

/// Attempts from this number on are back-off retries (`Ran::Backoff`); below it,
/// retries of a file that may still be settling.
pub(crate) const BACKOFF: u32 = 1 << 16;

/// The longest wait between two back-off retries.
pub(crate) const LONGEST_BACKOFF: Duration = Duration::from_secs(30);

/// The wait before back-off attempt `attempt` (at least [`BACKOFF`] + 1).
fn backoff_delay(debounce: Duration, attempt: u32) -> Duration {
    let doublings = (attempt - BACKOFF).min(16);
    (debounce.max(Duration::from_millis(10)) * 2u32.pow(doublings)).min(LONGEST_BACKOFF)
}

#[derive(Debug)]
enum Phase {
    Quiet,
    Settling {
        fingerprint: Fingerprint,
        since: Instant,
    },
    Running {
        /// Events arrived during the run.
        dirty: bool,
    },
    Retrying {
        attempt: u32,
    },
    Parked,
}

#[derive(Debug)]
struct Entry {
    /// The last event; `None` after a kick (quiet long enough: settle at once).
    last_event: Option<Instant>,
    phase: Phase,
    /// The token of the one timer that counts for this path, if one is pending; a
    /// timer that fires with another token is stale and does nothing.
    timer: Option<u64>,
}

/// The debounce state of every path of one target.
pub(crate) struct Debouncer {
    target: Weak<dyn Target>,
    paths: Mutex<HashMap<PathBuf, Entry>>,
    next_timer: std::sync::atomic::AtomicU64,
}

impl Debouncer {
    pub fn new(target: Weak<dyn Target>) -> Arc<Self> {
        Arc::new(Self {
            target,
            paths: Mutex::new(HashMap::new()),
            next_timer: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Something happened to `path`.
    pub fn touch(self: &Arc<Self>, path: &Path) {
        let Some(target) = self.target.upgrade() else {
            return;
        };
        let debounce = target.debounce();
        let mut paths = self.paths.lock();
        let entry = paths.entry(path.to_path_buf()).or_insert(Entry {
            last_event: None,
            phase: Phase::Quiet,
            timer: None,
        });
        entry.last_event = Some(Instant::now());
        match &mut entry.phase {
            Phase::Running { dirty } => *dirty = true,
            // Waiting out a retry or a hold: the change starts it over now (the
            // pending timer, if any, goes stale).
            Phase::Retrying { .. } | Phase::Parked => {
                entry.phase = Phase::Quiet;
                self.arm(entry, path, debounce);
            }
            Phase::Quiet | Phase::Settling { .. } => {
                if entry.timer.is_none() {
                    self.arm(entry, path, debounce);
                }
            }
        }
    }

    /// What the watcher calls for this debouncer's registration. `key` names the
    /// path to touch for a change seen at a path (in whatever directory the watch
    /// follows now), or `None` to ignore it. Holds the debouncer weakly.
    pub fn sink(
        self: &Arc<Self>,
        key: impl Fn(&Path) -> Option<PathBuf> + Send + Sync + 'static,
    ) -> Sink {
        let debouncer = Arc::downgrade(self);
        Arc::new(move |signal: Signal| {
            let Some(debouncer) = debouncer.upgrade() else {
                return;
            };
            match signal {
                Signal::Changed(path) => {
                    if let Some(key) = key(&path) {
                        debouncer.touch(&key);
                    }
                }
                Signal::Rescan => debouncer.rescan(),
                Signal::Moved { from, to, kind } => debouncer.moved(from, to, kind),
            }
        })
    }

    /// Events were lost: touch every path the target knows.
    pub fn rescan(self: &Arc<Self>) {
        let Some(target) = self.target.upgrade() else {
            return;
        };
        for path in target.rescan() {
            self.touch(&path);
        }
    }

    /// The configured directory moved: the target reports it, then everything is
    /// looked at again. Called by the watcher's resolver, on a worker, one move at a
    /// time and in order.
    pub fn moved(
        self: &Arc<Self>,
        from: Option<PathBuf>,
        to: Option<PathBuf>,
        kind: Option<WatcherKind>,
    ) {
        let Some(target) = self.target.upgrade() else {
            return;
        };
        let found = to.is_some();
        target.moved(from, to, kind);
        if found {
            self.rescan();
        }
    }

    /// Paths parked by a pause or a hold go on now. A path whose run is under way
    /// starts over when it ends (the run may be about to find the hold that just
    /// ended).
    pub fn kick(self: &Arc<Self>) {
        let mut paths = self.paths.lock();
        for (path, entry) in paths.iter_mut() {
            if let Phase::Running { dirty } = &mut entry.phase {
                *dirty = true;
            }
            if matches!(entry.phase, Phase::Parked) {
                // Quiet long enough already: it settles at once.
                entry.phase = Phase::Quiet;
                entry.last_event = None;
                self.arm(entry, path, Duration::ZERO);
            }
        }
    }

    /// Sets the one timer that counts for `path` (any other pending goes stale).
    fn arm(self: &Arc<Self>, entry: &mut Entry, path: &Path, delay: Duration) {
        let token = self
            .next_timer
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        entry.timer = Some(token);
        let me = Arc::downgrade(self);
        let path = path.to_path_buf();
        pool::after(delay, move || {
            if let Some(me) = me.upgrade() {
                me.check(&path, token);
            }
        });
    }

    /// Starts `path` retrying after a transient failure outside the debouncer (the
    /// first scan of a directory), as its first back-off attempt.
    pub fn retry_later(self: &Arc<Self>, path: &Path) {
        let Some(target) = self.target.upgrade() else {
            return;
        };
        let mut paths = self.paths.lock();
        if paths.contains_key(path) {
            return;
        }
        let attempt = BACKOFF + 1;
        let entry = paths.entry(path.to_path_buf()).or_insert(Entry {
            last_event: None,
            phase: Phase::Retrying { attempt },
            timer: None,
        });
        self.arm(entry, path, backoff_delay(target.debounce(), attempt));
    }

    /// A timer for `path` fired.
    fn check(self: &Arc<Self>, path: &Path, token: u64) {
        let Some(target) = self.target.upgrade() else {
            return;
        };
        let debounce = target.debounce();
        let settle = (debounce / 2).max(Duration::from_millis(5));
        let mut paths = self.paths.lock();
        let Some(entry) = paths.get_mut(path) else {
            return;
        };
        if entry.timer != Some(token) {
            return;
        }
        entry.timer = None;
        let attempt = match entry.phase {
            Phase::Quiet => {
                if let Some(due) = entry.last_event.map(|at| at + debounce) {
                    let now = Instant::now();
                    if now < due {
                        return self.arm(entry, path, due - now);
                    }
                }
                if target.paused() {
                    entry.phase = Phase::Parked;
                    return;
                }
                let Some(fingerprint) = fingerprint(path) else {
                    paths.remove(path);
                    drop(paths);
                    return self.gone(&*target, path);
                };
                entry.phase = Phase::Settling {
                    fingerprint,
                    since: Instant::now(),
                };
                return self.arm(entry, path, settle);
            }
            Phase::Settling {
                fingerprint: before,
                since,
            } => {
                if target.paused() {
                    entry.phase = Phase::Parked;
                    return;
                }
                let now = fingerprint(path);
                if now.is_none() {
                    paths.remove(path);
                    drop(paths);
                    return self.gone(&*target, path);
                }
                if entry.last_event.is_some_and(|at| at > since) || now != Some(before) {
                    entry.phase = Phase::Quiet;
                    entry.last_event = Some(entry.last_event.map_or(since, |at| at.max(since)));
                    return self.arm(entry, path, debounce);
                }
                0
            }
            Phase::Retrying { attempt } => {
                if target.paused() {
                    entry.phase = Phase::Parked;
                    return;
                }
                attempt
            }
            Phase::Running { .. } | Phase::Parked => return,
        };
        entry.phase = Phase::Running { dirty: false };
        drop(paths);

        // A run that panics must not leave the path running forever (deaf to every
        // later change): it counts as done.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target.run(path, attempt)))
            .unwrap_or_else(|_| {
                tracing::error!(path = %path.display(), "a reload panicked; the file is watched as before");
                Ran::Done
            });

        let mut paths = self.paths.lock();
        let Some(entry) = paths.get_mut(path) else {
            return;
        };
        let dirty = matches!(entry.phase, Phase::Running { dirty: true });
        match ran {
            _ if dirty => {
                entry.phase = Phase::Quiet;
                self.arm(entry, path, debounce);
            }
            Ran::Done => {
                paths.remove(path);
            }
            Ran::Retry => {
                entry.phase = Phase::Retrying {
                    attempt: attempt + 1,
                };
                self.arm(entry, path, debounce);
            }
            Ran::Busy => {
                entry.phase = Phase::Retrying { attempt };
                self.arm(entry, path, debounce);
            }
            Ran::Backoff => {
                let next = attempt.max(BACKOFF) + 1;
                entry.phase = Phase::Retrying { attempt: next };
                self.arm(entry, path, backoff_delay(debounce, next));
            }
            Ran::Held => entry.phase = Phase::Parked,
        }
    }

    /// Reports `path` gone; if that has to wait, the path waits (unless events
    /// about it came meanwhile, which start it over anyway).
    fn gone(self: &Arc<Self>, target: &dyn Target, path: &Path) {
        let ran = target.gone(path);
        if !matches!(ran, Ran::Held | Ran::Busy) {
            return;
        }
        let mut paths = self.paths.lock();
        if paths.contains_key(path) {
            return;
        }
        let waiting = paths.entry(path.to_path_buf()).or_insert(Entry {
            last_event: None,
            phase: Phase::Parked,
            timer: None,
        });
        if ran == Ran::Busy {
            waiting.phase = Phase::Quiet;
            self.arm(waiting, path, target.debounce());
        }
    }
}

/// Size and modification time.
type Fingerprint = (u64, SystemTime);

/// The file's fingerprint, or `None` when nothing is at its path. Something that
/// cannot be followed (a link loop, a dangling link) is not gone: it gets a constant
/// fingerprint, settles, and the pipeline says what it is.
pub(crate) fn fingerprint(path: &Path) -> Option<Fingerprint> {
    match std::fs::metadata(path) {
        Ok(meta) => Some((
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        )),
        Err(_) if std::fs::symlink_metadata(path).is_ok() => {
            Some((u64::MAX, SystemTime::UNIX_EPOCH))
        }
        Err(_) => None,
    }
}
