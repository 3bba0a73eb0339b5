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
//! Every directory given here is canonical (see [`canonical_dir`]), so the paths in
//! events compare equal to the paths the plugins were registered with.

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

/// What a registration is told.
#[derive(Debug)]
pub(crate) enum Signal {
    /// Something happened to this path that may have changed its content.
    Changed(PathBuf),
    /// Events were lost: look at everything again.
    Rescan,
}

/// Receives the signals of one registration. Called on the watcher's thread: it must
/// be quick and must not register or unregister.
pub(crate) type Sink = Arc<dyn Fn(Signal) + Send + Sync>;

/// A live registration; dropping it stops the signals (and the watch on the
/// directory, when it was the last registration there).
pub(crate) struct Registration {
    dir: PathBuf,
    id: u64,
    /// Which watcher serves it.
    pub kind: WatcherKind,
    /// Why it is not the native watcher, if it is not.
    pub fallback: Option<String>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        watchers().unregister(&self.dir, self.id);
    }
}

/// Registers `sink` for changes in the canonical directory `dir`: to the file `name`
/// only, or to every entry when `name` is `None`.
pub(crate) fn watch(
    dir: &Path,
    name: Option<OsString>,
    sink: Sink,
) -> Result<Registration, String> {
    watchers().register(dir, name, sink)
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

/// `file` with its directory made canonical (the file itself may be missing or a
/// link; its name is kept).
pub(crate) fn canonical_file(file: &Path) -> std::io::Result<PathBuf> {
    let name = file.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} does not name a file", file.display()),
        )
    })?;
    Ok(canonical_dir(file.parent().unwrap_or(Path::new("")))?.join(name))
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
    /// Which watcher watches each directory.
    watched: HashMap<PathBuf, WatcherKind>,
    next_id: u64,
}

fn watchers() -> &'static Watchers {
    static WATCHERS: OnceLock<Watchers> = OnceLock::new();
    WATCHERS.get_or_init(|| Watchers {
        routes: RwLock::new(HashMap::new()),
        backends: Mutex::new(Backends::default()),
    })
}

impl Watchers {
    fn register(
        &self,
        dir: &Path,
        name: Option<OsString>,
        sink: Sink,
    ) -> Result<Registration, String> {
        let mut backends = self.backends.lock();
        let id = backends.next_id;
        backends.next_id += 1;
        let mut fallback = None;
        let kind = match backends.watched.get(dir) {
            Some(&kind) => kind,
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
                backends.watched.insert(dir.to_path_buf(), kind);
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
        Ok(Registration {
            dir: dir.to_path_buf(),
            id,
            kind,
            fallback,
        })
    }

    fn unregister(&self, dir: &Path, id: u64) {
        let mut backends = self.backends.lock();
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
            let result = match backends.watched.remove(dir) {
                Some(WatcherKind::Native) => match &mut backends.native {
                    Some(Ok(native)) => native.unwatch(dir),
                    _ => Ok(()),
                },
                Some(WatcherKind::Polling) => {
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
