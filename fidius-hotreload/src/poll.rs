//! The watcher's fallback: polling.
//!
//! Every [`POLL_INTERVAL`], each polled directory is listed and every entry's size,
//! modification time (to the nanosecond) and identity (device and inode) compared
//! with the last look; each difference is delivered like a native event. notify has
//! a polling watcher, but it compares modification times in whole seconds only, so a
//! rebuild within the same second as the one before would go unseen. The looks are
//! timer jobs on the shared pool (`pool.rs`): polling takes no thread of its own.

use crate::pool;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// How often a polled directory is looked at.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What identifies one state of a directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// Device and inode (Unix): a file renamed over another is another file.
    id: (u64, u64),
}

type Listing = HashMap<OsString, Stamp>;

/// The polled directories and what each held at the last look.
static DIRS: Mutex<Option<HashMap<PathBuf, Listing>>> = Mutex::new(None);
/// Where changes go (the watcher's routing); set by the first `add`.
static DELIVER: std::sync::OnceLock<fn(PathBuf)> = std::sync::OnceLock::new();
/// A look is scheduled.
static TICKING: AtomicBool = AtomicBool::new(false);

fn list(dir: &Path) -> std::io::Result<Listing> {
    let mut listing = Listing::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        // Through links, as the pipeline reads them; a link that cannot be followed
        // (a loop, a dangling link) by the link itself, so that replacing it is seen.
        let Ok(meta) = std::fs::metadata(entry.path()).or_else(|_| entry.metadata()) else {
            continue;
        };
        #[cfg(unix)]
        let id = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let id = (0, 0);
        let stamp = Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            id,
        };
        listing.insert(entry.file_name(), stamp);
    }
    Ok(listing)
}

/// Starts polling `dir`; what is there now is the baseline. Changes go to `deliver`.
pub(crate) fn add(dir: &Path, deliver: fn(PathBuf)) -> std::io::Result<()> {
    DELIVER.get_or_init(|| deliver);
    let listing = list(dir)?;
    DIRS.lock()
        .get_or_insert_with(HashMap::new)
        .insert(dir.to_path_buf(), listing);
    if !TICKING.swap(true, Ordering::SeqCst) {
        pool::after(POLL_INTERVAL, tick);
    }
    Ok(())
}

/// Stops polling `dir`.
pub(crate) fn remove(dir: &Path) {
    if let Some(dirs) = DIRS.lock().as_mut() {
        dirs.remove(dir);
    }
}

fn polling() -> bool {
    DIRS.lock().as_ref().is_some_and(|d| !d.is_empty())
}

/// One look at every polled directory, then the next one scheduled.
fn tick() {
    // Whatever happens in a look, the ticking must go on (or stop cleanly).
    if std::panic::catch_unwind(look).is_err() {
        tracing::error!("looking at the polled directories panicked; polling goes on");
    }
    if polling() {
        return pool::after(POLL_INTERVAL, tick);
    }
    TICKING.store(false, Ordering::SeqCst);
    // A directory added between the look above and the store found the flag still
    // set and left the ticking to us.
    if polling() && !TICKING.swap(true, Ordering::SeqCst) {
        pool::after(POLL_INTERVAL, tick);
    }
}

fn look() {
    let deliver = DELIVER.get().copied().unwrap_or(|_| {});
    let dirs: Vec<PathBuf> = DIRS
        .lock()
        .as_ref()
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default();
    for dir in dirs {
        // A directory that cannot be listed any more has lost its entries.
        let now = list(&dir).unwrap_or_default();
        let changed: Vec<PathBuf> = {
            let mut all = DIRS.lock();
            let Some(before) = all.as_mut().and_then(|d| d.get_mut(&dir)) else {
                continue;
            };
            let changed = now
                .iter()
                .filter(|(name, stamp)| before.get(*name) != Some(stamp))
                .map(|(name, _)| dir.join(name))
                .chain(
                    before
                        .keys()
                        .filter(|name| !now.contains_key(*name))
                        .map(|name| dir.join(name)),
                )
                .collect();
            *before = now;
            changed
        };
        for path in changed {
            deliver(path);
        }
    }
}
