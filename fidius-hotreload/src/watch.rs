//! Watching the plugin file and the worker thread that turns changes into reloads.
//!
//! The watch is on the file's parent directory, filtered by file name: a watch on the
//! file itself would die when the file is removed or renamed over, which is exactly
//! how cargo, `mv` and `install` replace it.

use crate::events::{ReloadEvent, Stage};
use crate::hot_plugin::Shared;
use crate::version::Msg;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher as _};
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

/// A live watch on one directory.
pub(crate) struct Watcher {
    _inner: notify::RecommendedWatcher,
}

impl Watcher {
    /// Watches the directory holding `file` and sends [`Msg::FileEvent`] for changes
    /// to that file name.
    pub fn new(file: &Path, tx: Sender<Msg>) -> notify::Result<Self> {
        let name = file.file_name().map(|n| n.to_os_string());
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        Self::directory(
            &dir,
            move |p| p.file_name().map(|n| n.to_os_string()) == name,
            move |_| {
                let _ = tx.send(Msg::FileEvent);
            },
        )
    }

    /// Watches `dir` (not recursively) and calls `changed` with the path of every
    /// content change to an entry that `wanted` accepts. A rescan request (the kernel
    /// dropped events) is passed on as a change to `dir` itself.
    pub fn directory(
        dir: &Path,
        wanted: impl Fn(&Path) -> bool + Send + 'static,
        changed: impl Fn(std::path::PathBuf) + Send + 'static,
    ) -> notify::Result<Self> {
        let root = dir.to_path_buf();
        let mut inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if event.need_rescan() {
                changed(root.clone());
                return;
            }
            if !changes_content(&event.kind) {
                return;
            }
            for path in event.paths {
                if wanted(&path) {
                    changed(path);
                }
            }
        })?;
        inner.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(Self { _inner: inner })
    }
}

/// Whether an event can mean new content. Reading the file (as the copy step does)
/// produces open, read and close events: reacting to those would reload forever. A
/// close after writing does count: it is how an in-place rewrite ends.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Size and modification time, or `None` when the file is missing.
pub(crate) fn fingerprint(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// First and longest wait between two looks at old versions still in calls. A call
/// that ends is noticed within a millisecond or so at first; a long call costs a look
/// (one membarrier and a scan of the hazard slots) every 100 ms at most. Calls do not
/// report their end themselves: measured, that check cost about 2.7 ns per call.
const RECLAIM_FIRST: Duration = Duration::from_millis(1);
const RECLAIM_MAX: Duration = Duration::from_millis(100);

/// The wait after `wait` while old versions are still in calls.
fn next_reclaim_wait(wait: Duration) -> Duration {
    (wait * 2).min(RECLAIM_MAX)
}

/// After the hot plugin is dropped: polls old versions still in calls until they
/// are free, or until no handle is left (then `Shared` is gone, and with it them).
pub(crate) fn drain_after_drop(shared: Weak<Shared>) {
    let mut wait = RECLAIM_FIRST;
    loop {
        std::thread::sleep(wait);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if !shared.reclaim() {
            return;
        }
        wait = next_reclaim_wait(wait);
    }
}

/// The worker: debounces file events, waits for the file to settle, reloads, and
/// finishes the retirement of closed versions.
pub(crate) fn run_worker(shared: Arc<Shared>, rx: Receiver<Msg>) {
    let debounce = shared.config().debounce;
    // Time of the last file event not yet acted on.
    let mut pending: Option<Instant> = None;
    // How long to wait before looking again whether old versions' calls finished.
    let mut reclaim_wait = RECLAIM_FIRST;
    loop {
        let mut timeout = match pending {
            Some(at) if !shared.is_paused() => debounce.saturating_sub(at.elapsed()),
            _ => Duration::from_secs(3600),
        };
        if shared.reclaim() {
            timeout = timeout.min(reclaim_wait);
            reclaim_wait = next_reclaim_wait(reclaim_wait);
        } else {
            reclaim_wait = RECLAIM_FIRST;
        }
        match rx.recv_timeout(timeout) {
            Ok(Msg::FileEvent) => pending = Some(Instant::now()),
            Ok(Msg::Retired { generation, copy }) => shared.retired(generation, copy),
            Ok(Msg::Wake) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
        }
        let Some(at) = pending else { continue };
        if shared.is_paused() || at.elapsed() < debounce {
            continue;
        }
        // Quiet for a debounce: now wait for the file to hold still.
        match settle(&shared, &rx, debounce) {
            Settled::Stop => break,
            Settled::Again => {
                pending = Some(Instant::now());
                continue;
            }
            Settled::Gone => {
                pending = None;
                shared.emit(ReloadEvent::Removed {
                    path: shared.source().to_path_buf(),
                });
                continue;
            }
            Settled::Stable => pending = None,
        }
        reload_with_retries(&shared, debounce);
    }
}

enum Settled {
    Stable,
    Again,
    Gone,
    Stop,
}

/// Waits until size and modification time hold still over half a debounce, handling
/// messages meanwhile. New file events mean "not settled yet".
fn settle(shared: &Shared, rx: &Receiver<Msg>, debounce: Duration) -> Settled {
    let Some(before) = fingerprint(shared.source()) else {
        return Settled::Gone;
    };
    let deadline = Instant::now() + (debounce / 2).max(Duration::from_millis(5));
    let mut changed = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(left) {
            Ok(Msg::FileEvent) => changed = true,
            Ok(Msg::Retired { generation, copy }) => shared.retired(generation, copy),
            Ok(Msg::Wake) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return Settled::Stop,
        }
    }
    match fingerprint(shared.source()) {
        None => Settled::Gone,
        Some(after) if after != before || changed => Settled::Again,
        Some(_) => Settled::Stable,
    }
}

/// A file that stopped changing can still fail to load while whatever writes it
/// finishes; try a few times, one debounce apart, before reporting a rejection. Every
/// failed attempt is reported, the ones a later attempt recovers from too.
fn reload_with_retries(shared: &Shared, debounce: Duration) {
    shared.emit(ReloadEvent::Detected {
        path: shared.source().to_path_buf(),
    });
    let retries = shared.config().load_retries;
    let mut attempt = 0;
    loop {
        match shared.reload(false) {
            Ok(_) => return,
            Err(r) if r.stage == Stage::Load && attempt < retries => {
                attempt += 1;
                shared.emit(ReloadEvent::Retrying {
                    attempt,
                    left: retries - attempt + 1,
                    failure: r,
                });
                std::thread::sleep(debounce);
            }
            Err(r) => {
                shared.reject(r);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};

    #[test]
    fn only_events_that_can_change_content_count() {
        let table = [
            (EventKind::Access(AccessKind::Open(AccessMode::Read)), false),
            (EventKind::Access(AccessKind::Read), false),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                false,
            ),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                true,
            ),
            (EventKind::Create(CreateKind::File), true),
            (EventKind::Modify(ModifyKind::Any), true),
            (EventKind::Modify(ModifyKind::Name(RenameMode::To)), true),
            (EventKind::Remove(RemoveKind::File), true),
            (EventKind::Any, true),
        ];
        for (kind, expected) in table {
            assert_eq!(changes_content(&kind), expected, "{kind:?}");
        }
    }
}
