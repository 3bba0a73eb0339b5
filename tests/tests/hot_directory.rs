//! Directory mode: libraries that appear are loaded, replaced ones reloaded, removed
//! ones reported and, by policy, forgotten.
#![cfg(target_os = "linux")]

use fidius_hotreload::{DirectoryEvent, HotDirectory, ReloadEvent, RemovalPolicy};
use fidius_tests::hot_build;
use hot_interface::{Versioned, VersionedClient};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

fn lib(dir: &Path, name: &str) -> PathBuf {
    dir.join(fidius_tests::lib_file(name))
}

/// Puts build `which` at `to` by writing beside it and renaming.
fn place(which: &str, to: &Path) {
    let staged = to.with_extension("staged");
    std::fs::copy(hot_build(which), &staged).unwrap();
    std::fs::rename(&staged, to).unwrap();
}

fn until(
    rx: &Receiver<DirectoryEvent>,
    done: impl Fn(&DirectoryEvent) -> bool,
) -> Vec<DirectoryEvent> {
    fidius_tests::recv_until(rx, done)
}

#[test]
fn a_directory_follows_its_libraries() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let shadow = tmp.path().join("shadow");
    let first = lib(&plugins, "hot_a");
    place("v1", &first);
    std::fs::write(lib(&plugins, "junk"), b"not a library").unwrap();

    let initial = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = initial.clone();
    let dir = HotDirectory::builder::<dyn Versioned>(&plugins)
        .shadow_dir(&shadow)
        .on_event(move |e| log.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let rx = dir.subscribe();
    {
        let initial = initial.lock().unwrap();
        assert!(
            initial
                .iter()
                .any(|e| matches!(e, DirectoryEvent::Added { plugins, .. } if plugins == &["Hot"])),
            "{initial:#?}"
        );
        assert!(
            initial.iter().any(
                |e| matches!(e, DirectoryEvent::Rejected(r) if r.path == lib(&plugins, "junk"))
            ),
            "{initial:#?}"
        );
    }
    assert_eq!(dir.plugins(), vec![("Hot".to_string(), first.clone())]);
    let client = VersionedClient::new(dir.get("Hot").unwrap()).unwrap();
    assert_eq!(client.version().unwrap(), 1);

    // Replaced: reloaded.
    place("v2", &first);
    until(&rx, |e| {
        matches!(
            e,
            DirectoryEvent::Plugin {
                event: ReloadEvent::Swapped { .. },
                ..
            }
        )
    });
    assert_eq!(client.version().unwrap(), 2);

    // Appeared: loaded. It offers "Hot" too: reported, and the first path serves.
    let second = lib(&plugins, "hot_b");
    place("v3", &second);
    let events = until(&rx, |e| matches!(e, DirectoryEvent::Added { .. }));
    assert!(matches!(events.last(), Some(DirectoryEvent::Added { path, .. }) if path == &second));
    let events = until(&rx, |e| matches!(e, DirectoryEvent::Duplicate { .. }));
    match events.last() {
        Some(DirectoryEvent::Duplicate {
            plugin,
            serving,
            shadowed,
        }) => {
            assert_eq!(plugin, "Hot");
            assert_eq!(serving, &first);
            assert_eq!(shadowed, std::slice::from_ref(&second));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dir.plugins().len(), 2);
    let served = VersionedClient::new(dir.get("Hot").unwrap()).unwrap();
    assert_eq!(
        served.version().unwrap(),
        2,
        "hot_a (v2) serves, not hot_b (v3)"
    );

    // A broken library appearing is rejected; nothing else changes.
    std::fs::write(lib(&plugins, "broken"), vec![0u8; 1000]).unwrap();
    until(&rx, |e| matches!(e, DirectoryEvent::Rejected(_)));
    assert_eq!(dir.plugins().len(), 2);

    // Removed, default policy: reported, keeps serving.
    std::fs::remove_file(&first).unwrap();
    let events = until(&rx, |e| matches!(e, DirectoryEvent::Removed { .. }));
    assert!(
        matches!(events.last(), Some(DirectoryEvent::Removed { unloaded: false, path, .. }) if path == &first)
    );
    assert_eq!(client.version().unwrap(), 2);
    assert_eq!(dir.plugins().len(), 2);
}

#[test]
fn the_unload_policy_forgets_removed_libraries() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let file = lib(&plugins, "hot");
    place("v1", &file);
    let dir = HotDirectory::builder::<dyn Versioned>(&plugins)
        .shadow_dir(tmp.path().join("shadow"))
        .on_removal(RemovalPolicy::Unload)
        .build()
        .unwrap();
    let rx = dir.subscribe();
    let client = VersionedClient::new(dir.get("Hot").unwrap()).unwrap();
    std::fs::remove_file(&file).unwrap();
    let events = until(&rx, |e| matches!(e, DirectoryEvent::Removed { .. }));
    assert!(matches!(
        events.last(),
        Some(DirectoryEvent::Removed { unloaded: true, .. })
    ));
    assert!(dir.get("Hot").is_none());
    assert!(dir.plugins().is_empty());
    // A handle already given out keeps working until dropped.
    assert_eq!(client.version().unwrap(), 1);
}

#[test]
fn a_shadowed_duplicate_serves_once_the_first_library_is_forgotten() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let (first, second) = (lib(&plugins, "hot_a"), lib(&plugins, "hot_b"));
    place("v1", &first);
    place("v2", &second);
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = events.clone();
    let dir = HotDirectory::builder::<dyn Versioned>(&plugins)
        .shadow_dir(tmp.path().join("shadow"))
        .on_removal(RemovalPolicy::Unload)
        .on_event(move |e| log.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    assert!(
        events.lock().unwrap().iter().any(|e| matches!(
            e,
            DirectoryEvent::Duplicate { serving, shadowed, .. }
                if serving == &first && shadowed == std::slice::from_ref(&second)
        )),
        "{:#?}",
        events.lock().unwrap()
    );
    let rx = dir.subscribe();
    let served = |dir: &HotDirectory| {
        VersionedClient::new(dir.get("Hot").unwrap())
            .unwrap()
            .version()
            .unwrap()
    };
    assert_eq!(served(&dir), 1);
    std::fs::remove_file(&first).unwrap();
    until(&rx, |e| matches!(e, DirectoryEvent::Removed { .. }));
    assert_eq!(served(&dir), 2, "hot_b serves now");
    assert_eq!(dir.plugins(), vec![("Hot".to_string(), second)]);
}

/// No event of kind `unwanted` for `quiet`.
fn none_for(
    rx: &Receiver<DirectoryEvent>,
    quiet: Duration,
    unwanted: impl Fn(&DirectoryEvent) -> bool,
) {
    let deadline = Instant::now() + quiet;
    while let Ok(e) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        assert!(!unwanted(&e), "unexpected {e:#?}");
    }
}

fn is_swap(e: &DirectoryEvent) -> bool {
    matches!(
        e,
        DirectoryEvent::Plugin {
            event: ReloadEvent::Swapped { .. },
            ..
        }
    )
}

/// Given as a relative path, the directory used to take a library replaced by `mv`
/// for a second library (`Added` and a `Duplicate` of itself), keep the old version,
/// and report no removals. Paths are now named by the directory as configured, made
/// absolute (`<cwd>/<relative>/<file>`).
#[test]
fn a_relative_directory_path_follows_replacements_and_removals() {
    let tmp = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let file = lib(&plugins, "hot_a");
    fidius_tests::place_build("v1", &file);
    let relative = fidius_tests::relative_to_cwd(&plugins);
    let dir = HotDirectory::builder::<dyn Versioned>(&relative)
        .build()
        .unwrap();
    let rx = dir.subscribe();
    let client = VersionedClient::new(dir.get("Hot").unwrap()).unwrap();

    fidius_tests::place_build("v2", &file);
    let events = until(&rx, is_swap);
    assert!(
        !events.iter().any(|e| matches!(
            e,
            DirectoryEvent::Added { .. } | DirectoryEvent::Duplicate { .. }
        )),
        "a replaced library is the same library: {events:#?}"
    );
    assert_eq!(client.version().unwrap(), 2);
    let named = std::env::current_dir()
        .unwrap()
        .join(&relative)
        .join(file.file_name().unwrap());
    assert_eq!(dir.plugins(), vec![("Hot".to_string(), named.clone())]);

    std::fs::remove_file(&file).unwrap();
    let events = until(&rx, |e| matches!(e, DirectoryEvent::Removed { .. }));
    assert!(
        matches!(events.last(), Some(DirectoryEvent::Removed { path, .. }) if path == &named),
        "{events:#?}"
    );
}

/// A directory that is not watched changes only on command; pause, resume and hold
/// work as a hot plugin's do.
#[test]
fn a_directory_has_the_controls_of_a_hot_plugin() {
    let tmp = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let (a, b) = (lib(&plugins, "hot_a"), lib(&plugins, "hot_b"));
    fidius_tests::place_build("v1", &a);

    // watch(false): nothing happens until reload_now / reload_all.
    let dir = HotDirectory::builder::<dyn Versioned>(&plugins)
        .watch(false)
        .build()
        .unwrap();
    assert_eq!(dir.directory_status().watcher, None);
    assert!(!dir.status("Hot").unwrap().watching);
    let rx = dir.subscribe();
    fidius_tests::place_build("v2", &a);
    fidius_tests::place_build("v3", &b);
    none_for(&rx, Duration::from_millis(300), |_| true);
    match dir.reload_now(&a).unwrap() {
        fidius_hotreload::LibraryReload::Reloaded { plugins } => {
            assert!(
                matches!(&plugins[..], [(name, Ok(fidius_hotreload::ReloadOutcome::Swapped { from: 1, to: 2 }))] if name == "Hot"),
                "{plugins:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let all = dir.reload_all();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        matches!(&all[1], (path, Ok(fidius_hotreload::LibraryReload::Added { plugins })) if path == &b && plugins == &["Hot"]),
        "{all:?}"
    );
    assert_eq!(dir.directory_status().libraries, 2);
    drop(dir);

    // Watched: pause and resume, then hold.
    let dir = HotDirectory::builder::<dyn Versioned>(&plugins)
        .on_removal(RemovalPolicy::Unload)
        .build()
        .unwrap();
    assert!(dir.directory_status().watcher.is_some());
    let rx = dir.subscribe();
    std::fs::remove_file(&b).unwrap();
    until(&rx, |e| matches!(e, DirectoryEvent::Removed { .. }));
    let client = VersionedClient::new(dir.get("Hot").unwrap()).unwrap();
    assert_eq!(client.version().unwrap(), 2);

    dir.pause();
    assert!(dir.directory_status().paused);
    fidius_tests::place_build("v3", &a);
    none_for(&rx, Duration::from_millis(300), is_swap);
    assert_eq!(client.version().unwrap(), 2);
    dir.resume();
    until(&rx, is_swap);
    assert_eq!(client.version().unwrap(), 3);

    {
        let _hold = dir.hold();
        fidius_tests::place_build("v1", &a);
        none_for(&rx, Duration::from_millis(300), is_swap);
        assert_eq!(client.version().unwrap(), 3);
    }
    until(&rx, is_swap);
    assert_eq!(client.version().unwrap(), 1);
}

/// A library still being written when its events stop is tried again, as a hot
/// plugin's file is, instead of being rejected at once.
#[test]
fn a_new_library_still_being_written_is_retried_not_rejected() {
    let tmp = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let dir = HotDirectory::builder::<dyn Versioned>(&plugins)
        .debounce(Duration::from_millis(100))
        .load_retries(5)
        .build()
        .unwrap();
    let rx = dir.subscribe();
    let bytes = std::fs::read(hot_build("v1")).unwrap();
    let file = lib(&plugins, "hot_slow");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&file).unwrap();
        f.write_all(&bytes[..bytes.len() / 2]).unwrap();
        f.sync_all().unwrap();
        // The writer stalls: the file settles half-written.
        let events = until(&rx, |e| matches!(e, DirectoryEvent::Retrying { .. }));
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, DirectoryEvent::Rejected(_))),
            "{events:#?}"
        );
        f.write_all(&bytes[bytes.len() / 2..]).unwrap();
    }
    let events = until(&rx, |e| matches!(e, DirectoryEvent::Added { .. }));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, DirectoryEvent::Rejected(_))),
        "{events:#?}"
    );
    assert_eq!(
        VersionedClient::new(dir.get("Hot").unwrap())
            .unwrap()
            .version()
            .unwrap(),
        1
    );
}

/// Each library that joins a plugin name already offered is reported once, naming
/// only itself: N libraries give N - 1 events of one path each, not every pair.
#[test]
fn duplicates_are_reported_once_per_added_library() {
    let tmp = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let files: Vec<PathBuf> = (0..5).map(|i| lib(&plugins, &format!("hot_{i}"))).collect();
    for file in &files {
        fidius_tests::place_build("v1", file);
    }
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = events.clone();
    let dir = HotDirectory::builder::<dyn Versioned>(&plugins)
        .on_event(move |e| log.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let duplicates: Vec<(PathBuf, Vec<PathBuf>)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            DirectoryEvent::Duplicate {
                serving, shadowed, ..
            } => Some((serving.clone(), shadowed.clone())),
            _ => None,
        })
        .collect();
    let expected: Vec<(PathBuf, Vec<PathBuf>)> = files[1..]
        .iter()
        .map(|f| (files[0].clone(), vec![f.clone()]))
        .collect();
    assert_eq!(duplicates, expected);
    assert_eq!(dir.plugins().len(), 5);
}
