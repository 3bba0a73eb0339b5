//! Where a loaded version's bytes live, and what an operator's mistakes with the
//! watched file can and cannot do to them.
#![cfg(target_os = "linux")]

use fidius_hotreload::{HotPlugin, ReloadEvent};
use fidius_tests::{mapped_names, Deploy, HotDir};
use hot_interface::{Versioned, VersionedClient};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

fn hot(dir: &HotDir) -> HotPlugin {
    HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .build()
        .unwrap()
}

/// What `/proc/self/maps` and `status()` say about a loaded version: an anonymous
/// in-memory file, or (where copies are files) an already unlinked file in a
/// directory only this user can enter. Never a path in a shared directory.
#[test]
fn a_loaded_version_has_no_path_in_any_shared_directory() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir);
    let client = VersionedClient::new(hot.handle()).unwrap();
    let shadow = hot.status().current.shadow;
    let origin = client.origin().unwrap();
    let maps: Vec<String> = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&shadow.display().to_string()))
        .map(String::from)
        .collect();
    eprintln!("status().current.shadow: {}", shadow.display());
    eprintln!("the plugin's own code is mapped from: {origin}");
    eprintln!("/proc/self/maps:\n  {}", maps.join("\n  "));

    assert_eq!(origin, shadow.display().to_string());
    assert!(!maps.is_empty());
    assert!(!shadow.exists(), "no file of the copy is left on disk");
    assert!(dir.shadow_files().is_empty(), "{:?}", dir.shadow_files());
    let temp = std::env::temp_dir().canonicalize().unwrap();
    if fidius_hotreload::in_memory_copies() {
        assert!(
            origin.starts_with("/memfd:fidius:libhot.so:"),
            "an anonymous in-memory file named for its source: {origin}"
        );
        assert!(maps.iter().all(|l| l.ends_with(" (deleted)")), "{maps:#?}");
        // No copy of any plugin is mapped from the temporary directory.
        let from_temp: Vec<String> = mapped_names()
            .into_iter()
            .filter(|n| n.starts_with(temp.to_str().unwrap()) && n.contains(".fidius-"))
            .collect();
        assert!(from_temp.is_empty(), "{from_temp:#?}");
    } else {
        // A file in the host's own private directory, unlinked since it was loaded.
        assert!(shadow.starts_with(&dir.shadow), "{}", shadow.display());
        let meta = std::fs::metadata(&dir.shadow).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert_eq!(meta.uid(), std::fs::metadata("/proc/self").unwrap().uid());
    }
}

/// An operator hard-links the watched name to the copy being served, then `cp`s a
/// new build over the watched name. Had the link worked, that write would land in
/// the loaded library and kill the host (SIGBUS). The served copy has no name to
/// link to, so the host survives and serves the new build.
#[test]
fn a_cp_over_a_hard_link_to_the_served_copy_cannot_crash_the_host() {
    let dir = HotDir::new("v1");
    let hot = hot(&dir);
    let rx = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();
    assert_eq!(client.version().unwrap(), 1);
    let served = hot.status().current.shadow;

    std::fs::remove_file(&dir.file).unwrap();
    let linked = std::fs::hard_link(&served, &dir.file);
    if linked.is_err() {
        // As the operator had it before: the watched file is the v1 build.
        dir.deploy("v1", Deploy::Rename);
    }
    // `cp` of the new build over the watched name: written in place.
    dir.deploy("v2", Deploy::InPlace);
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.version().unwrap() != 2 {
        assert!(Instant::now() < deadline, "v2 was not served");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        linked.is_err(),
        "the served copy {} could be hard-linked",
        served.display()
    );
    assert_eq!(client.work(1).unwrap(), 16 + 2);
    let swapped = rx
        .try_iter()
        .filter(|e| matches!(e, ReloadEvent::Swapped { .. }))
        .count();
    assert_eq!(swapped, 1);
}
