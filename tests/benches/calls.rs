//! Call overhead through real plugin libraries, against baselines measured in the same
//! run: a bare `extern "C"` call into the same cdylib, and a memcpy of the same bytes.
//!
//! Run with `cargo bench -p fidius-tests --bench calls` (plugins are built in release).
//! See BENCHMARKS.md.
//!
//! The machines this runs on are shared and noisy, so cases of one group run
//! interleaved, round after round, and each reports its median: a burst of noise hits
//! every case of the round alike, and ratios stay meaningful.

use bench_interface::{BenchAllocClient, BenchArenaClient};
use fidius::host::PluginHost;
use std::hint::black_box;
use std::time::{Duration, Instant};

const ROUNDS: usize = 21;
const TARGET_BATCH: Duration = Duration::from_millis(4);

struct Case<'a> {
    name: String,
    run: Box<dyn FnMut() + 'a>,
    iters: u64,
    samples: Vec<f64>,
    faults: u64,
    calls: u64,
}

/// Minor page faults of this process so far (Linux), to show which cases touch fresh
/// memory on every call.
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; minflt is field 10.
            let rest = s.rsplit_once(')')?.1;
            rest.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

impl<'a> Case<'a> {
    fn new(name: impl Into<String>, run: impl FnMut() + 'a) -> Self {
        Self {
            name: name.into(),
            run: Box::new(run),
            iters: 1,
            samples: Vec::with_capacity(ROUNDS),
            faults: 0,
            calls: 0,
        }
    }

    fn calibrate(&mut self) {
        // Warm up, then find an iteration count that fills one batch.
        loop {
            let t = Instant::now();
            for _ in 0..self.iters {
                (self.run)();
            }
            if t.elapsed() >= TARGET_BATCH / 4 || self.iters >= 1 << 30 {
                let per = t.elapsed().as_secs_f64() / self.iters as f64;
                self.iters = ((TARGET_BATCH.as_secs_f64() / per) as u64).max(1);
                return;
            }
            self.iters *= 2;
        }
    }

    fn sample(&mut self) {
        let faults = minor_faults();
        let t = Instant::now();
        for _ in 0..self.iters {
            (self.run)();
        }
        self.samples
            .push(t.elapsed().as_secs_f64() * 1e9 / self.iters as f64);
        self.faults += minor_faults() - faults;
        self.calls += self.iters;
    }

    fn median(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    }
}

/// Runs a group interleaved; the first case is the baseline of the ratios. With a
/// filter argument (`cargo bench -p fidius-tests --bench calls -- Arena`), only the
/// baseline and the cases whose name contains it run.
fn group(title: &str, mut cases: Vec<Case<'_>>) {
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with("--")) {
        let mut i = 0;
        cases.retain(|c| {
            i += 1;
            i == 1 || c.name.contains(&filter)
        });
    }
    for c in &mut cases {
        c.calibrate();
    }
    for _ in 0..ROUNDS {
        for c in &mut cases {
            c.sample();
        }
    }
    let base = cases[0].median();
    println!("\n{title}");
    println!(
        "  {:<52} {:>12} {:>10} {:>12}",
        "case", "ns/call", "ratio", "faults/call"
    );
    for c in &cases {
        println!(
            "  {:<52} {:>12.1} {:>9.2}x {:>12.2}",
            c.name,
            c.median(),
            c.median() / base,
            c.faults as f64 / c.calls as f64
        );
    }
}

fn main() {
    let lib = fidius_tests::fixture("bench-plugin");
    let host = PluginHost::builder().build();
    let arena = BenchArenaClient::new(host.load_from(&lib, "ArenaBench").unwrap()).unwrap();
    let alloc = BenchAllocClient::new(host.load_from(&lib, "AllocBench").unwrap()).unwrap();

    // SAFETY: the benchmark's own fixture exports `bench_bare_add` with this signature,
    // and the library outlives every use of the pointer below.
    let bare_lib = unsafe { libloading::Library::new(&lib) }.unwrap();
    // SAFETY: as above.
    let bare_add: extern "C" fn(i64, i64) -> i64 =
        *unsafe { bare_lib.get::<extern "C" fn(i64, i64) -> i64>(b"bench_bare_add\0") }.unwrap();

    println!("fidius call benchmark: {}", lib.display());
    println!(
        "{} rounds per group, batches of ~{} ms, median reported",
        ROUNDS,
        TARGET_BATCH.as_millis()
    );

    let add_index = arena.caller().method_index("add").unwrap();
    let add_args = fidius::wire::encode(&(20i64, 22i64)).unwrap();
    group(
        "add(i64, i64) -> i64",
        vec![
            Case::new("bare extern \"C\" call through a fn pointer", || {
                black_box(bare_add(black_box(20), black_box(22)));
            }),
            Case::new("typed client, Arena interface (scalar fast path)", || {
                black_box(arena.add(black_box(20), black_box(22)).unwrap());
            }),
            Case::new("typed client, PluginAllocated (scalar fast path)", || {
                black_box(alloc.add(black_box(20), black_box(22)).unwrap());
            }),
            Case::new("handle.call_method (wire, Arena)", || {
                let r: i64 = arena
                    .caller()
                    .call_method(add_index, &(black_box(20i64), black_box(22i64)))
                    .unwrap();
                black_box(r);
            }),
            Case::new("handle.call_method_raw (pre-encoded, Arena)", || {
                black_box(
                    arena
                        .caller()
                        .call_method_raw(add_index, black_box(&add_args))
                        .unwrap(),
                );
            }),
        ],
    );

    for size in [64usize, 4096, 256 * 1024] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        // The destination starts 64 bytes into its allocation: source and destination
        // a multiple of 4 KiB apart make the CPU stall on false store-to-load
        // dependencies ("4K aliasing"), which would flatter every ratio below.
        let mut dst = vec![0u8; size + 64];
        let dst_ref = &mut dst[64..];
        let echo_index = arena.caller().method_index("echo").unwrap();
        let encoded = fidius::wire::encode(&(fidius::wire::AsBin(&data),)).unwrap();
        let data = &data;
        let encoded = &encoded;
        let (arena, alloc) = (&arena, &alloc);
        group(
            &format!("echo(Vec<u8>) -> Vec<u8>, {size} bytes"),
            vec![
                Case::new("memcpy into a preallocated buffer", move || {
                    dst_ref.copy_from_slice(black_box(data));
                    black_box(&*dst_ref);
                }),
                Case::new("copy into a fresh Vec (to_vec)", move || {
                    black_box(black_box(data).to_vec());
                }),
                Case::new("typed client, Arena", move || {
                    black_box(arena.echo(black_box(data)).unwrap());
                }),
                Case::new("typed client, PluginAllocated", move || {
                    black_box(alloc.echo(black_box(data)).unwrap());
                }),
                Case::new("#[wire(raw)] client, PluginAllocated", move || {
                    black_box(alloc.echo_raw(black_box(data)).unwrap());
                }),
                Case::new("#[wire(raw)] client, Arena", move || {
                    black_box(arena.echo_raw(black_box(data)).unwrap());
                }),
                Case::new("call_method_raw, MessagePack bin, Arena", move || {
                    black_box(
                        arena
                            .caller()
                            .call_method_raw(echo_index, black_box(encoded))
                            .unwrap(),
                    );
                }),
            ],
        );
    }
    drop(bare_lib);
}
