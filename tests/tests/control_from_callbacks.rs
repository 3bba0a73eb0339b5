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
