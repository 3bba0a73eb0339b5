//! One file watcher for the whole process, shared by every hot plugin and hot
//! directory in it.
//!
//! Each native watcher is a kernel object with a per-user limit (inotify allows 128
//! instances per user by default), so one per plugin runs out long before a thousand
//! plugins. Here there is one native watcher, with one watch per directory however
//! many plugins live in it, and events are routed by directory and file name. When
//! the native watcher cannot be had (the limit is reached, the platform or the file
//! system has none) or refuses a directory, that directory is polled instead; the
//! environment variable `FIDIUS_HOTRELOAD_POLL` asks for polling everywhere (for file
//! systems whose changes the kernel does not report, such as some network mounts).
//!
//! Directories are watched, not files: a watch on a file dies when the file is
//! removed or renamed over, which is exactly how cargo and `mv` replace it.
//!
//! A registration follows the directory *as configured*, not the directory it named
//! at the start. The kernel watches a directory (an inode) by its canonical path;
//! every [`RESOLVE_INTERVAL`], and at once when a watched directory itself is
//! removed or renamed, each configured path is resolved again. When it now names
//! another directory (a deploy tool switched a `current` symbolic link, or the
//! directory was renamed away and a new one made in its place), the watch moves to
//! the new one and the old one is unwatched, so that nothing happening in the old
//! one is ever taken for a change of the configured path; the registration is told
//! ([`Signal::Moved`]). When the path resolves to nothing, it is told it is deaf
//! until the path comes back.

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher as _};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use crate::poll::POLL_INTERVAL;

/// Which watcher reports a directory's changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherKind {
    /// The operating system's notifications (inotify, FSEvents, ReadDirectoryChangesW).
    Native,
    /// Looking at the directory every [`POLL_INTERVAL`]: used where native
    /// notifications cannot be had.
    Polling,
}

impl std::fmt::Display for WatcherKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WatcherKind::Native => f.write_str("native"),
            WatcherKind::Polling => write!(f, "polling every {} ms", POLL_INTERVAL.as_millis()),
        }
    }
}

/// How often every configured directory is resolved again.
pub(crate) const RESOLVE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// What a registration is told.
#[derive(Debug)]
pub(crate) enum Signal {
    /// Something happened to the entry of this name (the path is in the directory
    /// watched now) that may have changed its content.
    Changed(PathBuf),
    /// Events were lost: look at everything again.
    Rescan,
    /// The configured directory now resolves to `to` (a directory other than `from`,
    /// or the same path naming a new directory); `None` when it resolves to nothing
    /// and no change can be seen until it comes back. Look at everything again.
    Moved {
        from: Option<PathBuf>,
        to: Option<PathBuf>,
        /// Which watcher serves the new directory.
        kind: Option<WatcherKind>,
    },
}

/// Receives the signals of one registration: `Changed` and `Rescan` on the watcher's
/// thread (it must be quick), `Moved` on the resolver's worker (it may take its time:
/// the next resolve waits).
pub(crate) type Sink = Arc<dyn Fn(Signal) + Send + Sync>;

/// A live registration; dropping it stops the signals (and the watch on the
/// directory, when it was the last registration there).
pub(crate) struct Registration {
    id: u64,
    /// Which watcher serves it.
    pub kind: WatcherKind,
    /// Why it is not the native watcher, if it is not.
    pub fallback: Option<String>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        watchers().unregister(self.id);
    }
}

/// Registers `sink` for changes in the directory `configured` (as configured: it is
/// followed when it comes to name another directory): to the file `name` only, or
/// to every entry when `name` is `None`.
pub(crate) fn watch(
    configured: &Path,
    name: Option<OsString>,
    sink: Sink,
) -> Result<Registration, String> {
    let dir = canonical_dir(configured)
        .map_err(|e| format!("cannot resolve {}: {e}", configured.display()))?;
    watchers().register(configured, &dir, name, sink)
}

/// `dir` made absolute and free of symbolic links and `.`/`..`, so that it names the
/// directory the way the watcher's events will.
pub(crate) fn canonical_dir(dir: &Path) -> std::io::Result<PathBuf> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::canonicalize(dir)
}

/// The registrations of one directory.
#[derive(Default)]
struct Routes {
    by_name: HashMap<OsString, Vec<(u64, Sink)>>,
    every: Vec<(u64, Sink)>,
}

impl Routes {
    fn is_empty(&self) -> bool {
        self.every.is_empty() && self.by_name.is_empty()
    }

    fn all(&self) -> impl Iterator<Item = &Sink> {
        self.every
            .iter()
            .chain(self.by_name.values().flatten())
            .map(|(_, s)| s)
    }
}

struct Watchers {
    /// Read by the watcher threads to route events; written only to add or remove a
    /// registration, never while a watcher is being called.
    routes: RwLock<HashMap<PathBuf, Routes>>,
    /// Serializes registrations, and holds the watchers themselves.
    backends: Mutex<Backends>,
    /// One resolve at a time, moves reported in order.
    resolving: Mutex<()>,
    /// A resolve asked for by an event is scheduled and has not started yet.
    resolve_asked: std::sync::atomic::AtomicBool,
    /// Watched directories an event said moved: their watches are renewed. Not under
    /// `backends`: the watcher's thread adds to it, and a registration holding
    /// `backends` may be waiting for that thread (notify's `watch` does).
    suspects: Mutex<Vec<PathBuf>>,
}

#[derive(Default)]
struct Backends {
    /// `None` until first needed; then the watcher, or why there is none.
    native: Option<Result<notify::RecommendedWatcher, String>>,
    /// Every registration, by id.
    entries: HashMap<u64, Entry>,
    /// The resolver's timer is scheduled.
    resolving: bool,
    /// Which watcher watches each directory, and the directory it was (a new one may
    /// be made at the same path).
    watched: HashMap<PathBuf, (WatcherKind, Option<DirId>)>,
    next_id: u64,
}

fn watchers() -> &'static Watchers {
    static WATCHERS: OnceLock<Watchers> = OnceLock::new();
    WATCHERS.get_or_init(|| Watchers {
        routes: RwLock::new(HashMap::new()),
        backends: Mutex::new(Backends::default()),
        resolving: Mutex::new(()),
        resolve_asked: std::sync::atomic::AtomicBool::new(false),
        suspects: Mutex::new(Vec::new()),
    })
}

/// One registration.
struct Entry {
    /// The directory as configured (absolute).
    configured: PathBuf,
    /// What the configured path resolved to at the last look (canonical, and its
    /// identity); `None` when it resolved to nothing.
    wanted: Option<(PathBuf, DirId)>,
    /// The directory watched now; it differs from `wanted` only while that one
    /// cannot be watched (it is tried again at every look, silently).
    current: Option<(PathBuf, DirId)>,
    name: Option<OsString>,
    sink: Sink,
}

/// Device and inode of a directory: a new directory at the same path is another one.
type DirId = (u64, u64);

fn dir_id(dir: &Path) -> Option<DirId> {
    let meta = std::fs::metadata(dir).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Some((0, 0))
    }
}

impl Watchers {
    fn register(
        &self,
        configured: &Path,
        dir: &Path,
        name: Option<OsString>,
        sink: Sink,
    ) -> Result<Registration, String> {
        let mut backends = self.backends.lock();
        let id = backends.next_id;
        backends.next_id += 1;
        // The directory's identity is read once: the one watched is the one recorded.
        let identity = dir_id(dir).ok_or_else(|| format!("{} is gone", dir.display()))?;
        let (kind, fallback) = ensure_watched(&mut backends, dir, identity)?;
        self.add_route(dir, id, name.clone(), sink.clone());
        let at = Some((dir.to_path_buf(), identity));
        let entry = Entry {
            configured: std::path::absolute(configured)
                .unwrap_or_else(|_| configured.to_path_buf()),
            wanted: at.clone(),
            current: at,
            name,
            sink,
        };
        backends.entries.insert(id, entry);
        if !backends.resolving {
            backends.resolving = true;
            crate::pool::after(RESOLVE_INTERVAL, resolve_and_again);
        }
        Ok(Registration { id, kind, fallback })
    }

    fn unregister(&self, id: u64) {
        let mut backends = self.backends.lock();
        if let Some(Entry {
            current: Some((dir, _)),
            ..
        }) = backends.entries.remove(&id)
        {
            self.detach(&mut backends, &dir, id);
        }
    }

    fn add_route(&self, dir: &Path, id: u64, name: Option<OsString>, sink: Sink) {
        let mut routes = self.routes.write();
        let routes = routes.entry(dir.to_path_buf()).or_default();
        match name {
            Some(name) => routes.by_name.entry(name).or_default().push((id, sink)),
            None => routes.every.push((id, sink)),
        }
    }

    /// Stops routing `dir`'s events to `id`, and unwatches it when nobody else wants
    /// them.
    fn detach(&self, backends: &mut Backends, dir: &Path, id: u64) {
        let now_empty = {
            let mut routes = self.routes.write();
            let Some(entry) = routes.get_mut(dir) else {
                return;
            };
            entry.every.retain(|(i, _)| *i != id);
            entry.by_name.retain(|_, sinks| {
                sinks.retain(|(i, _)| *i != id);
                !sinks.is_empty()
            });
            let empty = entry.is_empty();
            if empty {
                routes.remove(dir);
            }
            empty
        };
        // The routes lock is released: a watcher thread delivering an event right now
        // can finish, which unwatching may wait for.
        if now_empty {
            stop_watch(backends, dir);
        }
    }

    /// Resolves every configured directory again; moves the watches of those that
    /// name another directory now, renews the watches events said may be lost, and
    /// tells the registrations concerned, in order.
    fn resolve(&self) {
        let _one_at_a_time = self.resolving.lock();
        self.resolve_asked
            .store(false, std::sync::atomic::Ordering::SeqCst);
        // The file system is asked with no lock held: a slow mount stalls this look,
        // not every registration in the process.
        let (configured, suspects): (Vec<PathBuf>, Vec<PathBuf>) = {
            let backends = self.backends.lock();
            let mut configured: Vec<PathBuf> = backends
                .entries
                .values()
                .map(|e| e.configured.clone())
                .collect();
            configured.sort();
            configured.dedup();
            (configured, std::mem::take(&mut *self.suspects.lock()))
        };
        let resolved: HashMap<PathBuf, Option<(PathBuf, DirId)>> = configured
            .into_iter()
            .map(|c| {
                let now = canonical_dir(&c)
                    .ok()
                    .and_then(|dir| dir_id(&dir).map(|i| (dir, i)));
                (c, now)
            })
            .collect();
        let mut told = Vec::new();
        {
            let mut backends = self.backends.lock();
            // notify may have dropped these watches (it forgets a watch by path when
            // it sees the directory move): watch them afresh.
            for dir in suspects {
                if let Some(&(_, identity)) = backends.watched.get(&dir) {
                    stop_watch(&mut backends, &dir);
                    if let Some(identity) = identity.filter(|&i| dir_id(&dir) == Some(i)) {
                        let _ = ensure_watched(&mut backends, &dir, identity);
                    }
                }
            }
            let ids: Vec<u64> = backends.entries.keys().copied().collect();
            for id in ids {
                let entry = &backends.entries[&id];
                // Registered after the snapshot: looked at next time.
                let Some(now) = resolved.get(&entry.configured).cloned() else {
                    continue;
                };
                let retry = now == entry.wanted && entry.current != entry.wanted;
                if now == entry.wanted && !retry {
                    continue;
                }
                let (from, name, sink) = (
                    entry.current.clone(),
                    entry.name.clone(),
                    entry.sink.clone(),
                );
                if let Some((old, _)) = &from {
                    self.detach(&mut backends, old, id);
                }
                let mut current = None;
                let mut kind = None;
                if let Some((dir, identity)) = &now {
                    match ensure_watched(&mut backends, dir, *identity) {
                        Ok((k, _)) => {
                            self.add_route(dir, id, name, sink.clone());
                            kind = Some(k);
                            current = now.clone();
                        }
                        // Tried again at every look; reported once, below.
                        Err(e) if !retry => {
                            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the directory a configured path now names")
                        }
                        Err(_) => {}
                    }
                }
                let entry = backends.entries.get_mut(&id).expect("listed above");
                entry.wanted = now;
                entry.current = current.clone();
                if retry && current.is_none() {
                    continue;
                }
                told.push((
                    sink,
                    Signal::Moved {
                        from: from.map(|(d, _)| d),
                        to: current.map(|(d, _)| d),
                        kind,
                    },
                ));
            }
        }
        for (sink, signal) in told {
            sink(signal);
        }
    }

    /// Asks for a resolve soon (an event said a watched directory moved); asks made
    /// before it starts are one.
    fn ask_resolve(&self, dir: PathBuf) {
        self.suspects.lock().push(dir);
        if !self
            .resolve_asked
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            crate::pool::spawn(|| watchers().resolve());
        }
    }
}

/// Watches `dir` (the directory `identity`) unless it is already: a watch on this
/// path made for another directory (renamed away, another made at the path) is
/// renewed. Which watcher serves it, and why not the native one if not.
fn ensure_watched(
    backends: &mut Backends,
    dir: &Path,
    identity: DirId,
) -> Result<(WatcherKind, Option<String>), String> {
    if let Some(&(kind, seen)) = backends.watched.get(dir) {
        if seen == Some(identity) {
            let fallback = (kind == WatcherKind::Polling)
                .then(|| backends.why_polling())
                .flatten();
            return Ok((kind, fallback));
        }
        stop_watch(backends, dir);
    }
    let mut fallback = None;
    let kind = match backends.native() {
        Ok(native) => match native.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => WatcherKind::Native,
            Err(e) => {
                fallback = Some(format!("the native watcher refused the directory: {e}"));
                WatcherKind::Polling
            }
        },
        Err(why) => {
            fallback = Some(why);
            WatcherKind::Polling
        }
    };
    if kind == WatcherKind::Polling {
        crate::poll::add(dir, deliver)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    }
    backends
        .watched
        .insert(dir.to_path_buf(), (kind, Some(identity)));
    Ok((kind, fallback))
}

/// Stops watching `dir` (whatever its routes).
fn stop_watch(backends: &mut Backends, dir: &Path) {
    let result = match backends.watched.remove(dir) {
        Some((WatcherKind::Native, _)) => match &mut backends.native {
            Some(Ok(native)) => native.unwatch(dir),
            _ => Ok(()),
        },
        Some((WatcherKind::Polling, _)) => {
            crate::poll::remove(dir);
            Ok(())
        }
        None => Ok(()),
    };
    if let Err(e) = result {
        // The directory may be gone already, which ends its watch anyway.
        tracing::debug!(dir = %dir.display(), error = %e, "unwatching a directory failed");
    }
}

/// The resolver's timer: resolve, then again one interval later while anything is
/// registered.
fn resolve_and_again() {
    let watchers = watchers();
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| watchers.resolve())).is_err() {
        tracing::error!("resolving the watched directories panicked; carrying on");
    }
    let mut backends = watchers.backends.lock();
    if backends.entries.is_empty() {
        backends.resolving = false;
    } else {
        crate::pool::after(RESOLVE_INTERVAL, resolve_and_again);
    }
}

impl Backends {
    fn native(&mut self) -> Result<&mut notify::RecommendedWatcher, String> {
        let native = self.native.get_or_insert_with(|| {
            if std::env::var_os("FIDIUS_HOTRELOAD_POLL").is_some() {
                return Err("FIDIUS_HOTRELOAD_POLL is set".into());
            }
            notify::recommended_watcher(route).map_err(|e| {
                let why = format!("the native file watcher is unavailable: {e}");
                tracing::warn!(reason = %why, "hot reloading falls back to polling");
                why
            })
        });
        native.as_mut().map_err(|why| why.clone())
    }

    fn why_polling(&self) -> Option<String> {
        match &self.native {
            Some(Err(why)) => Some(why.clone()),
            _ => None,
        }
    }
}

/// Called by the watchers for every event: passes content changes on to the
/// registrations of the event's directory and file name.
fn route(result: notify::Result<notify::Event>) {
    let event = match result {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(error = %e, "the file watcher reported an error; looking at everything again");
            return rescan_all();
        }
    };
    if event.need_rescan() {
        return rescan_all();
    }
    if !changes_content(&event.kind) {
        return;
    }
    for path in event.paths {
        // The watched directory itself removed or renamed: resolve now, not at the
        // next interval.
        if watchers().routes.read().contains_key(&path) {
            watchers().ask_resolve(path);
            continue;
        }
        deliver(path);
    }
}

/// Passes a change to `path` on to the registrations of its directory and name.
fn deliver(path: PathBuf) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let sinks: Vec<Sink> = {
        let routes = watchers().routes.read();
        let Some(routes) = routes.get(dir) else {
            return;
        };
        let named = routes.by_name.get(name).into_iter().flatten();
        routes
            .every
            .iter()
            .chain(named)
            .map(|(_, s)| s.clone())
            .collect()
    };
    for sink in sinks {
        sink(Signal::Changed(path.clone()));
    }
}

fn rescan_all() {
    let sinks: Vec<Sink> = watchers()
        .routes
        .read()
        .values()
        .flat_map(|r| r.all().cloned())
        .collect();
    for sink in sinks {
        sink(Signal::Rescan);
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

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};
    use std::time::Duration;

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

    #[test]
    fn registrations_share_one_watch_and_get_only_their_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = canonical_dir(tmp.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = |tag: &'static str| -> Sink {
            let tx = std::sync::Mutex::new(tx.clone());
            Arc::new(move |s: Signal| {
                if let Signal::Changed(p) = s {
                    let _ = tx.lock().unwrap().send((tag, p));
                }
            })
        };
        let a = watch(&dir, Some("a".into()), sink("a")).unwrap();
        let every = watch(&dir, None, sink("every")).unwrap();
        assert_eq!(a.kind, every.kind);
        let seen_for = |quiet: Duration| -> Vec<(&'static str, PathBuf)> {
            std::iter::from_fn(|| rx.recv_timeout(quiet).ok()).collect()
        };
        std::fs::write(dir.join("b"), b"b").unwrap();
        let seen = seen_for(Duration::from_millis(1500));
        assert!(seen.contains(&("every", dir.join("b"))), "{seen:?}");
        assert!(seen.iter().all(|(tag, _)| *tag == "every"), "{seen:?}");
        drop(every);
        std::fs::write(dir.join("a"), b"a").unwrap();
        let seen = seen_for(Duration::from_millis(1500));
        assert!(seen.contains(&("a", dir.join("a"))), "{seen:?}");
        assert!(seen.iter().all(|(tag, _)| *tag == "a"), "{seen:?}");
        drop(a);
    }
}
