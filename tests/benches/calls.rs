//! Call overhead through real plugin libraries, against baselines measured in the same
//! run: a bare `extern "C"` call into the same cdylib, the serde work of the call on
//! its own, and a copy of the same bytes into a fresh `Vec` (a memcpy into a
//! preallocated buffer is listed too).
//!
//! Each signature is measured through every way of calling: the typed client with
//! each buffer strategy, `call_method` and `call_dynamic`. The last table runs each
//! echo of 64 MiB in a child process of its own and reports its peak memory.
//! `FIDIUS_BENCH_GROUP=<text>` runs only the groups whose title contains the text.
//!
//! Run with `cargo bench -p fidius-tests --bench calls` (plugins are built in release).
//! See BENCHMARKS.md.
//!
//! The machines this runs on are shared and noisy, so cases of one group run
//! interleaved, round after round, and each reports its median: a burst of noise hits
//! every case of the round alike, and ratios stay meaningful.

use bench_interface::{BenchAllocClient, BenchArenaClient, Record};
use fidius::host::{PluginHandle, PluginHost};
use fidius::wire::{AsBin, BinVec};
use fidius::Value;
use std::hint::black_box;

// The host side of the shared-allocator cases: with it, results of the bench plugin
// built with `SharedAllocator` too change owner instead of being copied. (It is the
// system allocator plus one comparison per allocation, for every case alike.)
#[global_allocator]
static ALLOCATOR: fidius::SharedAllocator = fidius::SharedAllocator;
use std::time::{Duration, Instant};

const ROUNDS: usize = 21;
const TARGET_BATCH: Duration = Duration::from_millis(4);

struct Case<'a> {
    name: String,
    /// Part of the reference the ratios are taken against.
    reference: bool,
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
            reference: false,
            run: Box::new(run),
            iters: 1,
            samples: Vec::with_capacity(ROUNDS),
            faults: 0,
            calls: 0,
        }
    }

    /// Marks this case as (part of) the reference: ratios are taken against the sum
    /// of the reference cases' medians.
    fn reference(mut self) -> Self {
        self.reference = true;
        self
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

/// Runs a group interleaved and prints it. Ratios are against the sum of the medians
/// of the cases marked [`Case::reference`] (named in `against`). With a filter argument
/// (`cargo bench -p fidius-tests --bench calls -- Arena`), only the reference cases
/// and the cases whose name contains it run.
fn group(title: &str, against: &str, mut cases: Vec<Case<'_>>) {
    if let Some(filter) = filter() {
        cases.retain(|c| c.reference || c.name.contains(&filter) || title.contains(&filter));
    }
    for c in &mut cases {
        c.calibrate();
    }
    for _ in 0..ROUNDS {
        for c in &mut cases {
            c.sample();
        }
    }
    let base: f64 = cases.iter().filter(|c| c.reference).map(Case::median).sum();
    println!("\n{title}");
    println!(
        "  {:<52} {:>12} {:>10} {:>12}",
        "case",
        "ns/call",
        format!("x {against}"),
        "faults/call"
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

/// FIDIUS_BENCH_GROUP=<text> runs only the groups whose title contains it (to profile
/// one group).
fn wanted(title: &str) -> bool {
    std::env::var("FIDIUS_BENCH_GROUP").map_or(true, |g| title.contains(&g))
}

fn filter() -> Option<String> {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--") && a != "rss")
}

/// Everything a case needs: the clients, the bare baseline, the raw handles.
struct Bench {
    arena: BenchArenaClient<PluginHandle>,
    alloc: BenchAllocClient<PluginHandle>,
    /// The build with `SharedAllocator`, Arena interface.
    shared: BenchArenaClient<PluginHandle>,
    bare_add: extern "C" fn(i64, i64) -> i64,
    _bare_lib: libloading::Library,
}

impl Bench {
    fn load() -> Self {
        let lib = fidius_tests::fixture("bench-plugin");
        let host = PluginHost::builder().build();
        let arena = BenchArenaClient::new(host.load_from(&lib, "ArenaBench").unwrap()).unwrap();
        let alloc = BenchAllocClient::new(host.load_from(&lib, "AllocBench").unwrap()).unwrap();
        let shared = BenchArenaClient::new(
            host.load_from(fidius_tests::bench_shared_build(), "ArenaBench")
                .unwrap(),
        )
        .unwrap();
        assert!(shared.caller().shares_allocator());
        // SAFETY: the benchmark's own fixture exports `bench_bare_add` with this
        // signature, and the library outlives every use of the pointer (it is kept in
        // the returned value).
        let bare_lib = unsafe { libloading::Library::new(&lib) }.unwrap();
        // SAFETY: as above.
        let bare_add: extern "C" fn(i64, i64) -> i64 =
            *unsafe { bare_lib.get::<extern "C" fn(i64, i64) -> i64>(b"bench_bare_add\0") }
                .unwrap();
        Self {
            arena,
            alloc,
            shared,
            bare_add,
            _bare_lib: bare_lib,
        }
    }

    fn index(&self, method: &str) -> usize {
        self.arena.caller().method_index(method).unwrap()
    }
}

/// The serde work of one call alone: the arguments encoded and decoded, the result
/// encoded and decoded, into reused buffers, with the allocations the types need.
/// `D` is what the plugin decodes the arguments as, `R` what it encodes its result
/// from, and `O` what the host decodes that result as.
fn serde_alone<'a, A, D, R, O>(args: &'a A, result: impl Fn(D) -> R + 'a) -> impl FnMut() + 'a
where
    A: serde::Serialize + ?Sized,
    D: serde::de::DeserializeOwned,
    R: serde::Serialize,
    O: serde::de::DeserializeOwned,
{
    let mut in_buf = Vec::new();
    let mut out_buf = Vec::new();
    move || {
        in_buf.clear();
        fidius::wire::encode_into(black_box(args), &mut in_buf).unwrap();
        let decoded: D = fidius::wire::decode(black_box(&in_buf)).unwrap();
        let r = result(decoded);
        out_buf.clear();
        fidius::wire::encode_into(&r, &mut out_buf).unwrap();
        black_box(fidius::wire::decode::<O>(black_box(&out_buf)).unwrap());
    }
}

/// A byte result, encoded as the plugin encodes one: a MessagePack `bin`.
struct OwnedBin(Vec<u8>);

impl serde::Serialize for OwnedBin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

fn floor(b: &Bench) -> Case<'_> {
    Case::new("bare extern \"C\" call through a fn pointer", move || {
        black_box((b.bare_add)(black_box(20), black_box(22)));
    })
}

fn add_group(b: &Bench) {
    if !wanted("add(i64, i64) -> i64") {
        return;
    }
    let index = b.index("add");
    group(
        "add(i64, i64) -> i64",
        "bare call",
        vec![
            floor(b).reference(),
            Case::new(
                "serde work alone",
                serde_alone::<_, _, _, i64>(&(20i64, 22i64), |(a, c): (i64, i64)| a + c),
            ),
            Case::new("typed client, Arena (scalar fast path)", move || {
                black_box(b.arena.add(black_box(20), black_box(22)).unwrap());
            }),
            Case::new(
                "typed client, PluginAllocated (scalar fast path)",
                move || {
                    black_box(b.alloc.add(black_box(20), black_box(22)).unwrap());
                },
            ),
            Case::new("call_method, Arena", move || {
                let r: i64 = b
                    .arena
                    .caller()
                    .call_method(index, &(black_box(20i64), black_box(22i64)))
                    .unwrap();
                black_box(r);
            }),
            Case::new("call_method, PluginAllocated", move || {
                let r: i64 = b
                    .alloc
                    .caller()
                    .call_method(index, &(black_box(20i64), black_box(22i64)))
                    .unwrap();
                black_box(r);
            }),
            Case::new("call_dynamic, Arena", {
                let args = [Value::from(20i64), Value::from(22i64)];
                move || {
                    black_box(
                        b.arena
                            .caller()
                            .call_dynamic("add", black_box(&args))
                            .unwrap(),
                    );
                }
            }),
        ],
    );
}

/// Text of `len` bytes, like a log line or a document: ASCII with a multi-byte
/// character every 1000 bytes. (Checking UTF-8 costs more for text dense in non-ASCII
/// characters; the string groups of 16 and 1024 bytes use such text.)
fn text(len: usize) -> String {
    text_with(len, 1000)
}

/// Text of `len` bytes with a two-byte character every `every` bytes.
fn text_with(len: usize, every: usize) -> String {
    let mut s = String::with_capacity(len + 4);
    let mut i = 0usize;
    while s.len() < len {
        s.push(if i % every == every - 1 {
            'é'
        } else {
            (b'a' + (i % 26) as u8) as char
        });
        i += 1;
    }
    while s.len() > len {
        s.pop();
    }
    s
}

fn string_group(b: &Bench, len: usize) {
    let title = format!("echo_str(String) -> String, {len} bytes");
    if !wanted(&title) {
        return;
    }
    let s = text_with(len, 17);
    let s = &s;
    let index = b.index("echo_str");
    let args = [Value::from(s.as_str())];
    let args = &args;
    group(
        &title,
        "serde + bare call",
        vec![
            floor(b).reference(),
            Case::new(
                "serde work alone",
                serde_alone::<_, _, _, String>(&(s,), |(t,): (String,)| t),
            )
            .reference(),
            Case::new("typed client, Arena", move || {
                black_box(b.arena.echo_str(black_box(s).clone()).unwrap());
            }),
            Case::new("typed client, PluginAllocated", move || {
                black_box(b.alloc.echo_str(black_box(s).clone()).unwrap());
            }),
            Case::new("call_method, Arena", move || {
                let r: String = b
                    .arena
                    .caller()
                    .call_method(index, &(black_box(s),))
                    .unwrap();
                black_box(r);
            }),
            Case::new("call_method, PluginAllocated", move || {
                let r: String = b
                    .alloc
                    .caller()
                    .call_method(index, &(black_box(s),))
                    .unwrap();
                black_box(r);
            }),
            Case::new("call_dynamic, Arena", move || {
                black_box(
                    b.arena
                        .caller()
                        .call_dynamic("echo_str", black_box(args))
                        .unwrap(),
                );
            }),
        ],
    );
}

fn record_group(b: &Bench) {
    let title = "update(Record) -> Record (String, u64, Vec<String> of 3, Option<f64>, bool)";
    if !wanted(title) {
        return;
    }
    let record = Record {
        name: "a record with a name".into(),
        id: 42,
        tags: vec!["red".into(), "green".into(), "a longer tag".into()],
        score: Some(0.5),
        active: true,
    };
    let r = &record;
    let index = b.index("update");
    let args = [fidius::to_value(r).unwrap()];
    let args = &args;
    group(
        title,
        "serde + bare call",
        vec![
            floor(b).reference(),
            Case::new(
                "serde work alone",
                serde_alone::<_, _, _, Record>(&(r,), |(r,): (Record,)| r.updated()),
            )
            .reference(),
            Case::new("typed client, Arena", move || {
                black_box(b.arena.update(black_box(r).clone()).unwrap());
            }),
            Case::new("typed client, PluginAllocated", move || {
                black_box(b.alloc.update(black_box(r).clone()).unwrap());
            }),
            Case::new("call_method, Arena", move || {
                let out: Record = b
                    .arena
                    .caller()
                    .call_method(index, &(black_box(r),))
                    .unwrap();
                black_box(out);
            }),
            Case::new("call_method, PluginAllocated", move || {
                let out: Record = b
                    .alloc
                    .caller()
                    .call_method(index, &(black_box(r),))
                    .unwrap();
                black_box(out);
            }),
            Case::new("call_dynamic, Arena", move || {
                black_box(
                    b.arena
                        .caller()
                        .call_dynamic("update", black_box(args))
                        .unwrap(),
                );
            }),
        ],
    );
}

/// The payload sizes of the echo curves.
const SIZES: &[usize] = &[
    16,
    64,
    1024,
    4096,
    64 * 1024,
    128 * 1024,
    256 * 1024,
    1 << 20,
    64 << 20,
];

fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

fn bytes_group(b: &Bench, size: usize) {
    let title = format!("echo(Vec<u8>) -> Vec<u8>, {size} bytes");
    if !wanted(&title) {
        return;
    }
    let data = payload(size);
    // The destination starts 64 bytes into its allocation: source and destination a
    // multiple of 4 KiB apart make the CPU stall on false store-to-load dependencies
    // ("4K aliasing"), which would flatter every ratio below.
    let mut dst = vec![0u8; size + 64];
    let dst_ref = &mut dst[64..];
    let index = b.index("echo");
    let data = &data;
    let args_bin = &(AsBin(data),);
    let args = [Value::Binary(data.clone())];
    let args = &args;
    let mut cases = vec![
        Case::new("memcpy into a preallocated buffer", move || {
            dst_ref.copy_from_slice(black_box(data));
            black_box(&*dst_ref);
        }),
        Case::new("copy into a fresh Vec (to_vec)", move || {
            black_box(black_box(data).to_vec());
        })
        .reference(),
        Case::new(
            "serde work alone",
            serde_alone::<_, _, _, BinVec>(args_bin, |(v,): (BinVec,)| OwnedBin(v.0)),
        ),
        Case::new("typed client, Arena", move || {
            black_box(b.arena.echo(black_box(data)).unwrap());
        }),
        Case::new("typed client, PluginAllocated", move || {
            black_box(b.alloc.echo(black_box(data)).unwrap());
        }),
        Case::new("typed client, shared allocator", move || {
            black_box(b.shared.echo(black_box(data)).unwrap());
        }),
        Case::new("#[wire(raw)] client, Arena", move || {
            black_box(b.arena.echo_raw(black_box(data)).unwrap());
        }),
        Case::new("#[wire(raw)] client, PluginAllocated", move || {
            black_box(b.alloc.echo_raw(black_box(data)).unwrap());
        }),
        Case::new("call_method, Arena", move || {
            let r: Vec<u8> = b
                .arena
                .caller()
                .call_method(index, &(black_box(data),))
                .unwrap();
            black_box(r);
        }),
        Case::new("call_method, PluginAllocated", move || {
            let r: Vec<u8> = b
                .alloc
                .caller()
                .call_method(index, &(black_box(data),))
                .unwrap();
            black_box(r);
        }),
    ];
    if size <= 1 << 20 {
        cases.push(Case::new("call_dynamic, Arena", move || {
            black_box(
                b.arena
                    .caller()
                    .call_dynamic("echo", black_box(args))
                    .unwrap(),
            );
        }));
    }
    group(&title, "clone", cases);
}

fn string_curve_group(b: &Bench, size: usize) {
    let title = format!("echo_str(String) -> String against echo(Vec<u8>), {size} bytes");
    if !wanted(&title) {
        return;
    }
    let s = text(size);
    let s = &s;
    let mut dst = vec![0u8; size + 64];
    let dst_ref = &mut dst[64..];
    let data = payload(size);
    let data = &data;
    group(
        &title,
        "clone",
        vec![
            Case::new("memcpy into a preallocated buffer", move || {
                dst_ref.copy_from_slice(black_box(s.as_bytes()));
                black_box(&*dst_ref);
            }),
            Case::new("copy into a fresh Vec (to_vec)", move || {
                black_box(black_box(data).to_vec());
            })
            .reference(),
            Case::new("bytes: typed client, Arena", move || {
                black_box(b.arena.echo(black_box(data)).unwrap());
            }),
            // The String client takes its argument by value, as the trait does: the
            // String cases clone theirs. This case clones the bytes too.
            Case::new("bytes: typed client, Arena, from a clone", move || {
                black_box(b.arena.echo(black_box(data).clone()).unwrap());
            }),
            Case::new("String: typed client, Arena", move || {
                black_box(b.arena.echo_str(black_box(s).clone()).unwrap());
            }),
            Case::new("bytes: typed client, PluginAllocated", move || {
                black_box(b.alloc.echo(black_box(data)).unwrap());
            }),
            Case::new("String: typed client, PluginAllocated", move || {
                black_box(b.alloc.echo_str(black_box(s).clone()).unwrap());
            }),
            Case::new("bytes: typed client, shared allocator", move || {
                black_box(b.shared.echo(black_box(data)).unwrap());
            }),
            Case::new("String: typed client, shared allocator", move || {
                black_box(b.shared.echo_str(black_box(s).clone()).unwrap());
            }),
        ],
    );
}

/// Peak memory of one echo of `size` bytes, as a multiple of the payload: a child
/// process of this benchmark creates the payload, echoes it three times and reports
/// its high-water mark against its resident size before the payload existed. The
/// payload and the result alone make 2x.
fn rss_table(size: usize) {
    let exe = std::env::current_exe().unwrap();
    println!(
        "\npeak RSS of an echo of {} MiB, as a multiple of the payload",
        size >> 20
    );
    for case in RSS_CASES {
        let out = std::process::Command::new(&exe)
            .env("FIDIUS_BENCH_RSS", case)
            .env("FIDIUS_BENCH_RSS_SIZE", size.to_string())
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        println!("  {case:<52} {:>8}", report.trim());
    }
}

const RSS_CASES: &[&str] = &[
    "to_vec",
    "bytes: typed client, Arena",
    "bytes: typed client, PluginAllocated",
    "bytes: typed client, shared allocator",
    "String: typed client, Arena",
    "String: typed client, PluginAllocated",
    "String: typed client, shared allocator",
];

/// Kilobytes of a field of /proc/self/status.
fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn rss_child(case: &str, size: usize) {
    let b = Bench::load();
    let before = status_kib("VmRSS:");
    // The bytes cases hold their payload; the String cases build theirs for each call
    // and give it away, so both hold a payload and a result at most.
    let data = if case.starts_with("String") {
        Vec::new()
    } else {
        payload(size)
    };
    for _ in 0..3 {
        match case {
            "to_vec" => drop(black_box(black_box(&data).to_vec())),
            "bytes: typed client, Arena" => drop(black_box(b.arena.echo(&data).unwrap())),
            "bytes: typed client, PluginAllocated" => drop(black_box(b.alloc.echo(&data).unwrap())),
            "bytes: typed client, shared allocator" => {
                drop(black_box(b.shared.echo(&data).unwrap()))
            }
            "String: typed client, shared allocator" => {
                drop(black_box(b.shared.echo_str(text(size)).unwrap()))
            }
            "String: typed client, Arena" => drop(black_box(b.arena.echo_str(text(size)).unwrap())),
            "String: typed client, PluginAllocated" => {
                drop(black_box(b.alloc.echo_str(text(size)).unwrap()))
            }
            other => panic!("unknown case {other}"),
        }
    }
    let peak = status_kib("VmHWM:");
    println!(
        "{:.2}x",
        (peak.saturating_sub(before) * 1024) as f64 / size as f64
    );
}

fn main() {
    if let Ok(case) = std::env::var("FIDIUS_BENCH_RSS") {
        let size = std::env::var("FIDIUS_BENCH_RSS_SIZE")
            .unwrap()
            .parse()
            .unwrap();
        return rss_child(&case, size);
    }
    let b = Bench::load();
    println!(
        "fidius call benchmark: {}",
        fidius_tests::fixture("bench-plugin").display()
    );
    println!(
        "{} rounds per group, batches of ~{} ms, median reported",
        ROUNDS,
        TARGET_BATCH.as_millis()
    );

    add_group(&b);
    string_group(&b, 16);
    string_group(&b, 1024);
    record_group(&b);
    for &size in SIZES {
        bytes_group(&b, size);
    }
    for &size in SIZES {
        string_curve_group(&b, size);
    }
    if cfg!(target_os = "linux") && wanted("peak RSS") {
        rss_table(64 << 20);
    }
}
