//! A host whose native file watcher cannot be had still starts, and serves reloads
//! by polling. This test takes every inotify instance this user may have (the
//! situation a host with hundreds of plugins used to create for itself), then starts
//! a hot plugin and a hot directory. It is the only test in its binary, so nothing
//! else in the process has taken the shared watcher already.
#![cfg(target_os = "linux")]

use fidius_hotreload::{DirectoryEvent, HotDirectory, HotPlugin, ReloadEvent, WatcherKind};
use fidius_tests::{lib_file, place_build};
use hot_interface::{Versioned, VersionedClient};
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::time::Duration;

/// Opens inotify instances until the kernel refuses one. `None` when it never does
/// within reason (a raised limit): then this test cannot exhaust it.
fn take_every_inotify_instance() -> Option<Vec<OwnedFd>> {
    let mut taken = Vec::new();
    loop {
        match rustix::fs::inotify::init(rustix::fs::inotify::CreateFlags::CLOEXEC) {
            Ok(fd) => taken.push(fd),
            Err(_) => return Some(taken),
        }
        if taken.len() > 4096 {
            return None;
        }
    }
}

#[test]
fn with_no_native_watcher_to_be_had_reloads_are_served_by_polling() {
    let taken = take_every_inotify_instance();
    if taken.is_none() {
        // Still prove the fallback, asked for instead of forced on us.
        eprintln!(
            "SKIPPED exhausting inotify: more than 4096 instances allowed; forcing polling instead"
        );
        // SAFETY: no other thread runs yet in this single-test binary.
        unsafe { std::env::set_var("FIDIUS_HOTRELOAD_POLL", "1") };
    }

    let tmp = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let file = tmp.path().join(lib_file("hot"));
    place_build("v1", &file);
    let (tx, rx) = mpsc::channel();
    let hot = HotPlugin::builder::<dyn Versioned>(&file, "Hot")
        .on_event(move |e| {
            let _ = tx.send(e.clone());
        })
        .build()
        .expect("a host without a native watcher still starts");
    let status = hot.status();
    assert_eq!(status.watcher, Some(WatcherKind::Polling));
    assert!(status.watching);
    let fallback = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(5)).ok())
        .find_map(|e| match e {
            ReloadEvent::WatcherFallback { reason, .. } => Some(reason),
            _ => None,
        })
        .expect("a WatcherFallback event");
    eprintln!("fallback reason: {fallback}");
    if taken.is_some() {
        assert!(fallback.contains("native file watcher"), "{fallback}");
    }

    let client = VersionedClient::new(hot.handle()).unwrap();
    assert_eq!(client.version().unwrap(), 1);
    // Twice, well within one second: polling must see changes finer than that.
    for (build, version) in [("v2", 2), ("v3", 3)] {
        place_build(build, &file);
        std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(20)).ok())
            .find(|e| matches!(e, ReloadEvent::Swapped { .. }))
            .unwrap_or_else(|| panic!("{build} was not reloaded by polling"));
        assert_eq!(client.version().unwrap(), version);
    }

    // A hot directory in the same process polls too.
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let (tx, rx) = mpsc::channel();
    let dir = HotDirectory::builder::<dyn Versioned>(&plugins)
        .on_event(move |e| {
            let _ = tx.send(e.clone());
        })
        .build()
        .unwrap();
    assert_eq!(dir.directory_status().watcher, Some(WatcherKind::Polling));
    place_build("v2", &plugins.join(lib_file("hot_a")));
    std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(20)).ok())
        .find(|e| matches!(e, DirectoryEvent::Added { .. }))
        .expect("a library added to a polled directory was loaded");
    let client = VersionedClient::new(dir.get("Hot").unwrap()).unwrap();
    assert_eq!(client.version().unwrap(), 2);
    drop(taken);
}
