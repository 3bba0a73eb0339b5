//! One line for a log: the `Display` of events, versions and status.
//!
//! Generations are written `g3`, content hashes in hex, durations in milliseconds,
//! and paths as the user configured them. Each line reads on its own, without the
//! event's type name: `swapped in g2 (xxh3 0x…, interface v1), replacing g1`.

use crate::directory::DirectoryEvent;
use crate::events::{Cause, ReloadEvent, ReloadOutcome, VersionInfo};
use crate::status::HotStatus;
use crate::unload::UnloadState;
use std::fmt::{self, Display, Formatter};
use std::path::{Path, PathBuf};
use std::time::Duration;

impl Display for VersionInfo {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "g{} (xxh3 {:#018x}, interface v{})",
            self.generation, self.content_hash, self.interface_version
        )
    }
}

impl Display for ReloadOutcome {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ReloadOutcome::Swapped { from, to } => write!(f, "swapped in g{to}, replacing g{from}"),
            ReloadOutcome::Unchanged { generation } => {
                write!(f, "content unchanged, g{generation} serves on")
            }
        }
    }
}

impl Display for UnloadState {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnloadState::Unmapped => "unmapped",
            UnloadState::Pinned => "pinned in memory until the process exits",
            UnloadState::Unknown => "closed (this platform cannot tell whether it left memory)",
            UnloadState::Exited => "its process exited",
        })
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn or_nothing(path: &Option<PathBuf>) -> String {
    path.as_deref()
        .map_or_else(|| "nothing".to_string(), |p| p.display().to_string())
}

fn retargeted(
    f: &mut Formatter<'_>,
    dir: &Path,
    from: &Option<PathBuf>,
    to: &Option<PathBuf>,
) -> fmt::Result {
    write!(
        f,
        "{} now names {} (it named {})",
        dir.display(),
        or_nothing(to),
        or_nothing(from)
    )
}

fn list(names: &[String]) -> String {
    format!("[{}]", names.join(", "))
}

impl Display for ReloadEvent {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ReloadEvent::Detected { path, cause } => match cause {
                Cause::Changed => write!(f, "{}: changed, reloading", path.display()),
                Cause::Asked => write!(f, "{}: reload asked for", path.display()),
                Cause::Start => write!(f, "{}: loading the first version", path.display()),
            },
            ReloadEvent::StartedFromLastGood {
                path,
                last_good,
                rejection,
            } => write!(
                f,
                "{} was refused at start ({}: {}); serving the last good build, {}",
                path.display(),
                rejection.stage,
                rejection.reason,
                last_good.display()
            ),
            ReloadEvent::WaitingForHold { path } => {
                write!(f, "{}: a reload waits for a hold to end", path.display())
            }
            ReloadEvent::Unchanged { path, generation } => write!(
                f,
                "{}: content unchanged, g{generation} serves on",
                path.display()
            ),
            ReloadEvent::Loaded(v) => write!(f, "loaded {v}"),
            ReloadEvent::Rejected(r) => write!(f, "{r}"),
            ReloadEvent::Retrying {
                attempt,
                left,
                failure,
            } => write!(f, "attempt {attempt} failed, {left} left: {failure}"),
            ReloadEvent::Swapped { from, to } => {
                write!(f, "swapped in {to}, replacing g{}", from.generation)
            }
            ReloadEvent::Draining {
                generation,
                in_flight,
            } => write!(
                f,
                "g{generation} draining: {in_flight} reference(s) in flight"
            ),
            ReloadEvent::Unloaded { generation, state } => {
                write!(f, "g{generation} unloaded: {state}")
            }
            ReloadEvent::Stranded { generation } => write!(
                f,
                "g{generation} stranded: membarrier stopped working, so it stays loaded until \
                 the plugin is dropped"
            ),
            #[cfg(all(feature = "isolated", target_os = "linux"))]
            ReloadEvent::Process { generation, event } => {
                use fidius_isolated::IsolatedEvent;
                match event {
                    IsolatedEvent::Started { pid, restarts } => write!(
                        f,
                        "g{generation}: process {pid} started ({restarts} restart(s))"
                    ),
                    IsolatedEvent::Ended { pid, end } => {
                        write!(f, "g{generation}: process {pid} ended: {end}")
                    }
                    IsolatedEvent::StartFailed { reason, retry_in } => write!(
                        f,
                        "g{generation}: starting a process failed, again in {}: {reason}",
                        ms(*retry_in)
                    ),
                    other => write!(f, "g{generation}: {other:?}"),
                }
            }
            ReloadEvent::StateHandedOver {
                from,
                to,
                bytes,
                layout,
                drained,
                paused,
            } => write!(
                f,
                "state handed over from g{from} to g{to}: {bytes} bytes (layout {layout}), \
                 drained in {}, calls held {}",
                ms(*drained),
                ms(*paused)
            ),
            ReloadEvent::ProbationPassed { generation } => {
                write!(f, "g{generation} passed its probation")
            }
            ReloadEvent::RolledBack {
                from,
                to,
                reason,
                calls,
                failures,
                after,
            } => write!(
                f,
                "rolled back from g{from} to g{to} after {}: {reason} ({failures} failure(s) \
                 in {calls} call(s))",
                ms(*after)
            ),
            ReloadEvent::Removed { path } => write!(
                f,
                "{}: removed; the current version serves on",
                path.display()
            ),
            ReloadEvent::Retargeted {
                directory,
                from,
                to,
            } => retargeted(f, directory, from, to),
            ReloadEvent::PinnedLimit {
                pinned,
                limit,
                refusing,
            } => write!(
                f,
                "{pinned} old version(s) pinned in memory (limit {limit}); new builds are {}",
                if *refusing { "refused" } else { "still loaded" }
            ),
            ReloadEvent::WatcherFallback { directory, reason } => write!(
                f,
                "{}: polled, the native watcher is unavailable: {reason}",
                directory.display()
            ),
        }
    }
}

impl Display for DirectoryEvent {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            DirectoryEvent::Added { path, plugins } => {
                write!(f, "added {}: {}", path.display(), list(plugins))
            }
            DirectoryEvent::Plugin { plugin, event } => write!(f, "{plugin}: {event}"),
            DirectoryEvent::Removed {
                path,
                plugins,
                unloaded,
            } => write!(
                f,
                "removed {}: {} {}",
                path.display(),
                list(plugins),
                if *unloaded { "forgotten" } else { "serve on" }
            ),
            DirectoryEvent::Rejected(r) => write!(f, "{r}"),
            DirectoryEvent::Retrying {
                attempt,
                left,
                failure,
            } => write!(f, "attempt {attempt} failed, {left} left: {failure}"),
            DirectoryEvent::Duplicate {
                plugin,
                serving,
                shadowed,
            } => {
                let shadowed: Vec<String> =
                    shadowed.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "{plugin} is offered twice: {} serves it, {} not",
                    serving.display(),
                    list(&shadowed)
                )
            }
            DirectoryEvent::Retargeted {
                directory,
                from,
                to,
            } => retargeted(f, directory, from, to),
            DirectoryEvent::WatcherFallback { directory, reason } => write!(
                f,
                "{}: polled, the native watcher is unavailable: {reason}",
                directory.display()
            ),
        }
    }
}

impl Display for HotStatus {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} from {}: serving {}",
            self.plugin,
            self.source.display(),
            self.current
        )?;
        if let Some(process) = &self.process {
            match process.pid {
                Some(pid) => write!(f, " in process {pid}")?,
                None => f.write_str(" (its process is restarting)")?,
            }
        }
        if let Some(p) = &self.probation {
            write!(f, ", on probation against g{}", p.previous)?;
        }
        if !self.draining.is_empty() {
            let draining: Vec<String> = self
                .draining
                .iter()
                .map(|d| format!("g{} ({} in flight)", d.generation, d.in_flight))
                .collect();
            write!(f, ", draining {}", list(&draining))?;
        }
        if !self.pinned.is_empty() {
            let pinned: Vec<String> = self.pinned.iter().map(|g| format!("g{g}")).collect();
            write!(f, ", pinned {}", list(&pinned))?;
        }
        if !self.quarantined.is_empty() {
            write!(f, ", {} quarantined build(s)", self.quarantined.len())?;
        }
        write!(
            f,
            "; {} reload(s), {} rejection(s); ",
            self.reloads, self.rejections
        )?;
        match (&self.watcher, self.watching) {
            (Some(kind), true) => write!(f, "watched ({kind})")?,
            (_, true) => f.write_str("watched")?,
            (_, false) => f.write_str("not watched")?,
        }
        if self.paused {
            f.write_str(", paused")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Rejection, Stage};
    use crate::status::DrainingVersion;
    use crate::watcher::WatcherKind;
    use std::time::SystemTime;

    fn version(generation: u64) -> VersionInfo {
        VersionInfo {
            generation,
            content_hash: 0x0123_4567_89ab_cdef,
            interface_version: 1,
            shadow: PathBuf::from("/memfd:fidius:libhot.so"),
        }
    }

    fn rejection() -> Rejection {
        Rejection::new(
            Path::new("plugins/libhot.so"),
            Stage::Validate,
            "plugin `Hot` not found".into(),
            None,
        )
    }

    /// Every event, one line each, as a log shows it.
    #[test]
    fn every_event_reads_as_one_line() {
        let path = PathBuf::from("plugins/libhot.so");
        let ms = Duration::from_micros(1500);
        let cases: Vec<(ReloadEvent, &str)> = vec![
            (
                ReloadEvent::Detected { path: path.clone(), cause: Cause::Changed },
                "plugins/libhot.so: changed, reloading",
            ),
            (
                ReloadEvent::Detected { path: path.clone(), cause: Cause::Asked },
                "plugins/libhot.so: reload asked for",
            ),
            (
                ReloadEvent::Detected { path: path.clone(), cause: Cause::Start },
                "plugins/libhot.so: loading the first version",
            ),
            (
                ReloadEvent::Unchanged { path: path.clone(), generation: 2 },
                "plugins/libhot.so: content unchanged, g2 serves on",
            ),
            (
                ReloadEvent::StartedFromLastGood {
                    path: path.clone(),
                    last_good: "/var/lib/app/good/libhot.Hot.0011223344556677.so".into(),
                    rejection: rejection(),
                },
                "plugins/libhot.so was refused at start (validate: plugin `Hot` not found); \
                 serving the last good build, /var/lib/app/good/libhot.Hot.0011223344556677.so",
            ),
            (
                ReloadEvent::WaitingForHold { path: path.clone() },
                "plugins/libhot.so: a reload waits for a hold to end",
            ),
            (ReloadEvent::Loaded(version(3)), "loaded g3 (xxh3 0x0123456789abcdef, interface v1)"),
            (
                ReloadEvent::Rejected(rejection()),
                "rejected plugins/libhot.so at the validate stage: plugin `Hot` not found",
            ),
            (
                ReloadEvent::Retrying { attempt: 1, left: 2, failure: rejection() },
                "attempt 1 failed, 2 left: rejected plugins/libhot.so at the validate stage: plugin `Hot` not found",
            ),
            (
                ReloadEvent::Swapped { from: version(2), to: version(3) },
                "swapped in g3 (xxh3 0x0123456789abcdef, interface v1), replacing g2",
            ),
            (
                ReloadEvent::Draining { generation: 2, in_flight: 4 },
                "g2 draining: 4 reference(s) in flight",
            ),
            (
                ReloadEvent::Unloaded { generation: 2, state: UnloadState::Unmapped },
                "g2 unloaded: unmapped",
            ),
            (
                ReloadEvent::Unloaded { generation: 2, state: UnloadState::Pinned },
                "g2 unloaded: pinned in memory until the process exits",
            ),
            (
                ReloadEvent::Stranded { generation: 5 },
                "g5 stranded: membarrier stopped working, so it stays loaded until the plugin is dropped",
            ),
            (
                ReloadEvent::StateHandedOver { from: 2, to: 3, bytes: 120, layout: 1, drained: ms, paused: ms },
                "state handed over from g2 to g3: 120 bytes (layout 1), drained in 1.5 ms, calls held 1.5 ms",
            ),
            (ReloadEvent::ProbationPassed { generation: 3 }, "g3 passed its probation"),
            (
                ReloadEvent::RolledBack {
                    from: 3,
                    to: 2,
                    reason: "3 of 10 calls failed".into(),
                    calls: 10,
                    failures: 3,
                    after: ms,
                },
                "rolled back from g3 to g2 after 1.5 ms: 3 of 10 calls failed (3 failure(s) in 10 call(s))",
            ),
            (
                ReloadEvent::Removed { path: path.clone() },
                "plugins/libhot.so: removed; the current version serves on",
            ),
            (
                ReloadEvent::Retargeted {
                    directory: "plugins".into(),
                    from: Some("/srv/a".into()),
                    to: None,
                },
                "plugins now names nothing (it named /srv/a)",
            ),
            (
                ReloadEvent::PinnedLimit { pinned: 8, limit: 8, refusing: true },
                "8 old version(s) pinned in memory (limit 8); new builds are refused",
            ),
            (
                ReloadEvent::WatcherFallback { directory: "plugins".into(), reason: "no inotify".into() },
                "plugins: polled, the native watcher is unavailable: no inotify",
            ),
        ];
        for (event, expected) in cases {
            let line = event.to_string();
            assert_eq!(line, expected, "{event:?}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn every_directory_event_reads_as_one_line() {
        let cases: Vec<(DirectoryEvent, &str)> = vec![
            (
                DirectoryEvent::Added { path: "plugins/liba.so".into(), plugins: vec!["A".into(), "B".into()] },
                "added plugins/liba.so: [A, B]",
            ),
            (
                DirectoryEvent::Plugin { plugin: "A".into(), event: ReloadEvent::ProbationPassed { generation: 2 } },
                "A: g2 passed its probation",
            ),
            (
                DirectoryEvent::Removed { path: "plugins/liba.so".into(), plugins: vec!["A".into()], unloaded: false },
                "removed plugins/liba.so: [A] serve on",
            ),
            (
                DirectoryEvent::Rejected(rejection()),
                "rejected plugins/libhot.so at the validate stage: plugin `Hot` not found",
            ),
            (
                DirectoryEvent::Retrying { attempt: 2, left: 0, failure: rejection() },
                "attempt 2 failed, 0 left: rejected plugins/libhot.so at the validate stage: plugin `Hot` not found",
            ),
            (
                DirectoryEvent::Duplicate {
                    plugin: "A".into(),
                    serving: "plugins/liba.so".into(),
                    shadowed: vec!["plugins/libb.so".into()],
                },
                "A is offered twice: plugins/liba.so serves it, [plugins/libb.so] not",
            ),
            (
                DirectoryEvent::Retargeted { directory: "plugins".into(), from: None, to: Some("/srv/b".into()) },
                "plugins now names /srv/b (it named nothing)",
            ),
            (
                DirectoryEvent::WatcherFallback { directory: "plugins".into(), reason: "limit".into() },
                "plugins: polled, the native watcher is unavailable: limit",
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(event.to_string(), expected, "{event:?}");
        }
    }

    #[test]
    fn outcomes_read_as_one_line() {
        assert_eq!(
            ReloadOutcome::Swapped { from: 1, to: 2 }.to_string(),
            "swapped in g2, replacing g1"
        );
        assert_eq!(
            ReloadOutcome::Unchanged { generation: 3 }.to_string(),
            "content unchanged, g3 serves on"
        );
    }

    #[test]
    fn status_reads_as_one_line() {
        let status = HotStatus {
            plugin: "Hot".into(),
            source: "/srv/plugins/libhot.so".into(),
            current: version(3),
            loaded_at: SystemTime::UNIX_EPOCH,
            draining: vec![DrainingVersion {
                generation: 2,
                in_flight: 1,
            }],
            pinned: vec![1],
            reloads: 2,
            rejections: 1,
            paused: true,
            watching: true,
            watcher: Some(WatcherKind::Native),
            process: None,
            probation: None,
            quarantined: Vec::new(),
        };
        assert_eq!(
            status.to_string(),
            "Hot from /srv/plugins/libhot.so: serving g3 (xxh3 0x0123456789abcdef, interface v1), \
             draining [g2 (1 in flight)], pinned [g1]; 2 reload(s), 1 rejection(s); watched (native), paused"
        );
    }
}
