//! The shadow-directory attack, run for real: another local user prepares the shadow
//! directory a host would use and renames their own library over every copy that
//! appears in it, while the host takes ordinary deploys. Their library's constructor
//! records every time it runs; it must never run in this process.
//!
//! Run as root (as CI is), the attacker really is another user (`nobody`, uid 65534).
//! Otherwise it runs as this same user, which is no security boundary: then only the
//! in-memory case is meaningful, and the rest is reported as SKIPPED.
//!
//! This is the only test in its binary because it points `TMPDIR` at a shared,
//! world-writable directory of its own (like `/tmp`) before anything else runs.
#![cfg(target_os = "linux")]

use fidius_hotreload::{HotPlugin, ReloadEvent, Stage};
use fidius_tests::{fixture, Deploy, HotDir};
use hot_interface::{Versioned, VersionedClient};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ordinary deploys the host takes while the attacker is at work.
const DEPLOYS: usize = 30;
/// The user the attacker runs as, when this test can switch users.
const NOBODY: u32 = 65534;

#[test]
fn another_user_cannot_get_code_run_in_the_host_through_the_shadow_directory() {
    // A shared temporary directory like /tmp: world-writable, sticky.
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let log = shared.path().join("intrusions.log");
    // The only test in this binary, and no thread of ours runs yet.
    std::env::set_var("TMPDIR", shared.path());
    std::env::set_var("FIDIUS_INTRUDER_LOG", &log);
    assert_eq!(
        fidius_hotreload::default_shadow_dir().parent(),
        Some(shared.path())
    );

    let my_uid = std::fs::metadata("/proc/self").unwrap().uid();
    let cross_user = my_uid == 0;
    let in_memory = fidius_hotreload::in_memory_copies();
    if !cross_user && !in_memory {
        eprintln!(
            "SKIPPED: copies are files here and this test is not root, so the attacker \
             would be this same user (no security boundary)"
        );
        return;
    }

    // The attacker's program and library, where the attacker can read them.
    let intruder_bin = shared.path().join("shadow-intruder");
    std::fs::copy(env!("CARGO_BIN_EXE_shadow-intruder"), &intruder_bin).unwrap();
    std::fs::set_permissions(&intruder_bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let foreign = shared.path().join("libintruder.so");
    std::fs::copy(fixture("intruder"), &foreign).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o644)).unwrap();

    let mut attacker = Command::new(&intruder_bin);
    attacker
        .args([
            shared.path().as_os_str(),
            foreign.as_os_str(),
            my_uid.to_string().as_ref(),
            "120".as_ref(),
        ])
        .env_remove("FIDIUS_INTRUDER_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if cross_user {
        attacker.uid(NOBODY).gid(NOBODY);
    }
    let mut attacker = Attacker(attacker.spawn().expect("starting the attacker"));
    let mut attacker_out = BufReader::new(attacker.0.stdout.take().unwrap());
    let mut line = String::new();
    attacker_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the attacker did not start");
    let owner = std::fs::metadata(shared.path().join("fidius-shadow"))
        .unwrap()
        .uid();
    assert_eq!(owner, if cross_user { NOBODY } else { my_uid });

    // The host: a plugin file in a directory of its own, default settings.
    let dir = HotDir::new("v1");
    let built = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot").build();
    let hot = if in_memory {
        built.unwrap_or_else(|refused| {
            assert_no_intrusion(&log);
            panic!("the host did not start: {refused}")
        })
    } else {
        // Copies are files, and the default directory is the attacker's: refused.
        let refused = built
            .err()
            .expect("the attacker's directory must be refused");
        assert_eq!(refused.stage, Stage::Security, "{refused}");
        assert!(
            refused.reason.contains(&format!("owned by uid {NOBODY}")),
            "{refused}"
        );
        assert!(refused.reason.contains("fidius-shadow"), "{refused}");
        // A private directory of the host's own serves, the attacker still at work.
        HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
            .shadow_dir(&dir.shadow)
            .build()
            .expect("the host starts with its own private directory")
    };
    let rx = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();

    let builds = [("v2", 2), ("v3", 3), ("v1", 1)];
    let mut missed = Vec::new();
    for i in 0..DEPLOYS {
        let (which, version) = builds[i % builds.len()];
        dir.deploy(which, Deploy::Rename);
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.version().unwrap() != version && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if client.version().unwrap() != version {
            missed.push(i);
        }
    }
    let status = hot.status();
    drop(client);
    drop(hot);

    // Stop the attacker: closing its standard input ends it.
    drop(attacker.0.stdin.take());
    line.clear();
    attacker_out.read_line(&mut line).unwrap();
    let replaced = line.trim().to_string();

    let problems: Vec<ReloadEvent> = rx
        .try_iter()
        .filter(|e| matches!(e, ReloadEvent::Rejected(_) | ReloadEvent::Retrying { .. }))
        .collect();
    eprintln!(
        "attacker uid {}: {replaced}; host copies {}",
        if cross_user { NOBODY } else { my_uid },
        if in_memory {
            "in memory"
        } else {
            "in its own private directory"
        }
    );
    assert_no_intrusion(&log);
    assert!(missed.is_empty(), "deploys not served: {missed:?}");
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(status.reloads, DEPLOYS as u64);
    assert_eq!(status.rejections, 0);
    // The host wrote nothing into the attacker's directories.
    if cross_user {
        for name in [
            "fidius-shadow".to_string(),
            format!("fidius-shadow-{my_uid}"),
        ] {
            assert_no_files_of(&shared.path().join(name), my_uid);
        }
    }
}

/// The attacker's process, killed if the test ends early.
struct Attacker(Child);

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The attacker's library never ran in this process.
fn assert_no_intrusion(log: &Path) {
    let intrusions = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        intrusions.is_empty(),
        "the attacker's code ran in the host {} times:\n{intrusions}",
        intrusions.lines().count()
    );
}

/// Nothing in `dir` belongs to `uid`.
fn assert_no_files_of(dir: &Path, uid: u32) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        assert_ne!(
            entry.metadata().unwrap().uid(),
            uid,
            "{} was written into the attacker's directory",
            entry.path().display()
        );
    }
}
