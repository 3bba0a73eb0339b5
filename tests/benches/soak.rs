//! Soak: several threads call a hot-reloading plugin for minutes while its file is
//! replaced hundreds of times (some of them with broken builds), then report what is
//! left behind.
//!
//! `cargo bench -p fidius-tests --bench soak` (FIDIUS_SOAK_SECS sets the duration,
//! default 120). See BENCHMARKS.md.

use fidius_hotreload::HotPlugin;
use fidius_tests::{hot_build, Deploy, HotDir};
use hot_interface::{Versioned, VersionedClient};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let secs: u64 = std::env::var("FIDIUS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let dir = HotDir::new("v1");
    let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .build()
        .unwrap();
    let rss_start = rss_kib();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let client = VersionedClient::new(hot.handle()).unwrap();
            let (stop, calls, failures) = (stop.clone(), calls.clone(), failures.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let ok = match i % 3 {
                        0 => client.work(i).is_ok_and(|r| r / 16 == i),
                        1 => client
                            .tag(format!("{t}"))
                            .is_ok_and(|s| s.ends_with(&format!(":{t}"))),
                        _ => client.version().is_ok_and(|v| (1..=3).contains(&v)),
                    };
                    calls.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();

    let good = ["v2", "v3", "v1"];
    let truncated = {
        let bytes = std::fs::read(hot_build("v2")).unwrap();
        bytes[..bytes.len() / 2].to_vec()
    };
    let start = Instant::now();
    let mut deploys = 0usize;
    while start.elapsed() < Duration::from_secs(secs) {
        if deploys % 10 == 9 {
            dir.deploy_bytes(&truncated, Deploy::Rename);
        } else {
            dir.deploy(good[deploys % 3], Deploy::Rename);
        }
        deploys += 1;
        std::thread::sleep(Duration::from_millis(120));
    }
    // Leave it on a good build, let the last events settle.
    dir.deploy("v1", Deploy::Rename);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = hot.status();
    println!("fidius soak: {secs} s, 4 calling threads, a replacement every 120 ms");
    println!("  file replacements       {deploys} (every 10th a truncated build)");
    println!(
        "  reloads / rejections    {} / {}",
        status.reloads, status.rejections
    );
    println!(
        "  calls served            {}",
        calls.load(Ordering::Relaxed)
    );
    println!(
        "  failed calls            {}",
        failures.load(Ordering::Relaxed)
    );
    println!("  versions still draining {}", status.draining.len());
    println!("  pinned versions         {}", status.pinned.len());
    println!("  mapped private copies   {}", dir.mapped_copies());
    println!("  shadow files on disk    {}", dir.shadow_files().len());
    println!(
        "  RSS start / end         {} KiB / {} KiB",
        rss_start,
        rss_kib()
    );
}
