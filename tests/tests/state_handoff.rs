//! State handoff in hot reloading, with real builds that keep counters in memory:
//! the counters survive a hundred reloads under four threads exactly, a build that
//! refuses the state is rejected with the old version serving its state on, and a
//! build that does not opt in starts afresh.
#![cfg(target_os = "linux")]

use counter_interface::{Counter, CounterClient};
use fidius_hotreload::{HotPlugin, HotPluginBuilder, ReloadEvent, Stage};
use fidius_tests::{counter_build, place_build_from};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

struct Counters {
    _dir: tempfile::TempDir,
    file: PathBuf,
    hot: HotPlugin,
}

fn counters() -> Counters {
    counters_with(|builder| builder)
}

/// Build v1 of the counter plugin, hot-reloading (on command only), with whatever
/// `configure` adds.
fn counters_with(configure: impl FnOnce(HotPluginBuilder) -> HotPluginBuilder) -> Counters {
    let dir = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let file = dir.path().join(fidius_tests::lib_file("counter"));
    place_build_from(&counter_build("v1"), &file);
    let builder = HotPlugin::builder::<dyn Counter>(&file, "Counting")
        .shadow_dir(dir.path().join("shadow"))
        .watch(false);
    let hot = configure(builder).build().unwrap();
    Counters {
        _dir: dir,
        file,
        hot,
    }
}

#[test]
fn counters_survive_a_hundred_reloads_under_four_threads_exactly() {
    let c = counters();
    let events = c.hot.subscribe();
    let client = Arc::new(CounterClient::new(c.hot.handle()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4u32)
        .map(|key| {
            let (client, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut bumps = 0u64;
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let value = client.bump(key, 1).expect("a call failed");
                    bumps += 1;
                    assert_eq!(value, bumps, "counter {key} went from {last} to {value}");
                    last = value;
                }
                bumps
            })
        })
        .collect();
    for i in 0..100 {
        let build = if i % 2 == 0 { "v2" } else { "v1" };
        place_build_from(&counter_build(build), &c.file);
        c.hot.reload_now().unwrap();
        assert_eq!(client.build().unwrap(), build);
    }
    stop.store(true, Ordering::Relaxed);
    let bumps: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (key, bumps) in bumps.iter().enumerate() {
        assert_eq!(client.value(key as u32).unwrap(), *bumps, "counter {key}");
    }
    let paused: Vec<std::time::Duration> = events
        .try_iter()
        .filter_map(|e| match e {
            ReloadEvent::StateHandedOver { paused, .. } => Some(paused),
            _ => None,
        })
        .collect();
    assert_eq!(paused.len(), 100, "one handoff per reload");
    eprintln!(
        "{} bumps over 100 handoffs; calls held off at most {:?}",
        bumps.iter().sum::<u64>(),
        paused.iter().max().unwrap()
    );
}

#[test]
fn a_build_that_refuses_the_state_is_rejected_and_the_old_one_keeps_it() {
    let c = counters();
    let client = CounterClient::new(c.hot.handle()).unwrap();
    client.bump(7, 41).unwrap();
    place_build_from(&counter_build("refuse"), &c.file);
    let refused = c.hot.reload_now().unwrap_err();
    assert_eq!(refused.stage, Stage::State, "{refused}");
    assert!(refused.reason.contains("STATE_REFUSED"), "{refused}");
    assert_eq!(client.build().unwrap(), "v1");
    assert_eq!(
        client.bump(7, 1).unwrap(),
        42,
        "the state is intact, and serving"
    );
}

#[test]
fn a_build_that_does_not_opt_in_starts_afresh() {
    let c = counters();
    let client = CounterClient::new(c.hot.handle()).unwrap();
    client.bump(1, 5).unwrap();
    place_build_from(&counter_build("stateless"), &c.file);
    c.hot.reload_now().unwrap();
    assert_eq!(client.build().unwrap(), "stateless");
    assert_eq!(client.value(1).unwrap(), 0);
}

/// A build that takes the state over, then fails its probation: the rollback hands
/// the state back, counters and all.
#[test]
fn a_rollback_carries_the_state_back() {
    let c = counters_with(|builder| {
        builder.probation(fidius_hotreload::Probation::default().max_failures(1))
    });
    let client = CounterClient::new(c.hot.handle()).unwrap();
    client.bump(3, 40).unwrap();
    place_build_from(&counter_build("panics"), &c.file);
    c.hot.reload_now().unwrap();
    assert_eq!(client.build().unwrap(), "panics");
    assert_eq!(client.value(3).unwrap(), 40, "it took the state over");
    assert!(client.bump(3, 1).is_err());
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client.build().unwrap() != "v1" {
        assert!(std::time::Instant::now() < until, "never rolled back");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(
        client.bump(3, 2).unwrap(),
        42,
        "the state came back with it"
    );
}

/// In directory mode too: each plugin of a library hands its state to the next
/// build of that library.
#[test]
fn a_hot_directory_hands_state_over_as_well() {
    use fidius_hotreload::HotDirectory;
    let dir = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let library = plugins.join(fidius_tests::lib_file("counter"));
    place_build_from(&counter_build("v1"), &library);
    let hot = HotDirectory::builder::<dyn Counter>(&plugins)
        .shadow_dir(dir.path().join("shadow"))
        .watch(false)
        .build()
        .unwrap();
    let client = CounterClient::new(hot.get("Counting").unwrap()).unwrap();
    client.bump(9, 9).unwrap();
    place_build_from(&counter_build("v2"), &library);
    hot.reload_now(&library).unwrap();
    assert_eq!(client.build().unwrap(), "v2");
    assert_eq!(client.bump(9, 1).unwrap(), 10);
}
