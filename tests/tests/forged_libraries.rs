//! Malformed registries and descriptors, from the hand-built `forged` library: each
//! gives its own `LoadError`, naming the file, and never a crash. Misbehaving methods
//! give typed `CallError`s.
#![cfg(target_os = "linux")]

use fidius::host::{PluginHost, PluginLibrary};
use fidius::{CallError, LoadError};
use fidius_tests::fixture;
use std::path::PathBuf;

/// A copy of the forged library named for `variant`, in its own directory.
fn forged(variant: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let name = if variant.is_empty() {
        "libforged.so".to_string()
    } else {
        format!("libforged_{variant}.so")
    };
    let path = dir.path().join(name);
    std::fs::copy(fixture("forged"), &path).unwrap();
    (dir, path)
}

fn open_err(variant: &str) -> (LoadError, PathBuf, tempfile::TempDir) {
    let (dir, path) = forged(variant);
    let err = PluginLibrary::open(&path).expect_err(variant);
    assert_eq!(err.path(), Some(path.as_path()), "{variant}: {err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    (err, path, dir)
}

#[test]
fn null_registry() {
    let (err, ..) = open_err("null_registry");
    assert!(matches!(err, LoadError::NullRegistry { .. }), "{err:?}");
}

#[test]
fn bad_magic_names_both_sides() {
    let (err, ..) = open_err("bad_magic");
    let LoadError::BadMagic {
        expected, found, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(expected, &fidius::FIDIUS_MAGIC);
    assert_eq!(found, b"NOTFIDIU");
}

#[test]
fn other_registry_version() {
    let (err, ..) = open_err("registry_version");
    assert!(
        matches!(err, LoadError::RegistryVersion { expected, found, .. }
            if expected == fidius::REGISTRY_VERSION && found == fidius::REGISTRY_VERSION + 41),
        "{err:?}"
    );
}

#[test]
fn other_abi_version() {
    let (err, ..) = open_err("abi");
    let LoadError::AbiVersion {
        expected, found, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_ne!(expected, found);
    assert!(
        err.to_string().contains(expected.as_str()) && err.to_string().contains(found.as_str())
    );
}

#[test]
fn descriptor_too_small() {
    let (err, ..) = open_err("too_small");
    assert!(
        matches!(err, LoadError::DescriptorTooSmall { found: 16, .. }),
        "{err:?}"
    );
}

#[test]
fn invalid_descriptors() {
    for (variant, words) in [
        ("null_name", "plugin name is null"),
        ("null_vtable", "null vtable"),
        ("absurd_count", "exceeds the limit"),
        ("bad_strategy", "unknown buffer strategy 7"),
        ("null_free", "free_buffer"),
        ("null_descriptor", "descriptor #0 is null"),
    ] {
        let (err, ..) = open_err(variant);
        let LoadError::InvalidDescriptor { reason, .. } = &err else {
            panic!("{variant}: {err:?}")
        };
        assert!(reason.contains(words), "{variant}: {reason}");
    }
}

#[test]
fn duplicate_plugin_names() {
    let (err, ..) = open_err("duplicate");
    assert!(
        matches!(&err, LoadError::DuplicatePlugin { name, .. } if name == "Forged"),
        "{err:?}"
    );
}

#[test]
fn misbehaving_methods_give_typed_errors_and_the_handle_survives() {
    let (_dir, path) = forged("");
    let handle = PluginHost::builder()
        .build()
        .load_from(&path, "Forged")
        .unwrap();
    for _ in 0..3 {
        let err = handle.call_method_raw(0, &[]).unwrap_err();
        assert_eq!(err, CallError::UnknownStatus(99));
        let err = handle.call_method::<_, String>(1, &()).unwrap_err();
        assert!(matches!(err, CallError::Serialization(_)), "{err:?}");
    }
}

#[test]
fn discover_reports_every_forged_file() {
    let dir = tempfile::tempdir().unwrap();
    let variants = [
        "null_registry",
        "bad_magic",
        "abi",
        "null_name",
        "duplicate",
    ];
    for v in variants {
        std::fs::copy(
            fixture("forged"),
            dir.path().join(format!("libforged_{v}.so")),
        )
        .unwrap();
    }
    let found = PluginHost::builder()
        .search_path(dir.path())
        .build()
        .discover();
    assert!(found.plugins.is_empty());
    assert_eq!(found.failures.len(), variants.len(), "{:?}", found.failures);
}
