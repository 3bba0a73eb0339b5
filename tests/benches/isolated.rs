//! Isolated plugins: what a call into a plugin process costs, against a floor
//! measured in the same run (a bare round trip of the same bytes between two
//! processes, over the same kind of socket, with no framework); throughput from
//! several threads; how soon a killed or crashed plugin serves again; and how close
//! to its deadline a hung call returns.
//!
//! Run with `cargo bench -p fidius-tests --bench isolated` (plugins are built in
//! release). See BENCHMARKS.md.
//!
//! Latency cases run interleaved, round after round, so that noise on the shared
//! machine hits them alike.

use fidius::host::PluginLibrary;
use fidius_isolated::IsolatedPlugin;
use misbehave_interface::{Misbehave, MisbehaveClient};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Set in the floor's echo process.
const ECHO_ENV: &str = "FIDIUS_BENCH_ECHO";
const ROUNDS: usize = 20;
const CALLS_PER_ROUND: usize = 1000;

fn main() {
    if std::env::var_os(ECHO_ENV).is_some() {
        return echo();
    }
    let library = fidius_tests::fixture("misbehave-plugin");
    let isolated = IsolatedPlugin::builder::<dyn Misbehave>(&library, "Misbehaving")
        .build()
        .expect("starting the plugin process");
    let remote = MisbehaveClient::new(isolated.handle()).unwrap();
    let local = MisbehaveClient::new(
        PluginLibrary::open(&library)
            .unwrap()
            .handle(
                "Misbehaving",
                Some(&<dyn Misbehave as fidius::Interface>::INFO),
            )
            .unwrap(),
    )
    .unwrap();
    let mut floor = Floor::start();

    latency(
        "on all CPUs (the scheduler places each process)",
        &remote,
        &local,
        &mut floor,
    );

    println!("\nThroughput of add(i64, i64), isolated, 4 workers:");
    for threads in [1, 2, 4] {
        let per_second = throughput(&isolated, threads, Duration::from_secs(1));
        println!("  {threads} calling thread(s): {per_second:>9.0} calls/s");
    }

    println!("\nKill-to-serving (from the failed call's return to the next call served):");
    let deadline = Duration::from_millis(20);
    let limited = MisbehaveClient::new(isolated.handle().with_deadline(deadline)).unwrap();
    let mut after_kill = Vec::new();
    let mut precision = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let result = limited.spin();
        let returned = Instant::now();
        assert!(
            matches!(result, Err(fidius::CallError::Timeout { .. })),
            "{result:?}"
        );
        precision.push((returned - started).saturating_sub(deadline).as_micros() as u64);
        remote.add(1, 1).unwrap();
        after_kill.push(returned.elapsed().as_micros() as u64);
    }
    let mut after_crash = Vec::new();
    for _ in 0..20 {
        let result = remote.crash("segfault".into());
        let returned = Instant::now();
        assert!(
            matches!(result, Err(fidius::CallError::Crashed { .. })),
            "{result:?}"
        );
        remote.add(1, 1).unwrap();
        after_crash.push(returned.elapsed().as_micros() as u64);
    }
    for (name, s) in [
        ("after a deadline kill", &mut after_kill),
        ("after a crash (SIGSEGV)", &mut after_crash),
    ] {
        println!(
            "  {name:<28} p50 {:>6.1} ms   max {:>6.1} ms",
            percentile(s, 50.0) as f64 / 1000.0,
            *s.iter().max().unwrap() as f64 / 1000.0
        );
    }
    println!("\nDeadline precision (a call that never returns, deadline {deadline:?}):");
    println!(
        "  returned after the deadline by: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&mut precision, 50.0) as f64 / 1000.0,
        percentile(&mut precision, 99.0) as f64 / 1000.0
    );

    // Pinned to one CPU: no wake-up crosses CPUs, so what is left is the work each
    // side does. Processes started from here on inherit the pin.
    let cpu = rustix::thread::sched_getaffinity(None)
        .ok()
        .and_then(|set| (0..rustix::thread::CpuSet::MAX_CPU).find(|&c| set.is_set(c)));
    if let Some(cpu) = cpu {
        let mut one = rustix::thread::CpuSet::new();
        one.set(cpu);
        rustix::thread::sched_setaffinity(None, &one).unwrap();
        drop((remote, limited, floor, isolated));
        let isolated = IsolatedPlugin::builder::<dyn Misbehave>(&library, "Misbehaving")
            .build()
            .expect("starting the plugin process");
        let remote = MisbehaveClient::new(isolated.handle()).unwrap();
        let mut floor = Floor::start();
        println!();
        latency(
            &format!("both processes pinned to CPU {cpu}"),
            &remote,
            &local,
            &mut floor,
        );
    }
}

/// Latency of the floor, an isolated call and an in-process call, interleaved.
fn latency(
    title: &str,
    remote: &MisbehaveClient<fidius_isolated::IsolatedHandle>,
    local: &MisbehaveClient<fidius::PluginHandle>,
    floor: &mut Floor,
) {
    let text = "sixteen bytes!!!".to_string();
    // The bytes an isolated call puts on the wire, each way, for the floor to echo.
    let add_request = request_bytes(fidius::wire::encode(&(20i64, 22i64)).unwrap());
    let echo_request = request_bytes(fidius::wire::encode(&(text.clone(),)).unwrap());
    println!("Latency per call (ns), {title}; {ROUNDS} rounds of {CALLS_PER_ROUND} interleaved:");
    println!(
        "  {:<58} {:>9} {:>9} {:>9} {:>11}",
        "case", "p50", "p99", "mean", "p50/floor"
    );
    for (name, request) in [
        ("add(i64, i64)", &add_request),
        ("echo(16-byte String)", &echo_request),
    ] {
        let mut samples: [Vec<u64>; 3] = Default::default();
        for _ in 0..ROUNDS {
            time_calls(&mut samples[0], || floor.round_trip(request));
            if name.starts_with("add") {
                time_calls(&mut samples[1], || {
                    assert_eq!(remote.add(20, 22).unwrap(), 42)
                });
                time_calls(&mut samples[2], || {
                    assert_eq!(local.add(20, 22).unwrap(), 42)
                });
            } else {
                time_calls(&mut samples[1], || {
                    assert_eq!(remote.echo(text.clone()).unwrap().len(), 16)
                });
                time_calls(&mut samples[2], || {
                    assert_eq!(local.echo(text.clone()).unwrap().len(), 16)
                });
            }
        }
        let floor_p50 = percentile(&mut samples[0], 50.0);
        println!("  {name}");
        let cases = [
            format!("floor: bare round trip of the same {} bytes", request.len()),
            "isolated (typed client, another process)".to_string(),
            "in-process (typed client, same library)".to_string(),
        ];
        for (case, s) in cases.iter().zip(samples.iter_mut()) {
            let p50 = percentile(s, 50.0);
            let p99 = percentile(s, 99.0);
            let mean = s.iter().sum::<u64>() / s.len() as u64;
            println!(
                "    {case:<56} {p50:>9} {p99:>9} {mean:>9} {:>10.2}x",
                p50 as f64 / floor_p50 as f64
            );
        }
        let isolated_p99 = percentile(&mut samples[1], 99.0);
        println!(
            "    isolated p99 / floor p50: {:.2}x",
            isolated_p99 as f64 / floor_p50 as f64
        );
    }
}

/// Times each of `CALLS_PER_ROUND` calls of `call`, in nanoseconds.
fn time_calls(samples: &mut Vec<u64>, mut call: impl FnMut()) {
    for _ in 0..CALLS_PER_ROUND {
        let t = Instant::now();
        call();
        samples.push(t.elapsed().as_nanos() as u64);
    }
}

fn percentile(samples: &mut [u64], p: f64) -> u64 {
    samples.sort_unstable();
    let i = ((samples.len() - 1) as f64 * p / 100.0).round() as usize;
    samples[i]
}

/// The request frame an isolated call of a method with these encoded arguments
/// sends: the length, the operation, the method index and the arguments.
fn request_bytes(body: Vec<u8>) -> Vec<u8> {
    let len = (1 + 4 + body.len()) as u32;
    let mut frame = len.to_le_bytes().to_vec();
    frame.push(0);
    frame.extend_from_slice(&0u32.to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// A process that echoes each frame it reads: the floor.
struct Floor {
    socket: UnixStream,
    buf: Vec<u8>,
    _child: ChildGuard,
}

struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Floor {
    fn start() -> Self {
        let (socket, theirs) = UnixStream::pair().unwrap();
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .env(ECHO_ENV, "1")
            .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
                theirs,
            )))
            .spawn()
            .unwrap();
        Self {
            socket,
            buf: vec![0; 64 * 1024],
            _child: ChildGuard(child),
        }
    }

    fn round_trip(&mut self, frame: &[u8]) {
        self.socket.write_all(frame).unwrap();
        read_frame(&mut self.socket, &mut self.buf);
    }
}

/// Reads one length-prefixed frame into `buf` (one read when it all arrived);
/// returns its total length, or `None` at the end.
fn read_frame(socket: &mut UnixStream, buf: &mut [u8]) -> Option<usize> {
    let mut have = 0;
    loop {
        let n = socket.read(&mut buf[have..]).ok()?;
        if n == 0 {
            return None;
        }
        have += n;
        if have >= 4 {
            let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize + 4;
            if have >= len {
                return Some(len);
            }
        }
    }
}

/// The floor's other process: echoes frames from its standard input socket.
fn echo() {
    use std::os::fd::{AsFd, OwnedFd};
    let fd: OwnedFd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
    let mut socket = UnixStream::from(fd);
    let mut buf = vec![0; 64 * 1024];
    while let Some(len) = read_frame(&mut socket, &mut buf) {
        socket.write_all(&buf[..len]).unwrap();
    }
}

fn throughput(plugin: &IsolatedPlugin, threads: usize, time: Duration) -> f64 {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let client = MisbehaveClient::new(plugin.handle()).unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut calls = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    client.add(1, 2).unwrap();
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(time);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    calls as f64 / started.elapsed().as_secs_f64()
}
