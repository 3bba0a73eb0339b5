//! [`HotMetrics`]: counters a host exports to its own metrics system, read at any time
//! without parsing events.

use crate::events::ReloadEvent;
use crate::unload::UnloadState;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one hot plugin, or of every plugin that shares them (all the plugins of
/// a [`HotDirectory`](crate::HotDirectory) do; so do hot plugins given the same value
/// through [`HotPluginBuilder::metrics`](crate::HotPluginBuilder::metrics)).
///
/// Counters only grow; `draining` and `pinned` are gauges of versions now. Each is a
/// relaxed atomic: a snapshot of several may be taken between two updates of
/// related ones.
///
/// ```no_run
/// # mod my_interface {
/// #     #[fidius::plugin_interface(version = 1)]
/// #     pub trait MyPlugin: Send + Sync { fn process(&self, input: String) -> String; }
/// # }
/// use fidius_hotreload::HotPlugin;
/// use my_interface::MyPlugin;
///
/// let hot = HotPlugin::builder::<dyn MyPlugin>("plugins/libmy_plugin.so", "MyImpl").build()?;
/// let metrics = hot.metrics();
/// // Later, from the host's metrics exporter:
/// let now = metrics.snapshot();
/// println!("reloads {} rejections {} draining {}", now.reloads, now.rejections, now.draining);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct HotMetrics {
    reloads: AtomicU64,
    rejections: AtomicU64,
    retries: AtomicU64,
    rollbacks: AtomicU64,
    probations_passed: AtomicU64,
    unloaded: AtomicU64,
    stranded: AtomicU64,
    draining: AtomicU64,
    pinned: AtomicU64,
}

/// The values of [`HotMetrics`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// New versions swapped in (the first load not counted).
    pub reloads: u64,
    /// New builds refused, at any stage.
    pub rejections: u64,
    /// Failed load attempts that were tried again.
    pub retries: u64,
    /// Versions rolled back after failing their probation (or on command).
    pub rollbacks: u64,
    /// Versions that passed their probation.
    pub probations_passed: u64,
    /// Old versions closed (whether or not they left memory).
    pub unloaded: u64,
    /// Old versions stranded (see [`ReloadEvent::Stranded`]).
    pub stranded: u64,
    /// Old versions still in use now.
    pub draining: u64,
    /// Old versions closed but still mapped (memory that stays until the process
    /// exits).
    pub pinned: u64,
}

impl HotMetrics {
    /// All the values now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            reloads: get(&self.reloads),
            rejections: get(&self.rejections),
            retries: get(&self.retries),
            rollbacks: get(&self.rollbacks),
            probations_passed: get(&self.probations_passed),
            unloaded: get(&self.unloaded),
            stranded: get(&self.stranded),
            draining: get(&self.draining),
            pinned: get(&self.pinned),
        }
    }

    /// Counts what `event` tells.
    pub(crate) fn count(&self, event: &ReloadEvent) {
        let add = |a: &AtomicU64| {
            a.fetch_add(1, Ordering::Relaxed);
        };
        match event {
            ReloadEvent::Swapped { .. } => add(&self.reloads),
            ReloadEvent::Rejected(_) => add(&self.rejections),
            ReloadEvent::Retrying { .. } => add(&self.retries),
            ReloadEvent::RolledBack { .. } => add(&self.rollbacks),
            ReloadEvent::ProbationPassed { .. } => add(&self.probations_passed),
            ReloadEvent::Unloaded { state, .. } => {
                add(&self.unloaded);
                if *state == UnloadState::Pinned {
                    add(&self.pinned);
                }
            }
            ReloadEvent::Stranded { .. } => add(&self.stranded),
            _ => {}
        }
    }

    /// A build refused that no plugin's events report (a plugin's first build, a
    /// library new to a directory).
    pub(crate) fn rejected(&self) {
        self.rejections.fetch_add(1, Ordering::Relaxed);
    }

    /// A failed attempt at a new library, tried again.
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` more old versions are draining (negative: fewer).
    pub(crate) fn draining(&self, n: i64) {
        if n >= 0 {
            self.draining.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            self.draining.fetch_sub(n.unsigned_abs(), Ordering::Relaxed);
        }
    }
}
