//! Scale: hundreds of watched plugins in one process share one watcher and a fixed
//! set of threads. Each `HotPlugin` used to open its own inotify instance, and Linux
//! allows 128 per user by default: the 128th plugin failed to start.
#![cfg(target_os = "linux")]

use fidius_hotreload::{HotPlugin, ReloadEvent, WatcherKind};
use fidius_tests::{inotify_instances, lib_file, place_build, thread_count};
use hot_interface::{Versioned, VersionedClient};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn two_hundred_watched_plugins_share_one_watcher_and_each_reloads() {
    const N: usize = 200;
    // Beside the fixtures, so the builds are hard-linked into place, not copied.
    let tmp = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let threads_before = thread_count();
    let (tx, rx) = mpsc::channel();
    let mut plugins = Vec::new();
    for i in 0..N {
        // Each in a directory of its own: N watched directories.
        let dir = tmp.path().join(format!("p{i}"));
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join(lib_file("hot"));
        place_build("v1", &file);
        let tx = tx.clone();
        let hot = HotPlugin::builder::<dyn Versioned>(&file, "Hot")
            .on_event(move |e| {
                if let ReloadEvent::Swapped { to, .. } = e {
                    let _ = tx.send((i, to.generation));
                }
            })
            .build()
            .unwrap_or_else(|e| panic!("plugin {i} of {N} did not start: {e}"));
        assert_eq!(hot.status().watcher, Some(WatcherKind::Native));
        plugins.push((file, hot));
    }
    assert_eq!(inotify_instances(), 1, "one watcher for {N} plugins");
    let threads = thread_count();
    // The pool has at most 8 workers and a timer; notify has one thread.
    assert!(
        threads <= threads_before + 10,
        "{threads} threads with {N} plugins, {threads_before} before"
    );

    for (file, _) in &plugins {
        place_build("v2", file);
    }
    let mut swapped = [false; N];
    let deadline = Instant::now() + Duration::from_secs(120);
    while swapped.iter().any(|s| !s) {
        let left = deadline.saturating_duration_since(Instant::now());
        let (i, generation) = rx.recv_timeout(left).unwrap_or_else(|_| {
            let missing: Vec<usize> = (0..N).filter(|&i| !swapped[i]).collect();
            panic!("no reload for plugins {missing:?}")
        });
        assert_eq!(generation, 2);
        swapped[i] = true;
    }
    for (i, (_, hot)) in plugins.iter().enumerate() {
        let client = VersionedClient::new(hot.handle()).unwrap();
        assert_eq!(client.version().unwrap(), 2, "plugin {i}");
    }
    assert!(thread_count() <= threads_before + 10);
}
