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

/// Receives the signals of one registration. Called on the watcher's thread: it must
/// be quick and must not register or unregister.
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
}

#[derive(Default)]
struct Backends {
    /// `None` until first needed; then the watcher, or why there is none.
    native: Option<Result<notify::RecommendedWatcher, String>>,
    /// Every registration, by id.
    entries: HashMap<u64, Entry>,
    /// A resolve is scheduled.
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
    })
}

/// One registration.
struct Entry {
    /// The directory as configured (absolute).
    configured: PathBuf,
    /// The directory watched now (canonical) and its identity; `None` while the
    /// configured path resolves to nothing.
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
        let (kind, fallback) = self.attach(&mut backends, dir, id, name.clone(), sink.clone())?;
        let entry = Entry {
            configured: std::path::absolute(configured)
                .unwrap_or_else(|_| configured.to_path_buf()),
            current: dir_id(dir).map(|i| (dir.to_path_buf(), i)),
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

    /// Watches `dir` (if not yet) and routes its events for `id`.
    fn attach(
        &self,
        backends: &mut Backends,
        dir: &Path,
        id: u64,
        name: Option<OsString>,
        sink: Sink,
    ) -> Result<(WatcherKind, Option<String>), String> {
        let mut fallback = None;
        let identity = dir_id(dir);
        // A watch on this path made for a directory that is no longer there (renamed
        // away, and another made at the path) follows the old one: renew it.
        if let Some(&(_, seen)) = backends.watched.get(dir) {
            if seen != identity {
                stop_watch(backends, dir);
            }
        }
        let kind = match backends.watched.get(dir) {
            Some(&(kind, _)) => kind,
            None => {
                let kind = match backends.native() {
                    Ok(native) => match native.watch(dir, RecursiveMode::NonRecursive) {
                        Ok(()) => WatcherKind::Native,
                        Err(e) => {
                            fallback =
                                Some(format!("the native watcher refused the directory: {e}"));
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
                backends.watched.insert(dir.to_path_buf(), (kind, identity));
                kind
            }
        };
        if kind == WatcherKind::Polling && fallback.is_none() {
            fallback = backends.why_polling();
        }
        let mut routes = self.routes.write();
        let routes = routes.entry(dir.to_path_buf()).or_default();
        match name {
            Some(name) => routes.by_name.entry(name).or_default().push((id, sink)),
            None => routes.every.push((id, sink)),
        }
        Ok((kind, fallback))
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
    /// name another directory now, and tells their registrations.
    fn resolve(&self) {
        let mut told = Vec::new();
        {
            let mut backends = self.backends.lock();
            let ids: Vec<u64> = backends.entries.keys().copied().collect();
            // Each configured directory once, however many registrations share it.
            let mut resolved: HashMap<PathBuf, Option<(PathBuf, DirId)>> = HashMap::new();
            for id in ids {
                let entry = &backends.entries[&id];
                let now = resolved
                    .entry(entry.configured.clone())
                    .or_insert_with(|| {
                        canonical_dir(&entry.configured)
                            .ok()
                            .and_then(|dir| dir_id(&dir).map(|i| (dir, i)))
                    })
                    .clone();
                if now == entry.current {
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
                if let Some((dir, dir_id)) = now {
                    match self.attach(&mut backends, &dir, id, name, sink.clone()) {
                        Ok((k, _)) => {
                            kind = Some(k);
                            current = Some((dir, dir_id));
                        }
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the directory a configured path now names")
                        }
                    }
                }
                let to = current.as_ref().map(|(d, _)| d.clone());
                if let Some(entry) = backends.entries.get_mut(&id) {
                    entry.current = current;
                }
                told.push((
                    sink,
                    Signal::Moved {
                        from: from.map(|(d, _)| d),
                        to,
                        kind,
                    },
                ));
            }
        }
        for (sink, signal) in told {
            sink(signal);
        }
    }
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
            crate::pool::spawn(|| watchers().resolve());
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
