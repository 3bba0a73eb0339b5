//! The attacker of the shadow-directory test (`tests/tests/shadow_attack.rs`), run as
//! another user: it does what the attack reported against fidius-hotreload did.
//!
//! ```text
//! shadow-intruder <shared temporary directory> <foreign library> <host uid> <seconds>
//! ```
//!
//! 1. Before the host starts, it creates the shadow directories a host of uid
//!    `<host uid>` would use by default in the shared temporary directory (the old
//!    fixed `fidius-shadow` and the per-user `fidius-shadow-<uid>`), as its own, mode
//!    0755. Then it prints `ready`.
//! 2. Until the time is up, or its standard input closes, it renames a copy of the
//!    foreign library over every new file that appears in them: a finished copy, or
//!    one still being written under a temporary name (the host's later rename of that
//!    name then moves the foreign library into place for it).
//! 3. It prints `replaced <n>`: how many files it replaced.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, shared, foreign, host_uid, seconds] = &args[..] else {
        eprintln!("usage: shadow-intruder <shared dir> <foreign library> <host uid> <seconds>");
        std::process::exit(2);
    };
    let shared = PathBuf::from(shared);
    let foreign = std::fs::read(foreign).expect("reading the foreign library");
    let deadline = Instant::now() + Duration::from_secs(seconds.parse().expect("seconds"));
    let targets = [
        shared.join("fidius-shadow"),
        shared.join(format!("fidius-shadow-{host_uid}")),
    ];
    for dir in &targets {
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new().mode(0o755).create(dir);
    }
    let stage = shared.join(format!("intruder-stage-{}", std::process::id()));
    std::fs::create_dir_all(&stage).expect("creating the staging directory");
    println!("ready");
    std::io::stdout().flush().unwrap();

    // The test closes our standard input to stop us early.
    let stop = Arc::new(AtomicBool::new(false));
    let stop_on_eof = stop.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            line.clear();
        }
        stop_on_eof.store(true, Ordering::Relaxed);
    });

    let mut replaced = HashSet::new();
    let mut staged = 0u64;
    let mut ready = stage_copy(&stage, &foreign, &mut staged);
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        for dir in &targets {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if replaced.contains(&name) {
                    continue;
                }
                if std::fs::rename(&ready, dir.join(&name)).is_ok() {
                    replaced.insert(name);
                    ready = stage_copy(&stage, &foreign, &mut staged);
                }
            }
        }
        std::thread::yield_now();
    }
    let _ = std::fs::remove_dir_all(&stage);
    println!("replaced {}", replaced.len());
}

/// A fresh copy of the foreign library in the staging directory, ready to rename.
fn stage_copy(stage: &Path, foreign: &[u8], counter: &mut u64) -> PathBuf {
    *counter += 1;
    let path = stage.join(format!("lib{counter}.so"));
    std::fs::write(&path, foreign).expect("staging a copy of the foreign library");
    path
}
