//! Every control of a hot plugin and a hot directory may be called from inside an
//! event callback: events are emitted with no lock held. (They used to be emitted
//! while the reload held its locks, and `reload_now`, `hold` or `on_event` from a
//! callback deadlocked, on the worker that every reload of the plugin needed.)
#![cfg(target_os = "linux")]

use fidius_hotreload::{DirectoryEvent, HotDirectory, HotPlugin, ReloadEvent, ReloadOutcome};
use fidius_tests::{lib_file, place_build};
use hot_interface::{Versioned, VersionedClient};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// Every control of `hot`, called as a callback would; `next` is deployed and
/// reloaded from inside. Returns what each call gave.
fn exercise_plugin(hot: &HotPlugin, file: &Path, next: &str) -> Vec<String> {
    let mut log = Vec::new();
    {
        let _hold = hot.hold();
        log.push("hold".to_string());
    }
    hot.pause();
    hot.resume();
    log.push("pause, resume".into());
    hot.on_event(|_| {});
    let _rx = hot.subscribe();
    log.push("on_event, subscribe".into());
    log.push(format!(
        "status: generation {}",
        hot.status().current.generation
    ));
    log.push(format!("generation {}", hot.generation()));
    let client = VersionedClient::new(hot.handle()).unwrap();
    log.push(format!("call: version {}", client.version().unwrap()));
    place_build(next, file);
    log.push(format!("reload_now: {:?}", hot.reload_now()));
    log.push(format!("call: version {}", client.version().unwrap()));
    log
}

fn plugin_with_callback(
    file: &Path,
    watch: bool,
    next: &'static str,
) -> (Arc<HotPlugin>, mpsc::Receiver<Vec<String>>) {
    let me: Arc<OnceLock<Weak<HotPlugin>>> = Arc::new(OnceLock::new());
    let (tx, rx) = mpsc::channel();
    let fired = AtomicBool::new(false);
    let (cell, path) = (me.clone(), file.to_path_buf());
    let hot = HotPlugin::builder::<dyn Versioned>(file, "Hot")
        .watch(watch)
        .on_event(move |e| {
            if !matches!(e, ReloadEvent::Swapped { .. }) || fired.swap(true, Ordering::SeqCst) {
                return;
            }
            if let Some(hot) = cell.get().and_then(Weak::upgrade) {
                let _ = tx.send(exercise_plugin(&hot, &path, next));
            }
        })
        .build()
        .unwrap();
    let hot = Arc::new(hot);
    me.set(Arc::downgrade(&hot)).unwrap();
    (hot, rx)
}

fn check(log: &[String]) {
    assert!(
        log.iter().any(|l| l.starts_with("reload_now: Ok(Swapped")),
        "{log:#?}"
    );
    assert_eq!(log.last().unwrap(), "call: version 3", "{log:#?}");
}

#[test]
fn every_control_works_from_a_callback_on_a_watched_reload() {
    let tmp = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let file = tmp.path().join(lib_file("hot"));
    place_build("v1", &file);
    let (hot, rx) = plugin_with_callback(&file, true, "v3");
    // Seen by the watcher: the callback runs on a hot-reload worker.
    place_build("v2", &file);
    let log = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the callback finished: no control deadlocked");
    check(&log);
    assert_eq!(hot.generation(), 3);
}

#[test]
fn every_control_works_from_a_callback_on_reload_now() {
    let tmp = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let file = tmp.path().join(lib_file("hot"));
    place_build("v1", &file);
    let (hot, rx) = plugin_with_callback(&file, false, "v3");
    place_build("v2", &file);
    // The callback runs on this thread, inside this call.
    let outcome = hot.reload_now().unwrap();
    assert_eq!(outcome, ReloadOutcome::Swapped { from: 1, to: 2 });
    let log = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    check(&log);
    assert_eq!(hot.generation(), 3);
}

#[test]
fn every_control_of_a_directory_works_from_its_callback() {
    let tmp = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let file: PathBuf = plugins.join(lib_file("hot_a"));
    place_build("v1", &file);
    let me: Arc<OnceLock<Weak<HotDirectory>>> = Arc::new(OnceLock::new());
    let (tx, rx) = mpsc::channel();
    let fired = AtomicBool::new(false);
    let (cell, path) = (me.clone(), file.clone());
    let dir = HotDirectory::builder::<dyn Versioned>(&plugins)
        .on_event(move |e| {
            let swapped = matches!(
                e,
                DirectoryEvent::Plugin {
                    event: ReloadEvent::Swapped { .. },
                    ..
                }
            );
            if !swapped || fired.swap(true, Ordering::SeqCst) {
                return;
            }
            let Some(dir) = cell.get().and_then(Weak::upgrade) else {
                return;
            };
            let mut log = Vec::new();
            {
                let _hold = dir.hold();
                log.push("hold".to_string());
            }
            dir.pause();
            dir.resume();
            dir.on_event(|_| {});
            let _rx = dir.subscribe();
            log.push(format!("plugins {:?}", dir.plugins()));
            log.push(format!(
                "status {:?}",
                dir.status("Hot").map(|s| s.current.generation)
            ));
            log.push(format!("directory {:?}", dir.directory_status().libraries));
            let client = VersionedClient::new(dir.get("Hot").unwrap()).unwrap();
            place_build("v3", &path);
            log.push(format!(
                "reload_now: {:?}",
                dir.reload_now(lib_file("hot_a"))
            ));
            log.push(format!("reload_all: {}", dir.reload_all().len()));
            log.push(format!("call: version {}", client.version().unwrap()));
            let _ = tx.send(log);
        })
        .build()
        .unwrap();
    let dir = Arc::new(dir);
    me.set(Arc::downgrade(&dir)).unwrap();
    place_build("v2", &file);
    let log = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the callback finished: no control deadlocked");
    assert!(
        log.iter()
            .any(|l| l.starts_with("reload_now: Ok(Reloaded") && l.contains("Swapped")),
        "{log:#?}"
    );
    assert_eq!(log.last().unwrap(), "call: version 3", "{log:#?}");
}

/// A thread that holds reloads off never waits for another thread's event delivery:
/// that thread's callback may be waiting for the hold to end. Here a worker's
/// callback (on the swap to version 3) calls `reload_now`, which waits for the hold,
/// while the holding thread drops the last stream of version 1, which reports its
/// unload on that thread.
#[test]
fn a_hold_and_a_callback_waiting_for_it_do_not_deadlock() {
    let tmp = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let file = tmp.path().join(lib_file("hot"));
    place_build("v1", &file);
    let me: Arc<OnceLock<Weak<HotPlugin>>> = Arc::new(OnceLock::new());
    let (entered_tx, entered_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let fired = AtomicBool::new(false);
    let cell = me.clone();
    let hot = Arc::new(
        HotPlugin::builder::<dyn Versioned>(&file, "Hot")
            .on_event(move |e| {
                let third = matches!(e, ReloadEvent::Swapped { to, .. } if to.generation == 3);
                if !third || fired.swap(true, Ordering::SeqCst) {
                    return;
                }
                let Some(hot) = cell.get().and_then(Weak::upgrade) else {
                    return;
                };
                entered_tx.send(()).unwrap();
                // Give the other thread time to take its hold.
                std::thread::sleep(Duration::from_millis(200));
                let _ = done_tx.send(format!("{:?}", hot.reload_now()));
            })
            .build()
            .unwrap(),
    );
    me.set(Arc::downgrade(&hot)).unwrap();
    // On a thread of its own, so that a deadlock fails the test instead of hanging it.
    let holder = {
        let (hot, file) = (hot.clone(), file.clone());
        let gate = tmp.path().join("gate").display().to_string();
        std::thread::spawn(move || {
            let client = VersionedClient::new(hot.handle()).unwrap();
            std::fs::write(format!("{gate}.0"), b"").unwrap();
            let mut stream = client.gated(2, gate.clone()).unwrap();
            assert_eq!(stream.next(), Some(Ok(1)));
            // Version 1 leaves the hazard cell at once (no call is in it); the
            // stream keeps it alive, and becomes its last holder.
            place_build("v2", &file);
            hot.reload_now().unwrap();
            place_build("v3", &file);
            entered_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the watched reload to version 3 swapped");
            let _hold = hot.hold();
            // The last holder of version 1 goes: its unload is reported from here,
            // while the worker is inside a callback that waits for this hold.
            std::fs::write(format!("{gate}.1"), b"").unwrap();
            assert_eq!(stream.next(), Some(Ok(1)));
            assert_eq!(stream.next(), None);
            drop(stream);
        })
    };
    let outcome = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("deadlock: the callback's reload_now never finished");
    assert!(outcome.starts_with("Ok(Unchanged"), "{outcome}");
    holder.join().unwrap();
}
