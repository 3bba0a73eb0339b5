//! `membarrier` starts failing while a host runs (a seccomp filter applied after
//! start-up): the versions calls may have announced without a fence stay loaded and
//! are reported, the rest drain and unload as usual, and reloads go on.
#![cfg(target_os = "linux")]

#[path = "../../fidius-hotreload/tests/support/forbid_membarrier.rs"]
mod support;

use fidius_hotreload::{HotPlugin, ReloadEvent};
use fidius_tests::{recv_until, Deploy, HotDir};
use hot_interface::{Versioned, VersionedClient};

#[test]
fn losing_membarrier_strands_two_versions_and_reloads_go_on() {
    if !support::in_child_process("losing_membarrier_strands_two_versions_and_reloads_go_on") {
        return;
    }
    if !fidius_hotreload::uses_membarrier() {
        eprintln!("SKIPPED: membarrier is not in use here, so it cannot be lost");
        return;
    }
    let dir = HotDir::new("v1");
    // One version may drain at a time: a stranded version must not count, or the
    // reloads below would be refused.
    let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .watch(false)
        .max_retained(1)
        .build()
        .unwrap();
    let rx = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();
    assert_eq!(client.version().unwrap(), 1);
    if let Err(e) = support::forbid_membarrier() {
        eprintln!("SKIPPED: no seccomp filter can be installed here ({e})");
        return;
    }
    // Generation 1 was current while calls relied on membarrier, and generation 2 was
    // made current before the reclaim that found it failing: both are stranded.
    // Generations 3 and 4 are made current after the switch and unload as usual.
    for (build, version) in [("v2", 2), ("v3", 3), ("v1", 1), ("v2", 2)] {
        dir.deploy(build, Deploy::Rename);
        hot.reload_now().unwrap();
        assert_eq!(client.version().unwrap(), version);
    }
    let events = recv_until(&rx, |e| {
        matches!(e, ReloadEvent::Unloaded { generation: 4, .. })
    });
    let stranded: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            ReloadEvent::Stranded { generation } => Some(*generation),
            _ => None,
        })
        .collect();
    let unloaded: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            ReloadEvent::Unloaded { generation, .. } => Some(*generation),
            _ => None,
        })
        .collect();
    assert_eq!(stranded, [1, 2], "{events:#?}");
    assert_eq!(unloaded, [3, 4], "{events:#?}");
    assert!(!fidius_hotreload::uses_membarrier(), "switched to fences");
    assert!(hot.status().draining.is_empty(), "stranded is not draining");
    // The current version and the two stranded ones.
    assert_eq!(dir.mapped_copies(), 3);
    assert_eq!(client.version().unwrap(), 2);
}
