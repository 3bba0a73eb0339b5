//! State carried from one version to the next (`fidius::PluginState`), through
//! loaded handles: saved from one build, restored into another, refused by a build
//! that takes none, absent from a build that does not opt in.

use counter_interface::{Counter, CounterClient};
use fidius::host::PluginLibrary;
use fidius::CallError;
use fidius_tests::counter_build;

fn load(which: &str) -> (tempfile::TempDir, fidius::PluginHandle) {
    // A copy of its own: each load is a separate instance with its own counters.
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join(fidius_tests::lib_file(&format!("counter_{which}")));
    std::fs::copy(counter_build(which), &path).unwrap();
    let handle = PluginLibrary::open(&path)
        .unwrap()
        .handle("Counting", Some(&<dyn Counter as fidius::Interface>::INFO))
        .unwrap();
    (dir, handle)
}

#[test]
fn state_saved_from_one_build_is_restored_into_the_next() {
    let (_a, v1) = load("v1");
    assert!(v1.info().carries_state);
    let old = CounterClient::new(v1.clone()).unwrap();
    for _ in 0..3 {
        old.bump(1, 5).unwrap();
    }
    old.bump(2, 7).unwrap();
    let saved = v1.save_state().expect("it carries state").unwrap();
    assert_eq!(saved.version(), 1);

    let (_b, v2) = load("v2");
    let new = CounterClient::new(v2.clone()).unwrap();
    assert_eq!(new.value(1).unwrap(), 0, "a fresh instance");
    v2.restore_state(&saved).expect("it carries state").unwrap();
    assert_eq!(new.build().unwrap(), "v2");
    assert_eq!(new.value(1).unwrap(), 15);
    assert_eq!(new.value(2).unwrap(), 7);
}

#[test]
fn a_build_may_refuse_the_state_and_one_that_does_not_opt_in_has_none() {
    let (_a, v1) = load("v1");
    CounterClient::new(v1.clone()).unwrap().bump(1, 1).unwrap();
    let saved = v1.save_state().unwrap().unwrap();
    let (_b, refusing) = load("refuse");
    match refusing.restore_state(&saved).unwrap() {
        Err(CallError::Plugin(e)) => assert_eq!(e.code, "STATE_REFUSED"),
        other => panic!("{other:?}"),
    }
    let (_c, stateless) = load("stateless");
    assert!(!stateless.info().carries_state);
    assert!(stateless.save_state().is_none());
    assert!(stateless.restore_state(&saved).is_none());
    // A state that is not even a state.
    let garbage = fidius::SavedState::new(1, vec![0xc1]);
    let (_d, v2) = load("v2");
    match v2.restore_state(&garbage).unwrap() {
        Err(CallError::Plugin(e)) => assert_eq!(e.code, "STATE_UNREADABLE"),
        other => panic!("{other:?}"),
    }
}
