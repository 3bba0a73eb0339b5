//! What [`HotPlugin::status`](crate::HotPlugin::status) shows.

use crate::events::VersionInfo;
use crate::watcher::WatcherKind;
use std::path::PathBuf;
use std::time::SystemTime;

/// A version still draining, as seen by [`HotPlugin::status`](crate::HotPlugin::status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainingVersion {
    /// Its generation.
    pub generation: u64,
    /// References still holding it (in-flight calls and anything kept from them).
    pub in_flight: usize,
}

/// The process an isolated version runs in (see
/// [`HotPluginBuilder::isolated`](crate::HotPluginBuilder)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionProcess {
    /// The running process's id; `None` while it is being restarted.
    pub pid: Option<u32>,
    /// Times it was restarted (after a crash, or a call past its deadline).
    pub restarts: u64,
}

/// A snapshot of a hot-reloading plugin.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HotStatus {
    /// The plugin's name.
    pub plugin: String,
    /// The watched file (its directory made canonical).
    pub source: PathBuf,
    /// The current version.
    pub current: VersionInfo,
    /// When the current version was loaded.
    pub loaded_at: SystemTime,
    /// Old versions still in use.
    pub draining: Vec<DrainingVersion>,
    /// Old versions closed but still mapped (see [`UnloadState::Pinned`](crate::UnloadState::Pinned)).
    pub pinned: Vec<u64>,
    /// Versions swapped in since the start (the first load not counted).
    pub reloads: u64,
    /// Builds refused since the start.
    pub rejections: u64,
    /// The watcher's reloads are paused ([`HotPlugin::pause`](crate::HotPlugin::pause)):
    /// file changes wait for `resume`. Always `false` when the file is not watched.
    pub paused: bool,
    /// The file is watched at all.
    pub watching: bool,
    /// Which watcher reports the file's changes: the native one, or polling where
    /// that could not be had. `None` when the file is not watched.
    pub watcher: Option<WatcherKind>,
    /// The process the current version runs in, when it runs isolated; `None` when
    /// it runs in this process.
    pub process: Option<VersionProcess>,
    /// The probation under way, if any.
    pub probation: Option<crate::ProbationStatus>,
    /// Builds that failed their probation, not loaded again while the file holds them.
    pub quarantined: Vec<crate::Quarantined>,
}
