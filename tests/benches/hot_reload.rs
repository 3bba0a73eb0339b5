//! Hot reloading, measured: call overhead of the hot-reloading client against a plain
//! handle, reload latency, and call latency while swaps happen.
//!
//! Run with `cargo bench -p fidius-tests --bench hot_reload`. See BENCHMARKS.md.

use fidius::host::PluginHost;
use fidius_hotreload::{HotPlugin, ReloadEvent};
use fidius_tests::{hot_build, Deploy, HotDir};
use hot_interface::{Versioned, VersionedClient};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median_ns(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// ns per call of `f`, median of interleaved batches.
fn per_call(cases: &mut [(&str, &mut dyn FnMut())]) -> Vec<f64> {
    const ROUNDS: usize = 21;
    const ITERS: u32 = 200_000;
    let mut samples = vec![Vec::new(); cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, f)) in cases.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..ITERS {
                f();
            }
            samples[i].push(t.elapsed().as_nanos() as f64 / ITERS as f64);
        }
    }
    samples.into_iter().map(median_ns).collect()
}

fn percentiles(mut v: Vec<u64>) -> String {
    v.sort_unstable();
    let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    format!(
        "p50 {:>6} ns  p99 {:>7} ns  p99.9 {:>8} ns  max {:>9} ns  ({} calls)",
        p(0.5),
        p(0.99),
        p(0.999),
        v[v.len() - 1],
        v.len()
    )
}

/// `n` reloads, cycling through v2, v3, v1: for each, the time from the new file in
/// place to the first call it serves, in ms, sorted.
fn reload_latencies(
    dir: &HotDir,
    client: &VersionedClient<fidius_hotreload::HotHandle>,
    n: usize,
) -> Vec<f64> {
    let builds = [("v2", 2), ("v3", 3), ("v1", 1)];
    let start = builds
        .iter()
        .position(|&(_, v)| v == client.version().unwrap())
        .map_or(0, |i| i + 1);
    let mut latencies = Vec::new();
    for i in 0..n {
        let (which, expected) = builds[(start + i) % 3];
        std::thread::sleep(Duration::from_millis(30));
        dir.deploy(which, Deploy::Rename);
        let t = Instant::now();
        while client.version().unwrap() != expected {
            if t.elapsed() > Duration::from_secs(10) {
                panic!("reload {i} did not happen");
            }
        }
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

fn main() {
    let dir = HotDir::new("v1");
    let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .build()
        .unwrap();
    let hot_client = VersionedClient::new(hot.handle()).unwrap();
    let plain = PluginHost::builder()
        .expect_interface::<dyn Versioned>()
        .build()
        .load_from(hot_build("v1"), "Hot")
        .unwrap();
    let plain_client = VersionedClient::new(plain).unwrap();

    println!("fidius hot-reload benchmark (release plugins, default settings)");
    println!(
        "  (copies: {})",
        if fidius_hotreload::in_memory_copies() {
            "in memory (memfd)"
        } else {
            "files in the private shadow directory"
        }
    );
    println!("\ncall overhead: hot-reloading client vs plain handle, same build");
    println!(
        "  (reader fences: {})",
        if fidius_hotreload::uses_membarrier() {
            "none, writers use membarrier"
        } else {
            "one full fence per call (no membarrier)"
        }
    );
    let handle_only = hot.handle();
    // The mechanism the hot client used before its hazard slots, measured in the same
    // run for comparison: one arc-swap load and the drop of its guard.
    let arc_swap = arc_swap::ArcSwap::from_pointee(7u64);
    let results = per_call(&mut [
        ("arc-swap load + guard drop", &mut || {
            black_box(**black_box(&arc_swap).load());
        }),
        ("hot handle: protect the current version only", &mut || {
            black_box(black_box(&handle_only).generation());
        }),
        ("plain work(u64) -> u64", &mut || {
            black_box(plain_client.work(black_box(7)).unwrap());
        }),
        ("hot   work(u64) -> u64", &mut || {
            black_box(hot_client.work(black_box(7)).unwrap());
        }),
        ("plain tag(String) -> String", &mut || {
            black_box(plain_client.tag(black_box(String::from("x"))).unwrap());
        }),
        ("hot   tag(String) -> String", &mut || {
            black_box(hot_client.tag(black_box(String::from("x"))).unwrap());
        }),
    ]);
    let names = [
        "arc-swap load + guard drop (for comparison)",
        "hazard slot: announce, re-read, clear",
        "plain work(u64) -> u64 (scalar fast path)",
        "hot   work(u64) -> u64 (scalar fast path)",
        "plain tag(String) -> String (text entry)",
        "hot   tag(String) -> String (text entry)",
    ];
    for (name, ns) in names.iter().zip(&results) {
        println!("  {name:<46} {ns:>8.1} ns/call");
    }
    println!(
        "  hot - plain: {:+.1} ns (scalar), {:+.1} ns (string)",
        results[3] - results[2],
        results[5] - results[4]
    );

    // Reload latency: from the moment the new file is in place (rename done) to the
    // first call the new version serves; on an idle machine, then with 2 x cores
    // threads calling the hot plugin as fast as they can (every core busy, as on a
    // production host when a hotfix lands).
    println!("\nreload latency: file in place -> first call served by the new version");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    for busy in [0, 2 * cores] {
        let stop = Arc::new(AtomicBool::new(false));
        let callers: Vec<_> = (0..busy)
            .map(|_| {
                let (client, stop) = (VersionedClient::new(hot.handle()).unwrap(), stop.clone());
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = x.wrapping_add(client.work(x).unwrap());
                    }
                    black_box(x);
                })
            })
            .collect();
        let latencies = reload_latencies(&dir, &hot_client, 30);
        stop.store(true, Ordering::Relaxed);
        for caller in callers {
            caller.join().unwrap();
        }
        println!(
            "  {busy:>2} busy callers: {} reloads: median {:.1} ms, p95 {:.1} ms, max {:.1} ms (debounce {} ms)",
            latencies.len(),
            latencies[latencies.len() / 2],
            latencies[latencies.len() * 95 / 100],
            latencies[latencies.len() - 1],
            fidius_hotreload::DEFAULT_DEBOUNCE.as_millis()
        );
    }

    let builds = ["v2", "v3", "v1"];

    // The pipeline alone: `reload_now` copies, loads, validates and swaps (and closes
    // the old version, which no call holds), with no watcher and no debounce. In-memory
    // copies (Linux's default) against file copies in the private shadow directory,
    // alternating round by round.
    println!("\nreload_now: copy, load, validate, swap, close the old version");
    let stores: Vec<(&str, bool)> = if fidius_hotreload::in_memory_copies() {
        vec![
            ("in-memory copies (memfd)", true),
            ("file copies (shadow dir)", false),
        ]
    } else {
        vec![("file copies (shadow dir)", false)]
    };
    let pipelines: Vec<(HotDir, HotPlugin)> = stores
        .iter()
        .map(|&(_, in_memory)| {
            let dir = HotDir::new("v1");
            let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
                .shadow_dir(&dir.shadow)
                .copies_in_memory(in_memory)
                .watch(false)
                .build()
                .unwrap();
            (dir, hot)
        })
        .collect();
    let mut samples = vec![Vec::new(); pipelines.len()];
    for round in 0..30 {
        for (i, (dir, hot)) in pipelines.iter().enumerate() {
            dir.deploy(builds[round % 3], Deploy::Rename);
            let t = Instant::now();
            hot.reload_now().unwrap();
            samples[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    for ((name, _), mut s) in stores.iter().zip(samples) {
        s.sort_by(f64::total_cmp);
        println!(
            "  {name:<26} median {:.2} ms, p90 {:.2} ms ({} reloads of a {:.1} MB library)",
            s[s.len() / 2],
            s[s.len() * 9 / 10],
            s.len(),
            std::fs::metadata(hot_build("v1")).unwrap().len() as f64 / 1e6
        );
    }
    drop(pipelines);

    // Rollback: a build that panics in every call, on probation with a threshold of
    // one failure; from the failing call's return to the previous version serving.
    // A fresh plugin each round: the bad build is quarantined after its rollback.
    println!("\nrollback: from the call that fails probation to the previous version serving");
    let mut samples = Vec::new();
    for _ in 0..20 {
        let dir = HotDir::new("v1");
        let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
            .shadow_dir(&dir.shadow)
            .watch(false)
            .probation(fidius_hotreload::Probation::default().max_failures(1))
            .build()
            .unwrap();
        let client = VersionedClient::new(hot.handle()).unwrap();
        dir.deploy("panics", Deploy::Rename);
        hot.reload_now().unwrap();
        assert!(client.version().is_err(), "the bad build serves");
        let failed = Instant::now();
        while client.version().is_err() {
            std::hint::spin_loop();
        }
        samples.push(failed.elapsed().as_nanos() as u64);
    }
    samples.sort_unstable();
    println!(
        "  20 rollbacks: p50 {:.3} ms, max {:.3} ms (with max_failures(1))",
        samples[samples.len() / 2] as f64 / 1e6,
        samples[samples.len() - 1] as f64 / 1e6
    );

    // State handoff: two threads bump counters while the plugin is reloaded 20 times;
    // each reload hands the state over with calls held off.
    println!("\nstate handoff: 2 threads calling through 20 reloads that hand the state over");
    for (label, bytes) in [("1 KiB", 1u64 << 10), ("10 MiB", 10 << 20)] {
        use counter_interface::{Counter, CounterClient};
        let dir = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
        let file = dir.path().join(fidius_tests::lib_file("counter"));
        fidius_tests::place_build_from(&fidius_tests::counter_build("v1"), &file);
        let hot = HotPlugin::builder::<dyn Counter>(&file, "Counting")
            .shadow_dir(dir.path().join("shadow"))
            .watch(false)
            .build()
            .unwrap();
        let events = hot.subscribe();
        let client = Arc::new(CounterClient::new(hot.handle()).unwrap());
        client.ballast(bytes).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let callers: Vec<_> = (0..2u32)
            .map(|key| {
                let (client, stop) = (client.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut latencies = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        client.bump(key, 1).unwrap();
                        latencies.push(t.elapsed().as_nanos() as u64);
                    }
                    latencies
                })
            })
            .collect();
        for i in 0..20 {
            let build = if i % 2 == 0 { "v2" } else { "v1" };
            fidius_tests::place_build_from(&fidius_tests::counter_build(build), &file);
            hot.reload_now().unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        let mut latencies: Vec<u64> = callers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        latencies.sort_unstable();
        let (mut paused, mut drained): (Vec<Duration>, Vec<Duration>) = events
            .try_iter()
            .filter_map(|e| match e {
                ReloadEvent::StateHandedOver {
                    paused, drained, ..
                } => Some((paused, drained)),
                _ => None,
            })
            .unzip();
        paused.sort();
        drained.sort();
        let at = |v: &[u64], q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1e3;
        println!(
            "  {label:>6} state: calls p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({} calls); \
             held off per handoff: median {:?}, max {:?}; of which waiting for calls to leave: max {:?}",
            at(&latencies, 0.5),
            at(&latencies, 0.99),
            *latencies.last().unwrap() as f64 / 1e3,
            latencies.len(),
            paused[paused.len() / 2],
            paused[paused.len() - 1],
            drained[drained.len() - 1],
        );
    }

    // Call latency with and without swaps: two threads call for a second each way.
    println!("\ncall latency percentiles, 2 calling threads, 1 s each");
    let handle = hot.handle();
    let measure = |swapping: bool| -> Vec<u64> {
        let stop = Arc::new(AtomicBool::new(false));
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let client = VersionedClient::new(handle.clone()).unwrap();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut lat = Vec::with_capacity(1 << 20);
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        black_box(client.work(black_box(3)).unwrap());
                        lat.push(t.elapsed().as_nanos() as u64);
                    }
                    lat
                })
            })
            .collect();
        let start = Instant::now();
        let mut swaps = 0;
        while start.elapsed() < Duration::from_secs(1) {
            if swapping {
                dir.deploy(builds[swaps % 3], Deploy::Rename);
                hot.reload_now().unwrap();
                swaps += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        if swapping {
            println!("  ({swaps} swaps during the run)");
        }
        callers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    };
    let quiet = measure(false);
    println!("  without swaps: {}", percentiles(quiet));
    let busy = measure(true);
    println!("  with swaps:    {}", percentiles(busy));
}
