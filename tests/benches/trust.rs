//! Trusted builds: what judging a build costs on each load path, against floors
//! measured in the same run.
//!
//! * One-shot: `PluginLibrary::open` against `open_trusted` (copy to a sealed copy,
//!   SHA-256 while copying, Ed25519 check, then the same load), with reading the file
//!   and hashing it alone as floors.
//! * Hot reloading: `reload_now` between two builds, with and without a trust (the
//!   copy is made either way; a trust adds the SHA-256 and the signature check).
//!
//! Run with `cargo bench -p fidius-tests --bench trust` (plugins are built in
//! release). See BENCHMARKS.md.

use fidius::host::trust::{signature_path, Digest, SecretKey, Trust};
use fidius::host::PluginLibrary;
use fidius_hotreload::HotPlugin;
use hot_interface::Versioned;
use std::path::Path;
use std::time::{Duration, Instant};

const ROUNDS: usize = 30;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn sign(library: &Path, key: &SecretKey) {
    let digest = Digest::of_file(library).unwrap();
    std::fs::write(signature_path(library), key.sign(&digest).to_text("lib")).unwrap();
}

fn main() {
    let key = SecretKey::from_seed([42; 32]);
    let trust = Trust::new().key(key.public_key());
    let dir = tempfile::tempdir().unwrap();

    // One-shot loads.
    for fixture in ["calc-plugins", "bench-plugin"] {
        let source = fidius_tests::fixture(fixture);
        let lib = dir.path().join(source.file_name().unwrap());
        std::fs::copy(&source, &lib).unwrap();
        sign(&lib, &key);
        let size = std::fs::metadata(&lib).unwrap().len();
        let (mut read, mut hash, mut open, mut trusted) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            std::hint::black_box(std::fs::read(&lib).unwrap());
            read.push(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(Digest::of_file(&lib).unwrap());
            hash.push(t.elapsed());
            let t = Instant::now();
            drop(PluginLibrary::open(&lib).unwrap());
            open.push(t.elapsed());
            let t = Instant::now();
            drop(PluginLibrary::open_trusted(&lib, &trust).unwrap());
            trusted.push(t.elapsed());
        }
        let (read, hash, open, trusted) =
            (median(read), median(hash), median(open), median(trusted));
        println!(
            "one-shot {fixture} ({:.1} MiB), medians of {ROUNDS}: read {} | sha256 {} | open {} | open_trusted {} ({:.2}x open, +{})",
            size as f64 / (1 << 20) as f64,
            ms(read),
            ms(hash),
            ms(open),
            ms(trusted),
            trusted.as_secs_f64() / open.as_secs_f64(),
            ms(trusted.saturating_sub(open)),
        );
    }

    // Hot reloads, alternating two builds, with and without a trust.
    let v1 = fidius_tests::hot_build("v1");
    let v2 = fidius_tests::hot_build("v2");
    for (name, trust) in [("no trust", None), ("with trust", Some(trust.clone()))] {
        let hot_dir = tempfile::tempdir().unwrap();
        let file = hot_dir.path().join(fidius_tests::lib_file("hot"));
        let place = |build: &Path| {
            fidius_tests::place_build_from(build, &file);
            if trust.is_some() {
                sign(&file, &key);
            }
        };
        place(&v1);
        let mut builder = HotPlugin::builder::<dyn Versioned>(&file, "Hot")
            .shadow_dir(hot_dir.path().join("shadow"))
            .watch(false);
        if let Some(trust) = &trust {
            builder = builder.trust(trust.clone());
        }
        let hot = builder.build().unwrap();
        let mut times = Vec::new();
        for round in 0..ROUNDS {
            place(if round % 2 == 0 { &v2 } else { &v1 });
            let t = Instant::now();
            hot.reload_now().unwrap();
            times.push(t.elapsed());
        }
        let size = std::fs::metadata(&v2).unwrap().len();
        println!(
            "hot reload {name} ({:.1} MiB build), median of {ROUNDS}: {}",
            size as f64 / (1 << 20) as f64,
            ms(median(times))
        );
    }
}
