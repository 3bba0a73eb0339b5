//! What an operator sees and controls: counters, one-line events, a reload that does
//! not wait for ever on a hold, and a restart after a bad deploy.
#![cfg(target_os = "linux")]

use fidius_hotreload::{HotPlugin, ReloadEvent, Stage};
use fidius_tests::{recv_until, Deploy, HotDir};
use hot_interface::{Versioned, VersionedClient};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn hot(dir: &HotDir) -> HotPlugin {
    HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .watch(false)
        .build()
        .unwrap()
}

/// Waits (at most 20 s) until `done` holds.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn metrics_count_reloads_rejections_and_unloads() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir);
    let metrics = hot.metrics();
    assert_eq!(metrics.snapshot().reloads, 0);
    dir.deploy("v2", Deploy::Rename);
    hot.reload_now().unwrap();
    dir.deploy("other", Deploy::Rename);
    hot.reload_now().unwrap_err();
    eventually("the old version to unload", || {
        metrics.snapshot().unloaded == 1
    });
    let now = metrics.snapshot();
    assert_eq!((now.reloads, now.rejections), (1, 1), "{now:?}");
    assert_eq!((now.draining, now.pinned), (0, 0), "{now:?}");
    assert_eq!(hot.status().reloads, now.reloads);
}

/// Events and status read as single lines, as a log shows them.
#[test]
fn real_events_print_as_one_line_each() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir);
    let rx = hot.subscribe();
    dir.deploy("v2", Deploy::Rename);
    hot.reload_now().unwrap();
    let events = recv_until(&rx, |e| matches!(e, ReloadEvent::Swapped { .. }));
    let lines: Vec<String> = events.iter().map(ToString::to_string).collect();
    assert!(lines.iter().all(|l| !l.contains('\n')), "{lines:#?}");
    assert!(lines[0].ends_with(": reload asked for"), "{lines:#?}");
    assert!(
        lines.last().unwrap().starts_with("swapped in g2 (xxh3 0x"),
        "{lines:#?}"
    );
    let status = hot.status().to_string();
    assert!(status.starts_with("Hot from "), "{status}");
    assert!(status.contains("serving g2"), "{status}");
}

/// A reload asked for while a hold is active says that it waits, and the bounded one
/// gives up at its bound, having done nothing.
#[test]
fn a_bounded_reload_returns_while_a_hold_is_active() {
    let dir = HotDir::new("v1");
    let hot = Arc::new(hot(&dir));
    let rx = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();
    dir.deploy("v2", Deploy::Rename);
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let hot = hot.clone();
        std::thread::spawn(move || {
            let _hold = hot.hold();
            held_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        })
    };
    held_rx.recv().unwrap();
    let rejection = hot.reload_within(Duration::from_millis(100)).unwrap_err();
    assert_eq!(rejection.stage, Stage::Held, "{rejection}");
    assert!(
        matches!(rx.try_recv(), Ok(ReloadEvent::WaitingForHold { .. })),
        "no event said the reload waited"
    );
    assert_eq!(client.version().unwrap(), 1);
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    hot.reload_within(Duration::from_secs(10)).unwrap();
    assert_eq!(client.version().unwrap(), 2);
}

/// A host restarting after a rejected deploy starts from the last good build.
#[test]
fn a_restart_after_a_bad_deploy_starts_from_the_last_good_build() {
    let dir = HotDir::new("v1");
    let store = dir.dir.path().join("last-good");
    let build = || {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
            .shadow_dir(&dir.shadow)
            .watch(false)
            .last_known_good(&store)
            .on_event(move |e| log.lock().unwrap().push(e.clone()))
            .build();
        (hot, seen)
    };
    {
        let (hot, _) = build();
        let hot = hot.unwrap();
        assert_eq!(
            VersionedClient::new(hot.handle())
                .unwrap()
                .version()
                .unwrap(),
            1
        );
        eventually("the build to be kept", || {
            std::fs::read_dir(&store).is_ok_and(|d| d.count() == 1)
        });
    }
    // A bad deploy, then a restart: without the store, the start would fail.
    dir.deploy("other", Deploy::Rename);
    let (hot, seen) = build();
    let hot = hot.expect("a restart on a bad build should start from the last good one");
    let client = VersionedClient::new(hot.handle()).unwrap();
    assert_eq!(client.version().unwrap(), 1);
    let events = seen.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| matches!(e,
            ReloadEvent::StartedFromLastGood { rejection, .. } if rejection.stage == Stage::Validate)),
        "{events:#?}"
    );
    // A good build replaces it as usual, and becomes the kept one.
    dir.deploy("v2", Deploy::Rename);
    hot.reload_now().unwrap();
    assert_eq!(client.version().unwrap(), 2);
    // The store keeps it instead, still one file per plugin.
    let v2 = std::fs::read(fidius_tests::hot_build("v2")).unwrap();
    eventually("the new build to be kept", || {
        let files: Vec<_> = std::fs::read_dir(&store).unwrap().flatten().collect();
        files.len() == 1 && std::fs::read(files[0].path()).is_ok_and(|b| b == v2)
    });
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&store).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }
}

/// Every stage's message names the user's file, and the error behind it too, not the
/// private copy it was loaded from.
#[test]
fn rejections_name_the_users_file_at_every_stage() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir);
    let file = dir.file.display().to_string();
    // Validate: a plugin `Hot` of another interface.
    dir.deploy("other", Deploy::Rename);
    let r = hot.reload_now().unwrap_err();
    assert_eq!(r.stage, Stage::Validate, "{r}");
    assert!(r.reason.contains(&file), "{r}");
    assert!(!r.reason.contains("/proc/self/fd"), "{r}");
    assert_eq!(r.error.as_ref().unwrap().path(), Some(dir.file.as_path()));
    // Load: bytes with a library's header that the loader refuses.
    let mut bytes = std::fs::read(fidius_tests::hot_build("v2")).unwrap();
    bytes.truncate(bytes.len() / 2);
    dir.deploy_bytes(&bytes, Deploy::Rename);
    let r = hot.reload_now().unwrap_err();
    assert!(r.reason.contains(&file), "{r}");
    assert!(!r.reason.contains("/proc/self/fd"), "{r}");
    if let Some(e) = &r.error {
        assert_eq!(e.path(), Some(dir.file.as_path()), "{r}");
    }
}

/// With a trust, the kept build is kept with its signature, and judged again when a
/// restart falls back on it.
#[test]
fn the_last_good_build_keeps_its_signature() {
    use fidius::host::trust::{signature_path, Digest, SecretKey, Trust};
    let key = SecretKey::from_seed([21; 32]);
    let trust = Trust::new().key(key.public_key());
    let sign = |file: &std::path::Path| {
        let digest = Digest::of_file(file).unwrap();
        std::fs::write(signature_path(file), key.sign(&digest).to_text("hot")).unwrap();
    };
    let dir = HotDir::new("v1");
    sign(&dir.file);
    let store = dir.dir.path().join("last-good");
    let build = || {
        HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
            .shadow_dir(&dir.shadow)
            .watch(false)
            .trust(trust.clone())
            .last_known_good(&store)
            .build()
    };
    drop(build().unwrap());
    eventually("the build and its signature to be kept", || {
        std::fs::read_dir(&store).is_ok_and(|d| d.count() == 2)
    });
    // An unsigned build, then a restart: the kept pair serves, judged again.
    dir.deploy("v2", Deploy::Rename);
    let hot = build().expect("the kept, signed build should serve");
    assert_eq!(
        VersionedClient::new(hot.handle())
            .unwrap()
            .version()
            .unwrap(),
        1
    );
    // A bound too far to add is no bound.
    dir.deploy("v1", Deploy::Rename);
    sign(&dir.file);
    hot.reload_within(Duration::MAX).unwrap();
}
