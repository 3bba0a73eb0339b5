//! `--tour`: the whole hot-reload cycle, run by the demo itself, with checks. Exits 0
//! only if everything held.
//!
//! It works on copies of the plugin libraries in a temporary directory, so the tour
//! never changes the workspace's own build output.

use crate::plugins::{self, Built};
use crate::service::Service;
use fidius_hotreload::{DirectoryEvent, ReloadEvent, UnloadState};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const TOUR_VERSION: &str = "1.1-tour";

fn step(n: usize, text: &str) {
    println!("\n[tour] {n}/6 {text}");
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        println!("[tour]   ok: {what}");
        Ok(())
    } else {
        Err(format!("tour check failed: {what}"))
    }
}

/// Renames `bytes` into place at `to`, as a deploy should.
fn deploy(bytes: &[u8], to: &Path) -> Result<(), String> {
    let staged = to.with_extension("staged");
    std::fs::write(&staged, bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&staged, to).map_err(|e| e.to_string())
}

/// Every event of the plugin the tour changes, kept so a later step can find an
/// earlier event.
struct EventLog {
    rx: Receiver<DirectoryEvent>,
    plugin: &'static str,
    seen: Vec<ReloadEvent>,
}

impl EventLog {
    /// The first event (seen before or arriving within `timeout`) that `want` accepts.
    fn wait(
        &mut self,
        timeout: Duration,
        want: impl Fn(&ReloadEvent) -> bool,
    ) -> Option<ReloadEvent> {
        if let Some(pos) = self.seen.iter().position(&want) {
            return Some(self.seen.remove(pos));
        }
        let deadline = Instant::now() + timeout;
        while let Ok(e) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let DirectoryEvent::Plugin { plugin, event } = e else {
                continue;
            };
            if plugin != self.plugin {
                continue;
            }
            if want(&event) {
                return Some(event);
            }
            self.seen.push(event);
        }
        None
    }
}

pub fn run(built: &Built, workers: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let plugin_dir = dir.path().join("plugins");
    std::fs::create_dir(&plugin_dir).map_err(|e| e.to_string())?;
    for (_, lib) in built.files() {
        let copy = plugin_dir.join(lib.file_name().unwrap());
        std::fs::copy(&lib, &copy).map_err(|e| format!("copying {}: {e}", lib.display()))?;
    }
    let watched = built.library("uppercase");
    let watched = plugin_dir.join(watched.file_name().unwrap());
    println!("[tour] plugin directory: {}", plugin_dir.display());
    let mut service = Service::start(&plugin_dir, &dir.path().join("shadow"), workers)?;
    let mut events = EventLog {
        rx: service.dir.subscribe(),
        plugin: "Uppercase",
        seen: Vec::new(),
    };
    let upper = service
        .client("Uppercase")
        .ok_or("the Uppercase plugin was not loaded")?;

    step(1, "serving under load");
    std::thread::sleep(Duration::from_millis(1500));
    println!("{}", service.counters_line());
    check(
        service.counters.requests.load(Ordering::Relaxed) > 0,
        "requests are being served",
    )?;

    step(
        2,
        &format!("rebuilding uppercase with a change (VERSION {TOUR_VERSION}, transform adds '!')"),
    );
    let (rebuilt, exclaims) = rebuild_edited(built)?;
    let bytes = std::fs::read(&rebuilt).map_err(|e| e.to_string())?;
    let seen_before = upper.lines_seen().map_err(|e| e.to_string())?;
    deploy(&bytes, &watched)?;
    let swapped = events.wait(Duration::from_secs(30), |e| {
        matches!(e, ReloadEvent::Swapped { .. })
    });
    check(swapped.is_some(), "the rebuilt plugin was swapped in")?;
    let described = upper.describe().map_err(|e| e.to_string())?;
    check(
        described == format!("uppercase {TOUR_VERSION}"),
        &format!("new calls reach it: {described}"),
    )?;
    let seen_after = upper.lines_seen().map_err(|e| e.to_string())?;
    check(
        seen_after >= seen_before && seen_before > 0,
        &format!(
            "its count of lines carried over: {seen_before} before the reload, {seen_after} after"
        ),
    )?;
    if exclaims {
        let out = upper
            .transform("live reload".into())
            .map_err(|e| e.to_string())?;
        check(out == "LIVE RELOAD!", &format!("its new behaviour: {out}"))?;
    }

    step(3, "deploying a broken build (a truncated library)");
    deploy(&bytes[..bytes.len() / 3], &watched)?;
    let rejected = events.wait(Duration::from_secs(30), |e| {
        matches!(e, ReloadEvent::Rejected(_))
    });
    check(rejected.is_some(), "the broken build was rejected")?;
    let described = upper.describe().map_err(|e| e.to_string())?;
    check(
        described == format!("uppercase {TOUR_VERSION}"),
        &format!("the good version keeps serving: {described}"),
    )?;

    step(4, "checking that the first version drained and unloaded");
    let unloaded = events.wait(Duration::from_secs(10), |e| {
        matches!(e, ReloadEvent::Unloaded { generation: 1, .. })
    });
    let Some(ReloadEvent::Unloaded { state, .. }) = unloaded else {
        return Err("tour check failed: generation 1 was never closed".into());
    };
    check(
        state == UnloadState::Unmapped,
        &format!("generation 1 was closed after its calls finished and is {state:?}"),
    )?;

    step(
        5,
        "deploying a build whose transform panics: probation rolls it back",
    );
    let (broken, panics) = rebuild_uppercase(
        built,
        "uppercase-broken",
        "1.2-broken",
        "panic!(\"a broken build: transform panics\")",
    )?;
    if panics {
        let broken = std::fs::read(&broken).map_err(|e| e.to_string())?;
        let panics_before = service.counters.panics.load(Ordering::Relaxed);
        deploy(&broken, &watched)?;
        let rolled = events.wait(Duration::from_secs(30), |e| {
            matches!(e, ReloadEvent::RolledBack { .. })
        });
        check(rolled.is_some(), "the panicking build was rolled back")?;
        if let Some(ReloadEvent::RolledBack {
            from,
            to,
            after,
            failures,
            ..
        }) = rolled
        {
            check(
                true,
                &format!(
                    "generation {from} -> {to}, {after:?} after the swap, {failures} failed calls"
                ),
            )?;
        }
        let described = upper.describe().map_err(|e| e.to_string())?;
        check(
            described == format!("uppercase {TOUR_VERSION}"),
            &format!("the previous version serves again: {described}"),
        )?;
        let panicked = service.counters.panics.load(Ordering::Relaxed) - panics_before;
        check(
            panicked <= 3 + workers as u64 * 2,
            &format!("only {panicked} requests met the broken build"),
        )?;
        let quarantined = service
            .dir
            .status("Uppercase")
            .is_some_and(|s| s.quarantined.len() == 1);
        check(
            quarantined,
            "its build is quarantined until the file changes",
        )?;
    } else {
        println!("[tour]   SKIPPED: demo-plugins/uppercase was edited; its transform is not the original");
    }

    step(
        6,
        "a plugin that crashes and hangs on request, isolated in a process of its own, while the others keep serving",
    );
    let served = service.counters.requests.load(Ordering::Relaxed);
    isolation(built)?;
    check(
        service.counters.requests.load(Ordering::Relaxed) > served,
        "the hot-reloading plugins served on meanwhile",
    )?;
    service.shutdown();
    println!("\n{}", service.summary());
    let status = service
        .dir
        .status("Uppercase")
        .ok_or("the Uppercase plugin is gone")?;
    check(
        status.draining.is_empty(),
        "no old version is still draining",
    )?;
    check(
        status.pinned.is_empty(),
        "every old version was unmapped (none pinned)",
    )?;
    let failures = service.counters.failures.load(Ordering::Relaxed);
    check(failures == 0, &format!("zero failed requests ({failures})"))?;
    println!("\n[tour] all checks passed");
    drop(service);
    drop(dir);
    Ok(())
}

#[cfg(target_os = "linux")]
fn isolation(built: &Built) -> Result<(), String> {
    let (krate, plugin) = plugins::ISOLATED;
    crate::isolation::tour(&built.library(krate), plugin, check)
}

#[cfg(not(target_os = "linux"))]
fn isolation(_: &Built) -> Result<(), String> {
    println!("[tour]   SKIPPED: isolated plugins run on Linux only");
    Ok(())
}

/// Builds a copy of `demo-plugins/uppercase` with VERSION changed (and `transform`
/// adding "!" when its code is still the original), in a scratch crate under the
/// target directory. Returns the library and whether the behaviour change applied.
fn rebuild_edited(built: &Built) -> Result<(PathBuf, bool), String> {
    rebuild_uppercase(
        built,
        "uppercase-edit",
        TOUR_VERSION,
        "Ok(format!(\"{}!\", line.to_uppercase()))",
    )
}

/// Builds a copy of `demo-plugins/uppercase` (in scratch crate `name`) with VERSION
/// set to `version` and `transform`'s result replaced by `result` (when its code is
/// still the original). Returns the library and whether `result` applied.
fn rebuild_uppercase(
    built: &Built,
    name: &str,
    version: &str,
    result: &str,
) -> Result<(PathBuf, bool), String> {
    let ws = &built.workspace;
    let scratch = built.target_dir.join("demo-tour");
    let krate = scratch.join(name);
    std::fs::create_dir_all(krate.join("src")).map_err(|e| e.to_string())?;
    let source = std::fs::read_to_string(ws.join("demo-plugins/uppercase/src/lib.rs"))
        .map_err(|e| e.to_string())?;
    let mut edited: String = source
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("const VERSION") {
                format!("const VERSION: &str = \"{version}\";")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let applies = edited.contains("Ok(line.to_uppercase())");
    edited = edited.replace("Ok(line.to_uppercase())", result);
    std::fs::write(krate.join("src/lib.rs"), edited).map_err(|e| e.to_string())?;
    let manifest = format!(
        r#"[package]
name = "uppercase"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
text-interface = {{ path = "{}" }}
fidius = {{ path = "{}" }}

# A workspace of its own: this scratch crate is not a member of the demo's.
[workspace]
"#,
        ws.join("demo-plugins/text-interface").display(),
        ws.join("fidius").display()
    );
    std::fs::write(krate.join("Cargo.toml"), manifest).map_err(|e| e.to_string())?;
    // The workspace's lock file keeps dependency versions identical to the host's.
    let _ = std::fs::copy(ws.join("Cargo.lock"), krate.join("Cargo.lock"));
    let target = scratch.join("target");
    println!("[tour]   cargo build of the edited copy (first run compiles its dependencies)");
    let status = Command::new(plugins::cargo())
        .arg("build")
        .arg("--manifest-path")
        .arg(krate.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err("building the edited plugin failed".into());
    }
    let lib = target.join("debug").join(format!(
        "{}uppercase{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    Ok((lib, applies))
}
