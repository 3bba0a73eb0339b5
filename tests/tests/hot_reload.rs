//! Hot reloading with real builds: three versions of one plugin, one build of another
//! interface, and broken files, swapped under running calls.
#![cfg(target_os = "linux")]

use fidius::CallError;
use fidius_hotreload::{HotHandle, HotPlugin, ReloadEvent, ReloadOutcome, Stage, UnloadState};
use fidius_tests::{hot_build, Deploy, HotDir};
use hot_interface::{Versioned, VersionedClient};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn hot(dir: &HotDir, watch: bool) -> HotPlugin {
    HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .watch(watch)
        .build()
        .unwrap()
}

/// Events until `done` matches one (returned last), or panics after 20 s.
fn events_until(
    rx: &Receiver<ReloadEvent>,
    done: impl Fn(&ReloadEvent) -> bool,
) -> Vec<ReloadEvent> {
    fidius_tests::recv_until(rx, done)
}

/// Events that arrive within `quiet`.
fn drain_for(rx: &Receiver<ReloadEvent>, quiet: Duration) -> Vec<ReloadEvent> {
    let mut seen = Vec::new();
    while let Ok(e) = rx.recv_timeout(quiet) {
        seen.push(e);
    }
    seen
}

fn swaps(events: &[ReloadEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, ReloadEvent::Swapped { .. }))
        .count()
}

fn is_swapped(e: &ReloadEvent) -> bool {
    matches!(e, ReloadEvent::Swapped { .. })
}

fn is_rejected(e: &ReloadEvent) -> bool {
    matches!(e, ReloadEvent::Rejected(_))
}

#[test]
fn reload_now_swaps_and_the_old_version_is_unmapped() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir, false);
    let rx = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();
    assert_eq!(client.version().unwrap(), 1);
    assert_eq!(client.tag("x".into()).unwrap(), "v1:x");
    let first_shadow = hot.status().current.shadow;
    assert_eq!(client.origin().unwrap(), first_shadow.display().to_string());

    dir.deploy("v2", Deploy::Rename);
    assert_eq!(
        hot.reload_now().unwrap(),
        ReloadOutcome::Swapped { from: 1, to: 2 }
    );
    assert_eq!(client.version().unwrap(), 2);
    assert_eq!(client.work(3).unwrap(), 3 * 16 + 2);

    let events = events_until(&rx, |e| matches!(e, ReloadEvent::Unloaded { .. }));
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            ReloadEvent::Detected { .. } => "detected",
            ReloadEvent::Loaded(_) => "loaded",
            ReloadEvent::Swapped { .. } => "swapped",
            ReloadEvent::Unloaded { .. } => "unloaded",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["detected", "loaded", "swapped", "unloaded"]);
    let ReloadEvent::Swapped { from, to } = &events[2] else {
        unreachable!()
    };
    assert_eq!((from.generation, to.generation), (1, 2));
    assert_ne!(from.content_hash, to.content_hash);
    assert!(matches!(
        events[3],
        ReloadEvent::Unloaded {
            generation: 1,
            state: UnloadState::Unmapped
        }
    ));
    assert!(!first_shadow.exists(), "no copy is left on disk");
    assert!(!fidius_hotreload::mapped(&first_shadow).unwrap());
    assert!(dir.shadow_files().is_empty(), "{:?}", dir.shadow_files());
    assert_eq!(dir.mapped_copies(), 1);

    let status = hot.status();
    assert_eq!(status.current.generation, 2);
    assert_eq!(status.reloads, 1);
    assert_eq!(status.rejections, 0);
    assert!(status.draining.is_empty() && status.pinned.is_empty());
}

#[test]
fn identical_content_is_not_reloaded() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir, false);
    dir.deploy("v1", Deploy::Rename);
    assert_eq!(
        hot.reload_now().unwrap(),
        ReloadOutcome::Unchanged { generation: 1 }
    );
    assert_eq!(hot.status().reloads, 0);
    assert!(dir.shadow_files().is_empty(), "{:?}", dir.shadow_files());
    assert_eq!(dir.mapped_copies(), 1);
}

#[test]
fn each_way_of_replacing_the_file_gives_exactly_one_reload() {
    for how in [Deploy::Rename, Deploy::CargoStyle, Deploy::InPlace] {
        let dir = HotDir::new("v1");
        let hot = hot(&dir, true);
        let rx = hot.subscribe();
        let client = VersionedClient::new(hot.handle()).unwrap();
        dir.deploy("v2", how);
        let mut events = events_until(&rx, is_swapped);
        events.extend(drain_for(&rx, Duration::from_millis(400)));
        assert_eq!(swaps(&events), 1, "{how:?}: {events:#?}");
        assert!(!events.iter().any(is_rejected), "{how:?}: {events:#?}");
        assert_eq!(client.version().unwrap(), 2, "{how:?}");
        assert_eq!(hot.status().reloads, 1, "{how:?}");
    }
}

#[test]
fn bad_builds_are_rejected_and_the_good_version_keeps_serving() {
    let dir = HotDir::new("v1");
    let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .load_retries(1)
        .build()
        .unwrap();
    let rx = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();
    let good = std::fs::read(hot_build("v2")).unwrap();
    let mut random = vec![0u8; 50_000];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in &mut random {
        x ^= x << 7;
        x ^= x >> 9;
        *b = x as u8;
    }
    let cases: Vec<(&str, Vec<u8>, Stage)> = vec![
        (
            "another interface",
            std::fs::read(hot_build("other")).unwrap(),
            Stage::Validate,
        ),
        ("random bytes", random, Stage::Load),
        ("truncated", good[..good.len() / 2].to_vec(), Stage::Load),
        ("empty", Vec::new(), Stage::Load),
        ("text", b"not a library\n".to_vec(), Stage::Load),
    ];
    for (i, (what, bytes, stage)) in cases.into_iter().enumerate() {
        dir.deploy_bytes(&bytes, Deploy::Rename);
        let events = events_until(&rx, is_rejected);
        let Some(ReloadEvent::Rejected(r)) = events.last() else {
            unreachable!()
        };
        assert_eq!(r.stage, stage, "{what}: {r}");
        assert_eq!(r.path, dir.file, "{what}");
        assert!(
            r.to_string().contains(&dir.file.display().to_string()),
            "{what}: {r}"
        );
        assert_eq!(
            client.version().unwrap(),
            1,
            "{what}: the good version serves"
        );
        assert_eq!(hot.status().rejections, i as u64 + 1);
        assert_eq!(swaps(&events), 0);
    }
    // The interface mismatch names both sides.
    dir.deploy("other", Deploy::Rename);
    let events = events_until(&rx, is_rejected);
    let Some(ReloadEvent::Rejected(r)) = events.last() else {
        unreachable!()
    };
    assert!(
        r.reason.contains("Versioned") && r.reason.contains("Unrelated"),
        "{r}"
    );

    // A fixed build then reloads normally.
    dir.deploy("v3", Deploy::Rename);
    events_until(&rx, is_swapped);
    assert_eq!(client.version().unwrap(), 3);
    // Rejected copies were not kept.
    std::thread::sleep(Duration::from_millis(100));
    assert!(dir.shadow_files().is_empty(), "{:?}", dir.shadow_files());
    assert_eq!(dir.mapped_copies(), 1);
}

#[test]
fn a_vanished_file_leaves_the_current_version_serving() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir, true);
    let rx = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();
    std::fs::remove_file(&dir.file).unwrap();
    let events = events_until(&rx, |e| matches!(e, ReloadEvent::Removed { .. }));
    assert_eq!(swaps(&events), 0);
    assert_eq!(client.version().unwrap(), 1);
    // reload_now on a missing file is a rejection at the detect stage.
    let r = hot.reload_now().unwrap_err();
    assert_eq!(r.stage, Stage::Detect);
    assert_eq!(client.version().unwrap(), 1);
    // And the file coming back reloads.
    dir.deploy("v2", Deploy::Rename);
    events_until(&rx, is_swapped);
    assert_eq!(client.version().unwrap(), 2);
}

/// A call to `wait_for` running on its own thread: it blocks in the plugin until
/// `finish` writes the file it waits for, and returns the plugin's version.
struct SlowCall {
    release: PathBuf,
    thread: std::thread::JoinHandle<u32>,
}

impl SlowCall {
    /// Starts the call and gives it time to enter the plugin.
    fn start(dir: &HotDir, client: &Arc<VersionedClient<HotHandle>>) -> Self {
        let release = dir.dir.path().join("release-slow-call");
        let thread = {
            let client = client.clone();
            let release = release.display().to_string();
            std::thread::spawn(move || client.wait_for(release).unwrap())
        };
        std::thread::sleep(Duration::from_millis(100));
        Self { release, thread }
    }

    /// Lets the call return; its result.
    fn finish(self) -> u32 {
        std::fs::write(&self.release, b"go").unwrap();
        self.thread.join().unwrap()
    }
}

/// With the hot plugin (and its worker) gone but a handle still in use, an old
/// version still in a call is closed once that call returns, not kept until the last
/// handle goes.
#[test]
fn an_old_version_drains_after_the_hot_plugin_is_dropped() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir, false);
    let client = Arc::new(VersionedClient::new(hot.handle()).unwrap());
    let slow = SlowCall::start(&dir, &client);
    let old_shadow = hot.status().current.shadow;
    dir.deploy("v2", Deploy::Rename);
    hot.reload_now().unwrap();
    drop(hot);
    assert!(
        fidius_hotreload::mapped(&old_shadow).unwrap(),
        "v1 is still in the slow call"
    );
    assert_eq!(slow.finish(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fidius_hotreload::mapped(&old_shadow).unwrap() || old_shadow.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "v1 was not closed after its last call"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(client.version().unwrap(), 2, "the handle still serves v2");
}

#[test]
fn a_slow_call_keeps_its_version_loaded_until_it_returns() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir, false);
    let rx = hot.subscribe();
    let client = Arc::new(VersionedClient::new(hot.handle()).unwrap());
    let slow = SlowCall::start(&dir, &client);
    let old_shadow = hot.status().current.shadow;

    dir.deploy("v2", Deploy::Rename);
    hot.reload_now().unwrap();
    assert_eq!(
        client.version().unwrap(),
        2,
        "new calls go to the new version"
    );
    let events = events_until(&rx, |e| matches!(e, ReloadEvent::Draining { .. }));
    assert!(matches!(
        events.last(),
        Some(ReloadEvent::Draining {
            generation: 1,
            in_flight: 1
        })
    ));
    let status = hot.status();
    assert_eq!(status.draining.len(), 1);
    assert_eq!(status.draining[0].generation, 1);
    assert_eq!(status.draining[0].in_flight, 1, "the slow call");
    assert!(
        fidius_hotreload::mapped(&old_shadow).unwrap(),
        "v1 is still loaded"
    );

    assert_eq!(slow.finish(), 1, "the slow call finished on version 1");
    events_until(&rx, |e| {
        matches!(
            e,
            ReloadEvent::Unloaded {
                generation: 1,
                state: UnloadState::Unmapped
            }
        )
    });
    assert!(!fidius_hotreload::mapped(&old_shadow).unwrap());
    assert!(!old_shadow.exists());
    assert!(hot.status().draining.is_empty());
}

#[test]
fn many_threads_call_through_hundreds_of_reloads_without_a_failure() {
    const THREADS: usize = 4;
    const RELOADS: usize = 210;
    let dir = HotDir::new("v1");
    let hot = hot(&dir, false);
    let handle = hot.handle();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let client = VersionedClient::new(handle.clone()).unwrap();
            let stop = stop.clone();
            let calls = calls.clone();
            let handle = handle.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let before = handle.generation();
                    let origin = client.origin().expect("origin call failed");
                    let generation = generation_of(&origin);
                    assert!(
                        generation >= before,
                        "thread {t}: served by generation {generation}, but {before} was current when the call began"
                    );
                    let x = i * THREADS as u64 + t as u64;
                    let r = client.work(x).expect("work call failed");
                    assert_eq!(r / 16, x);
                    assert!((1..=3).contains(&(r % 16)));
                    let tag = client.tag(format!("{x}")).expect("tag call failed");
                    assert!(tag.ends_with(&format!(":{x}")));
                    i += 1;
                    calls.fetch_add(3, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let builds = ["v2", "v3", "v1"];
    for i in 0..RELOADS {
        dir.deploy(builds[i % 3], Deploy::Rename);
        match hot.reload_now() {
            Ok(ReloadOutcome::Swapped { .. }) => {}
            other => panic!("reload {i}: {other:?}"),
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("a calling thread failed");
    }
    assert_eq!(hot.status().reloads, RELOADS as u64);
    assert!(calls.load(Ordering::Relaxed) > 0);

    // Drained versions were closed: only the current copy is mapped, and no copy is
    // on disk (the worker may still be finishing the last retirements).
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir.mapped_copies() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(dir.mapped_copies(), 1);
    assert!(dir.shadow_files().is_empty(), "{:?}", dir.shadow_files());
    assert!(hot.status().pinned.is_empty());
}

/// The generation in a copy's name: `/memfd:fidius:libhot.so:<hash>:g<N>:<nonce>` in
/// memory, `libhot.fidius-g<N>-p<pid>-<nonce>.so` in the shadow directory.
fn generation_of(origin: &str) -> u64 {
    let name = origin.rsplit('/').next().unwrap();
    name.split([':', '-', '.'])
        .find_map(|part| part.strip_prefix('g')?.parse().ok())
        .unwrap_or_else(|| panic!("no generation in {origin}"))
}

#[test]
fn pause_hold_and_resume() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir, true);
    let rx = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();

    hot.pause();
    dir.deploy("v2", Deploy::Rename);
    let events = drain_for(&rx, Duration::from_millis(300));
    assert_eq!(swaps(&events), 0, "paused: {events:#?}");
    assert_eq!(client.version().unwrap(), 1);
    assert!(hot.status().paused);
    hot.resume();
    events_until(&rx, is_swapped);
    assert_eq!(client.version().unwrap(), 2);

    {
        let _hold = hot.hold();
        dir.deploy("v3", Deploy::Rename);
        let events = drain_for(&rx, Duration::from_millis(300));
        assert_eq!(swaps(&events), 0, "held: {events:#?}");
        assert_eq!(client.version().unwrap(), 2);
    }
    events_until(&rx, is_swapped);
    assert_eq!(client.version().unwrap(), 3);
}

#[test]
fn callbacks_see_the_initial_load_and_every_swap() {
    let dir = HotDir::new("v1");
    let seen = Arc::new(parking_lot_free::Log::default());
    let log = seen.clone();
    let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .watch(false)
        .on_event(move |e| log.push(e))
        .build()
        .unwrap();
    dir.deploy("v2", Deploy::Rename);
    hot.reload_now().unwrap();
    let kinds = seen.kinds();
    assert_eq!(&kinds[..2], ["detected", "loaded"], "{kinds:?}");
    assert!(kinds.contains(&"swapped"), "{kinds:?}");
}

/// A tiny event log for callbacks.
mod parking_lot_free {
    use fidius_hotreload::ReloadEvent;
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Log(Mutex<Vec<&'static str>>);

    impl Log {
        pub fn push(&self, e: &ReloadEvent) {
            let kind = match e {
                ReloadEvent::Detected { .. } => "detected",
                ReloadEvent::Loaded(_) => "loaded",
                ReloadEvent::Swapped { .. } => "swapped",
                ReloadEvent::Unloaded { .. } => "unloaded",
                ReloadEvent::Rejected(_) => "rejected",
                _ => "other",
            };
            self.0.lock().unwrap().push(kind);
        }
        pub fn kinds(&self) -> Vec<&'static str> {
            self.0.lock().unwrap().clone()
        }
    }
}

#[test]
fn the_first_load_is_validated_too() {
    let dir = HotDir::new("other");
    let err = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .build()
        .err()
        .expect("another interface must be refused");
    assert_eq!(err.stage, Stage::Validate);
    assert!(matches!(
        err.error.as_deref(),
        Some(fidius::LoadError::InterfaceMismatch {
            mismatch: fidius::InterfaceMismatch::Name { .. },
            ..
        })
    ));
    assert!(dir.shadow_files().is_empty(), "{:?}", dir.shadow_files());
}

#[test]
fn shadow_copies_left_by_a_crashed_run_are_removed_on_start() {
    let dir = HotDir::new("v1");
    std::fs::create_dir_all(&dir.shadow).unwrap();
    let stale = dir.shadow.join("libhot.fidius-g7-p4000000-00aa.so");
    std::fs::write(&stale, b"left over").unwrap();
    let _hot = hot(&dir, false);
    assert!(!stale.exists());
}

#[test]
fn dropping_everything_removes_the_shadow_copies() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir, false);
    let client = VersionedClient::new(hot.handle()).unwrap();
    dir.deploy("v2", Deploy::Rename);
    hot.reload_now().unwrap();
    drop(hot);
    // Clients keep working after the hot plugin itself is gone.
    assert_eq!(client.version().unwrap(), 2);
    drop(client);
    assert!(dir.shadow_files().is_empty(), "{:?}", dir.shadow_files());
    assert_eq!(dir.mapped_copies(), 0);
}

#[test]
fn not_implemented_and_errors_pass_through_the_hot_handle() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir, false);
    let handle = hot.handle();
    let err = fidius::PluginCaller::call_with(&handle, 99, &[], |_| Ok(())).unwrap_err();
    assert!(
        matches!(err, CallError::InvalidMethodIndex { .. }),
        "{err:?}"
    );
    assert_eq!(handle.info().name, "Hot");
}

#[test]
fn a_plugin_that_pins_itself_is_reported_pinned() {
    let dir = HotDir::new("pin");
    let hot = hot(&dir, false);
    let rx = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();
    // This thread stays alive, holding the plugin's thread-local destructor.
    assert_eq!(client.work(1).unwrap(), 16 + 2);
    let pinned_shadow = hot.status().current.shadow;
    dir.deploy("v3", Deploy::Rename);
    hot.reload_now().unwrap();
    let events = events_until(&rx, |e| matches!(e, ReloadEvent::Unloaded { .. }));
    assert!(
        matches!(
            events.last(),
            Some(ReloadEvent::Unloaded {
                generation: 1,
                state: UnloadState::Pinned
            })
        ),
        "{events:#?}"
    );
    assert_eq!(hot.status().pinned, vec![1]);
    // Honest: it is still mapped (its file is gone from the shadow directory).
    assert!(fidius_hotreload::mapped(&pinned_shadow).unwrap());
    assert_eq!(client.version().unwrap(), 3);
}

#[test]
fn retention_is_bounded_and_the_new_build_waits() {
    let dir = HotDir::new("v1");
    let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .watch(false)
        .max_retained(1)
        .build()
        .unwrap();
    let client = Arc::new(VersionedClient::new(hot.handle()).unwrap());
    let slow = SlowCall::start(&dir, &client);
    dir.deploy("v2", Deploy::Rename);
    hot.reload_now().unwrap();
    // Version 1 drains; with a bound of one, version 3 must wait.
    dir.deploy("v3", Deploy::Rename);
    let r = hot.reload_now().unwrap_err();
    assert_eq!(r.stage, Stage::Retention, "{r}");
    assert_eq!(client.version().unwrap(), 2);
    assert_eq!(slow.finish(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hot.status().draining.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    hot.reload_now().unwrap();
    assert_eq!(client.version().unwrap(), 3);
}

#[test]
fn a_stream_started_on_version_1_finishes_on_version_1() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir, false);
    let rx = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();
    let gate = dir.dir.path().join("gate").display().to_string();
    let open = |i: u32| std::fs::write(format!("{gate}.{i}"), b"").unwrap();

    let mut stream = client.gated(3, gate.clone()).unwrap();
    open(0);
    assert_eq!(stream.next(), Some(Ok(1)));

    dir.deploy("v2", Deploy::Rename);
    hot.reload_now().unwrap();
    assert_eq!(client.version().unwrap(), 2, "new calls go to version 2");
    assert_eq!(
        hot.status().draining.len(),
        1,
        "version 1 drains while the stream lives"
    );

    open(1);
    open(2);
    let rest: Vec<u32> = stream.map(Result::unwrap).collect();
    assert_eq!(rest, [1, 1], "the stream finished on version 1");
    events_until(&rx, |e| {
        matches!(
            e,
            ReloadEvent::Unloaded {
                generation: 1,
                state: UnloadState::Unmapped
            }
        )
    });
}

#[test]
fn the_whole_hostile_corpus_is_rejected_while_the_good_version_serves() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir, false);
    let client = VersionedClient::new(hot.handle()).unwrap();
    let forged = std::fs::read(fidius_tests::fixture("forged")).unwrap();
    // The forged library picks its malformation from its own file name, so each variant
    // is loaded from a file of that name, through a hot plugin of its own: a first load
    // goes through the same copy-load-validate pipeline as a reload.
    let variants = [
        ("null_registry", "returned null"),
        ("bad_magic", "bad registry magic"),
        ("registry_version", "registry version"),
        ("abi", "fidius ABI"),
        ("too_small", "descriptor is 16 bytes"),
        ("null_name", "plugin name is null"),
        ("null_vtable", "null vtable"),
        ("absurd_count", "exceeds the limit"),
        ("duplicate", "two plugins are both named"),
    ];
    for (variant, words) in variants {
        let file = dir.dir.path().join(format!("libforged_{variant}.so"));
        std::fs::write(&file, &forged).unwrap();
        let err = HotPlugin::builder::<dyn Versioned>(&file, "Hot")
            .shadow_dir(&dir.shadow)
            .watch(false)
            .build()
            .err()
            .unwrap_or_else(|| panic!("{variant} loaded"));
        assert_eq!(err.stage, Stage::Load, "{variant}: {err}");
        assert!(err.reason.contains(words), "{variant}: {err}");
        assert_eq!(client.version().unwrap(), 1);
    }
    // Through the running hot plugin: other fidius libraries and a non-plugin library.
    let other_kinds: [(&str, Vec<u8>, Stage); 4] = [
        (
            "the plugin built against a newer interface version",
            std::fs::read(hot_build("newer")).unwrap(),
            Stage::Validate,
        ),
        (
            "a library that is not a fidius plugin",
            std::fs::read(fidius_tests::fixture("not-a-plugin")).unwrap(),
            Stage::Load,
        ),
        (
            "a fidius library of other interfaces",
            std::fs::read(fidius_tests::fixture("calc-variants")).unwrap(),
            Stage::Validate,
        ),
        ("a truncated header", forged[..100].to_vec(), Stage::Load),
    ];
    for (what, bytes, stage) in other_kinds {
        dir.deploy_bytes(&bytes, Deploy::Rename);
        let r = hot.reload_now().unwrap_err();
        assert_eq!(r.stage, stage, "{what}: {r}");
        if what.contains("newer") {
            assert!(
                matches!(
                    r.error.as_deref(),
                    Some(fidius::LoadError::InterfaceMismatch {
                        mismatch: fidius::InterfaceMismatch::Version {
                            expected: 1,
                            found: 2
                        },
                        ..
                    })
                ),
                "{r}"
            );
        }
        assert_eq!(client.version().unwrap(), 1, "{what}");
    }
    assert_eq!(hot.status().rejections, 4);
    assert!(dir.shadow_files().is_empty(), "{:?}", dir.shadow_files());
    assert_eq!(dir.mapped_copies(), 1);
}

/// An old version's `Unloaded` always comes after the `Swapped` that retired it,
/// even while other threads look at the status (which gives old versions up too).
#[test]
fn unloaded_never_overtakes_its_swap() {
    let dir = HotDir::new("v1");
    let hot = Arc::new(hot(&dir, false));
    let rx = hot.subscribe();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lookers: Vec<_> = (0..2)
        .map(|_| {
            let (hot, stop) = (hot.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = hot.status();
                }
            })
        })
        .collect();
    for i in 0..30 {
        dir.deploy(if i % 2 == 0 { "v2" } else { "v1" }, Deploy::Rename);
        hot.reload_now().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for looker in lookers {
        looker.join().unwrap();
    }
    let mut swapped_out = std::collections::HashSet::new();
    let mut unloaded = 0;
    for event in drain_for(&rx, Duration::from_millis(500)) {
        match event {
            ReloadEvent::Swapped { from, .. } => {
                swapped_out.insert(from.generation);
            }
            ReloadEvent::Unloaded { generation, .. } => {
                assert!(
                    swapped_out.contains(&generation),
                    "generation {generation} was reported unloaded before its swap"
                );
                unloaded += 1;
            }
            _ => {}
        }
    }
    assert_eq!(unloaded, 30);
}
