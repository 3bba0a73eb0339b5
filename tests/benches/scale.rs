//! Scale: 1, 10, 100 and 1000 watched plugins in one process, as separate
//! `HotPlugin`s and as one `HotDirectory`. For each: start-up time, memory, threads,
//! inotify instances, and the latency and CPU time of one reload.
//!
//! Run with `cargo bench -p fidius-tests --bench scale` (Linux). Each case runs in a
//! process of its own (this binary started again with `--case`), so no case sees
//! another's threads, watches or memory. See BENCHMARKS.md.

use fidius_hotreload::{DirectoryEvent, HotDirectory, HotPlugin, ReloadEvent};
use fidius_tests::{inotify_instances, lib_file, place_build, thread_count};
use hot_interface::{Versioned, VersionedClient};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SIZES: [usize; 4] = [1, 10, 100, 1000];
/// Reloads measured per case (alternating two builds of plugin 0).
const RELOADS: usize = 15;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--case") {
        let mode = args[at + 1].clone();
        let n: usize = args[at + 2].parse().unwrap();
        return run_case(&mode, n);
    }
    if !cfg!(target_os = "linux") {
        println!("SKIPPED: the scale benchmark reads /proc (Linux only)");
        return;
    }
    println!("fidius hot-reload scale benchmark (release plugins, default settings)");
    println!("  start: building them all; RSS, threads, inotify: added by them (threads");
    println!("  again once reloads ran: 'after'); reload: file renamed into place -> Swapped;");
    println!("  reload CPU: on-CPU time of all threads from the rename to the old version's");
    println!("  Unloaded; drop: dropping them all; idle: CPU used by the whole process over");
    println!("  2 s with nothing changing, in % of one core. Medians of {RELOADS} reloads.\n");
    println!(
        "  {:<10} {:>5} {:>9} {:>8} {:>8} {:>6} {:>8} {:>7} {:>10} {:>11} {:>8}",
        "mode",
        "N",
        "start",
        "RSS",
        "threads",
        "after",
        "inotify",
        "idle",
        "reload",
        "reload CPU",
        "drop"
    );
    let exe = std::env::current_exe().unwrap();
    for mode in ["plugins", "directory"] {
        for n in SIZES {
            let out = std::process::Command::new(&exe)
                .args(["--case", mode, &n.to_string()])
                .output()
                .expect("running a case");
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() {
                print!("{text}");
            } else {
                println!(
                    "  {mode:<10} {n:>5} failed: {}{}",
                    text.trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
    }
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// On-CPU time so far of every thread of this process that is still running, in ns
/// (`/proc/self/task/*/schedstat`, first field).
fn cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .map(|rd| {
            rd.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One case: `n` watched plugins in `mode`, measured.
fn run_case(mode: &str, n: usize) {
    raise_fd_limit();
    let tmp = tempfile::tempdir_in(fidius_tests::fixture_dir()).unwrap();
    let root = tmp.path().join("plugins");
    std::fs::create_dir(&root).unwrap();
    let files: Vec<PathBuf> = (0..n)
        .map(|i| {
            let file = match mode {
                // Separate plugins, a directory each.
                "plugins" => {
                    let dir = root.join(format!("p{i}"));
                    std::fs::create_dir(&dir).unwrap();
                    dir.join(lib_file("hot"))
                }
                _ => root.join(lib_file(&format!("hot_{i:04}"))),
            };
            place_build("v1", &file);
            file
        })
        .collect();
    let (rss0, threads0, inotify0) = (rss_kib(), thread_count(), inotify_instances());
    // true: a swap; false: an old version unloaded.
    let (tx, rx) = mpsc::channel::<bool>();
    let started = Instant::now();
    let keep: Box<dyn std::any::Any> = match mode {
        "plugins" => {
            let plugins: Vec<HotPlugin> = files
                .iter()
                .enumerate()
                .map(|(i, file)| {
                    let tx = tx.clone();
                    let mut b = HotPlugin::builder::<dyn Versioned>(file, "Hot");
                    if i == 0 {
                        b = b.on_event(move |e| match e {
                            ReloadEvent::Swapped { .. } => drop(tx.send(true)),
                            ReloadEvent::Unloaded { .. } => drop(tx.send(false)),
                            _ => {}
                        });
                    }
                    b.build().unwrap()
                })
                .collect();
            Box::new(plugins)
        }
        _ => {
            let dir = HotDirectory::builder::<dyn Versioned>(&root)
                .on_event(move |e| {
                    // Only the first library is ever replaced.
                    match e {
                        DirectoryEvent::Plugin {
                            event: ReloadEvent::Swapped { .. },
                            ..
                        } => drop(tx.send(true)),
                        DirectoryEvent::Plugin {
                            event: ReloadEvent::Unloaded { .. },
                            ..
                        } => drop(tx.send(false)),
                        _ => {}
                    }
                })
                .build()
                .unwrap();
            assert_eq!(dir.plugins().len(), n);
            Box::new(dir)
        }
    };
    let start = started.elapsed();
    let (rss1, threads1, inotify1) = (rss_kib(), thread_count(), inotify_instances());
    // Idle: nothing changes; what the watcher's upkeep costs.
    std::thread::sleep(Duration::from_millis(500));
    let (idle_cpu, idle_wall) = (cpu_ns(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let idle = (cpu_ns() - idle_cpu) as f64 / idle_wall.elapsed().as_nanos() as f64 * 100.0;

    let mut latency = Vec::new();
    let mut cpu = Vec::new();
    for r in 0..RELOADS {
        // Let everything settle (drains, pool) before each measured reload.
        std::thread::sleep(Duration::from_millis(150));
        while rx.try_recv().is_ok() {}
        let build = if r % 2 == 0 { "v2" } else { "v1" };
        let cpu_before = cpu_ns();
        let t = Instant::now();
        place_build(build, &files[0]);
        let swapped = rx.recv_timeout(Duration::from_secs(30));
        assert_eq!(swapped, Ok(true), "the reload was served");
        latency.push(t.elapsed().as_secs_f64() * 1e3);
        let unloaded = rx.recv_timeout(Duration::from_secs(30));
        assert_eq!(unloaded, Ok(false), "the old version was unloaded");
        cpu.push((cpu_ns() - cpu_before) as f64 / 1e6);
    }
    // The calls still go through.
    if mode == "plugins" {
        let plugins = keep.downcast_ref::<Vec<HotPlugin>>().unwrap();
        let client = VersionedClient::new(plugins[0].handle()).unwrap();
        assert!(client.version().unwrap() >= 1);
    }
    let threads_after = thread_count() - threads0;
    let dropping = Instant::now();
    drop(keep);
    let dropped = dropping.elapsed();
    println!(
        "  {:<10} {:>5} {:>7.0}ms {:>6}MB {:>8} {:>6} {:>8} {:>6.2}% {:>8.2}ms {:>9.2}ms {:>6.0}ms",
        mode,
        n,
        start.as_secs_f64() * 1e3,
        (rss1.saturating_sub(rss0)) / 1024,
        threads1 - threads0,
        threads_after,
        inotify1 - inotify0,
        idle,
        median(latency),
        median(cpu),
        dropped.as_secs_f64() * 1e3,
    );
}

/// One descriptor per loaded version (its in-memory copy): raises the soft limit on
/// open files to the hard one, as `ulimit -n` would, like a server with a thousand
/// plugins must.
fn raise_fd_limit() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            limit.current = limit.maximum;
            let _ = setrlimit(Resource::Nofile, limit);
        }
    }
}
