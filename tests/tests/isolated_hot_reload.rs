//! Hot reloading with isolation: each build of a real plugin runs in a process of its
//! own, swapped like an in-process version, and an old version's process exits once
//! its calls are done.
#![cfg(target_os = "linux")]

use fidius_hotreload::{HotPlugin, Isolation, ReloadEvent, UnloadState};
use fidius_tests::{recv_until, running, Deploy, HotDir};
use hot_interface::{Versioned, VersionedClient};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn isolated(dir: &HotDir) -> HotPlugin {
    HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .watch(false)
        .isolated(Isolation::default().deadline(Duration::from_secs(20)))
        .build()
        .unwrap()
}

/// 100 reloads under four calling threads: every call succeeds, every old version's
/// process exits (reported `Exited` only once it was seen to), and the host never
/// maps any build.
#[test]
fn a_hundred_isolated_reloads_under_four_callers_fail_no_call() {
    let dir = HotDir::new("v1");
    let hot = isolated(&dir);
    let events = hot.subscribe();
    let client = Arc::new(VersionedClient::new(hot.handle()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (client, stop, calls) = (client.clone(), stop.clone(), calls.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let version = client.version().expect("a call failed");
                    assert!(version == 1 || version == 2, "{version}");
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for i in 0..100 {
        let (build, version) = if i % 2 == 0 { ("v2", 2) } else { ("v1", 1) };
        dir.deploy(build, Deploy::Rename);
        hot.reload_now().unwrap();
        assert_eq!(client.version().unwrap(), version, "reload {i}");
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.join().unwrap();
    }
    let seen = recv_until(&events, |e| {
        matches!(
            e,
            ReloadEvent::Unloaded {
                generation: 100,
                ..
            }
        )
    });
    let exited = seen
        .iter()
        .filter(|e| {
            matches!(
                e,
                ReloadEvent::Unloaded {
                    state: UnloadState::Exited,
                    ..
                }
            )
        })
        .count();
    let unloaded = seen
        .iter()
        .filter(|e| matches!(e, ReloadEvent::Unloaded { .. }))
        .count();
    eprintln!(
        "100 isolated reloads: {} calls, {exited} old versions exited",
        calls.load(Ordering::Relaxed)
    );
    assert_eq!(exited, unloaded, "{seen:#?}");
    assert_eq!(exited, 100);
    assert!(calls.load(Ordering::Relaxed) > 0);
    assert_eq!(
        dir.mapped_copies(),
        0,
        "no build was ever mapped in the host"
    );
    // The current version's copy, and the descriptor its process restarts from: the
    // hundred old ones were all let go.
    let open = fidius_tests::open_copies_of(&dir.file);
    assert!(open <= 2, "{open} in-memory copies still open");
}

/// A build that pins itself in memory in-process (a thread-local with a destructor
/// on a live thread) leaves nothing behind isolated: its process exits, and no copy
/// of it is mapped anywhere.
#[test]
fn a_self_pinning_build_leaves_nothing_behind_when_isolated() {
    let dir = HotDir::new("pin");
    let hot = isolated(&dir);
    let events = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();
    assert_eq!(client.work(1).unwrap(), 16 + 2);
    let process = hot.status().process.expect("it runs in a process");
    assert_eq!(process.restarts, 0);
    let pid = process.pid.unwrap();
    dir.deploy("v3", Deploy::Rename);
    hot.reload_now().unwrap();
    let seen = recv_until(&events, |e| matches!(e, ReloadEvent::Unloaded { .. }));
    assert!(
        matches!(
            seen.last(),
            Some(ReloadEvent::Unloaded {
                generation: 1,
                state: UnloadState::Exited
            })
        ),
        "{seen:#?}"
    );
    assert!(!running(pid), "its process is gone");
    assert_ne!(hot.status().process.unwrap().pid, Some(pid));
    assert!(hot.status().pinned.is_empty());
    assert_eq!(dir.mapped_copies(), 0, "mapped in the host");
    assert_eq!(client.version().unwrap(), 3);
}

/// A build refused in its process (another interface) is refused like an in-process
/// one, at the same stage, and the current version keeps serving.
#[test]
fn a_bad_build_is_refused_by_its_process_and_the_good_one_serves_on() {
    let dir = HotDir::new("v1");
    let hot = isolated(&dir);
    let client = VersionedClient::new(hot.handle()).unwrap();
    dir.deploy("other", Deploy::Rename);
    let rejection = hot.reload_now().unwrap_err();
    assert_eq!(
        rejection.stage,
        fidius_hotreload::Stage::Validate,
        "{rejection}"
    );
    assert!(
        rejection.reason.contains(&dir.file.display().to_string()),
        "names the user's file: {rejection}"
    );
    assert_eq!(client.version().unwrap(), 1);
    dir.deploy_bytes(b"not a library at all", Deploy::Rename);
    let rejection = hot.reload_now().unwrap_err();
    assert_eq!(client.version().unwrap(), 1, "{rejection}");
}

/// A hot directory, isolated: each library is listed by a process of its own, each
/// plugin served from one, a reload swaps processes, and nothing of any library is
/// mapped in the host, junk included.
#[test]
fn an_isolated_directory_loads_nothing_in_the_host() {
    use fidius_hotreload::{DirectoryEvent, HotDirectory};
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let library = plugins.join(fidius_tests::lib_file("hot_a"));
    fidius_tests::place_build("v1", &library);
    std::fs::write(
        plugins.join(fidius_tests::lib_file("junk")),
        b"not a library",
    )
    .unwrap();
    let dir = HotDirectory::builder::<dyn Versioned>(&plugins)
        .shadow_dir(tmp.path().join("shadow"))
        .watch(false)
        .isolated(Isolation::default())
        .build()
        .unwrap();
    let events = dir.subscribe();
    let client = VersionedClient::new(dir.get("Hot").expect("Hot is served")).unwrap();
    assert_eq!(client.version().unwrap(), 1);
    let pid = dir
        .status("Hot")
        .unwrap()
        .process
        .expect("in a process")
        .pid
        .unwrap();
    fidius_tests::place_build("v2", &library);
    dir.reload_now(&library).unwrap();
    assert_eq!(client.version().unwrap(), 2);
    let seen = recv_until(&events, |e| {
        matches!(
            e,
            DirectoryEvent::Plugin {
                event: ReloadEvent::Unloaded { .. },
                ..
            }
        )
    });
    assert!(
        matches!(
            seen.last(),
            Some(DirectoryEvent::Plugin {
                event: ReloadEvent::Unloaded {
                    state: UnloadState::Exited,
                    ..
                },
                ..
            })
        ),
        "{seen:#?}"
    );
    assert!(!running(pid));
    assert_eq!(fidius_tests::mapped_files_in(&plugins), 0);
    assert!(
        !fidius_tests::mapped_names()
            .iter()
            .any(|n| n.contains("hot_a") || n.contains("junk")),
        "nothing of the directory is mapped in the host"
    );
}

/// The process of an isolated version that dies (here: killed from outside) is
/// restarted on the same build, and the hot plugin reports both as events and in its
/// status.
#[test]
fn an_isolated_version_whose_process_dies_is_restarted_and_reported() {
    use fidius_isolated::{IsolatedEvent, ProcessEnd};
    let dir = HotDir::new("v1");
    let hot = isolated(&dir);
    let events = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();
    assert_eq!(client.version().unwrap(), 1);
    let pid = hot.status().process.unwrap().pid.unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let seen = recv_until(&events, |e| {
        matches!(
            e,
            ReloadEvent::Process {
                event: IsolatedEvent::Started { .. },
                ..
            }
        )
    });
    assert!(
        seen.iter().any(|e| matches!(
            e,
            ReloadEvent::Process {
                generation: 1,
                event: IsolatedEvent::Ended {
                    end: ProcessEnd::Crashed { .. },
                    ..
                }
            }
        )),
        "{seen:#?}"
    );
    assert_eq!(client.version().unwrap(), 1, "the same build serves again");
    let process = hot.status().process.unwrap();
    assert_eq!(process.restarts, 1);
    assert_ne!(process.pid, Some(pid));
}

/// Isolated versions hand their state over too: it crosses from the old version's
/// process to the new one's as bytes, with calls held off meanwhile.
#[test]
fn isolated_versions_hand_state_over_between_processes() {
    use counter_interface::{Counter, CounterClient};
    use fidius_tests::{counter_build, place_build_from};
    let dir = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let file = dir.path().join(fidius_tests::lib_file("counter"));
    place_build_from(&counter_build("v1"), &file);
    let hot = HotPlugin::builder::<dyn Counter>(&file, "Counting")
        .shadow_dir(dir.path().join("shadow"))
        .watch(false)
        .isolated(Isolation::default())
        .build()
        .unwrap();
    let client = Arc::new(CounterClient::new(hot.handle()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let bumper = {
        let (client, stop) = (client.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut bumps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(client.bump(1, 1).expect("a call failed"), bumps + 1);
                bumps += 1;
            }
            bumps
        })
    };
    for i in 0..10 {
        let build = if i % 2 == 0 { "v2" } else { "v1" };
        place_build_from(&counter_build(build), &file);
        hot.reload_now().unwrap();
        assert_eq!(client.build().unwrap(), build);
    }
    stop.store(true, Ordering::Relaxed);
    let bumps = bumper.join().unwrap();
    assert_eq!(client.value(1).unwrap(), bumps);
    // A build that refuses it, in its own process: rejected, the state stays.
    place_build_from(&counter_build("refuse"), &file);
    let refused = hot.reload_now().unwrap_err();
    assert_eq!(refused.stage, fidius_hotreload::Stage::State, "{refused}");
    assert_eq!(client.value(1).unwrap(), bumps);
}
