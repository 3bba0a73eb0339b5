//! Every way loading can fail gives its own `LoadError`, naming the file and both sides
//! of any mismatch, and never crashes the host.

use calc_interface::{Calculator, CalculatorClient};
use fidius::host::{PluginHost, PluginLibrary};
use fidius::{InterfaceMismatch, LoadError};
use fidius_tests::{fixture, fixture_dir};
use std::path::{Path, PathBuf};

fn calc_host() -> PluginHost {
    PluginHost::builder()
        .search_path(fixture_dir())
        .expect_interface::<dyn Calculator>()
        .build()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn assert_names_file(err: &LoadError, path: &Path) {
    assert_eq!(err.path(), Some(path), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "message does not name the file: {err}"
    );
}

#[test]
fn missing_file() {
    let path = PathBuf::from("/definitely/not/here/libnothing.so");
    let err = PluginLibrary::open(&path).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err:?}");
    assert_names_file(&err, &path);
}

#[test]
fn empty_text_and_random_files_are_not_libraries() {
    let dir = tempfile::tempdir().unwrap();
    let mut random = vec![0u8; 4096];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in &mut random {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for (name, bytes) in [
        ("libempty.so", &b""[..]),
        (
            "libtext.so",
            &b"this is a text file named like a library\n"[..],
        ),
        ("librandom.so", &random[..]),
    ] {
        let path = write(dir.path(), name, bytes);
        let err = PluginLibrary::open(&path).unwrap_err();
        assert!(
            matches!(err, LoadError::NotALibrary { .. }),
            "{name}: {err:?}"
        );
        assert_names_file(&err, &path);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_library_for_another_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("calc-plugins")).unwrap();
    // Patch e_machine: x86_64 (62) <-> aarch64 (183).
    let other: u16 = if cfg!(target_arch = "x86_64") {
        183
    } else {
        62
    };
    bytes[18..20].copy_from_slice(&other.to_le_bytes());
    let path = write(dir.path(), "libforeign.so", &bytes);
    let err = PluginLibrary::open(&path).unwrap_err();
    let LoadError::WrongArchitecture {
        expected, found, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(expected.contains(std::env::consts::ARCH), "{expected}");
    assert!(!found.contains(std::env::consts::ARCH), "{found}");
    assert_names_file(&err, &path);
}

#[test]
fn truncated_libraries_are_caught_before_the_loader_maps_them() {
    // Mapping a truncated library would "work" and then kill the process with SIGBUS
    // on first touch of a page past the end of the file: it must never reach dlopen.
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("calc-plugins")).unwrap();
    for cut in [
        1usize,
        20,
        64,
        200,
        4096,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let path = write(dir.path(), &format!("libcut{cut}.so"), &bytes[..cut]);
        let err = PluginLibrary::open(&path).unwrap_err();
        assert!(
            matches!(&err, LoadError::NotALibrary { reason, .. } if reason.contains("truncated") || reason.contains("not an ELF")),
            "cut {cut}: {err:?}"
        );
        assert_names_file(&err, &path);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn the_dynamic_loader_refusing_a_file_is_reported() {
    // A position-independent executable has a valid shared-object header for this
    // machine, but glibc refuses to dlopen it.
    let exe = ["/bin/true", "/usr/bin/true", "/bin/ls", "/usr/bin/ls"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("a system executable to try");
    let err = PluginLibrary::open(exe).unwrap_err();
    assert!(matches!(err, LoadError::LibraryLoad { .. }), "{err:?}");
    assert_names_file(&err, exe);
}

#[test]
fn a_shared_library_that_is_not_a_plugin() {
    let path = fixture("not-a-plugin");
    let err = PluginLibrary::open(&path).unwrap_err();
    assert!(matches!(err, LoadError::MissingRegistry { .. }), "{err:?}");
    assert_names_file(&err, &path);
}

#[test]
fn another_interface() {
    let path = fixture("calc-variants");
    let err = calc_host().load_from(&path, "HelloGreeter").unwrap_err();
    let LoadError::InterfaceMismatch {
        mismatch: InterfaceMismatch::Name { expected, found },
        plugin,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (expected.as_str(), found.as_str()),
        ("Calculator", "Greeter")
    );
    assert_eq!(plugin, "HelloGreeter");
    assert_names_file(&err, &path);
}

#[test]
fn changed_required_method_changes_the_hash() {
    let path = fixture("calc-variants");
    let err = calc_host().load_from(&path, "BrokenCalc").unwrap_err();
    let LoadError::InterfaceMismatch {
        mismatch:
            InterfaceMismatch::Hash {
                expected,
                found,
                changes,
            },
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        *expected,
        CalculatorClient::<fidius::PluginHandle>::interface().hash
    );
    assert_ne!(expected, found);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{expected:#018x}")) && msg.contains(&format!("{found:#018x}")),
        "{msg}"
    );
    // The message names the method, both ways it is written, and what to do.
    assert_eq!(
        changes,
        &vec![fidius::MethodChange::Changed {
            expected: "add(i64,i64)->i64".into(),
            found: "add(i32,i32)->i32".into(),
        }]
    );
    assert!(
        msg.contains("add(i64,i64)->i64") && msg.contains("add(i32,i32)->i32"),
        "{msg}"
    );
    assert!(msg.contains("rebuild"), "{msg}");
}

#[test]
fn newer_interface_version() {
    let err = calc_host()
        .load_from(fixture("calc-variants"), "FutureCalc")
        .unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::InterfaceMismatch {
                mismatch: InterfaceMismatch::Version {
                    expected: 2,
                    found: 3
                },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn other_buffer_strategy() {
    let err = calc_host()
        .load_from(fixture("calc-variants"), "ArenaCalc")
        .unwrap_err();
    let LoadError::InterfaceMismatch {
        mismatch: InterfaceMismatch::Buffer { expected, found },
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (expected.to_string().as_str(), found.as_str()),
        ("PluginAllocated", "Arena")
    );
}

#[test]
fn changed_optional_method() {
    let err = calc_host()
        .load_from(fixture("calc-variants"), "ChangedCalc")
        .unwrap_err();
    let LoadError::InterfaceMismatch {
        mismatch:
            InterfaceMismatch::Method {
                index,
                expected,
                found,
            },
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*index, 9);
    assert_eq!(expected, "square(i64)->i64");
    assert_eq!(found, "square(i32)->i32");
}

#[test]
fn an_older_plugin_without_the_new_optional_method_still_loads() {
    let handle = calc_host()
        .load_from(fixture("calc-variants"), "OldCalc")
        .unwrap();
    assert_eq!(handle.info().interface_version, 1);
    let client = CalculatorClient::new(handle).unwrap();
    assert_eq!(client.add(1, 2).unwrap(), 4);
    assert!(!client.has_square());
    assert!(matches!(
        client.square(2).unwrap_err(),
        fidius::CallError::NotImplemented { .. }
    ));
}

#[test]
fn plugin_not_found_lists_what_is_there() {
    let err = calc_host().load("NoSuchCalc").unwrap_err();
    let LoadError::PluginNotFound {
        name,
        available,
        searched,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(name, "NoSuchCalc");
    assert!(available.iter().any(|a| a == "BasicCalc"), "{available:?}");
    assert_eq!(searched, &vec![fixture_dir().to_path_buf()]);

    let err = calc_host()
        .load_from(fixture("calc-plugins"), "Nope")
        .unwrap_err();
    assert!(matches!(err, LoadError::PluginNotFound { .. }));
}

#[test]
fn load_reports_a_mismatch_rather_than_not_found() {
    let err = calc_host().load("FutureCalc").unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::InterfaceMismatch {
                mismatch: InterfaceMismatch::Version { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn discover_lists_plugins_and_every_unusable_file() {
    let dir =
        fidius_tests::dir_with(&["calc-plugins", "calc-alt", "calc-variants", "not-a-plugin"]);
    write(dir.path(), "libjunk.so", b"junk");
    write(dir.path(), "notes.txt", b"not a library name: ignored");
    let host = PluginHost::builder()
        .search_path(dir.path())
        .search_path(dir.path().join("missing-dir"))
        .expect_interface::<dyn Calculator>()
        .build();
    let found = host.discover();
    let mut names: Vec<_> = found.plugins.iter().map(|p| p.info.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["AltCalc", "BasicCalc", "CountingCalc", "OldCalc"]);

    let describe = |e: &LoadError| match e {
        LoadError::Io { .. } => "io",
        LoadError::NotALibrary { .. } => "not-a-library",
        LoadError::MissingRegistry { .. } => "missing-registry",
        LoadError::InterfaceMismatch { mismatch, .. } => match mismatch {
            InterfaceMismatch::Name { .. } => "name",
            InterfaceMismatch::Hash { .. } => "hash",
            InterfaceMismatch::Version { .. } => "version",
            InterfaceMismatch::Buffer { .. } => "buffer",
            InterfaceMismatch::Method { .. } => "method",
            _ => "other mismatch",
        },
        _ => "other",
    };
    let mut kinds: Vec<_> = found.failures.iter().map(describe).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "buffer",
            "hash",
            "io",
            "method",
            "missing-registry",
            "name",
            "not-a-library",
            "version"
        ]
    );
}

#[test]
fn discover_without_an_expected_interface_lists_everything() {
    let dir = fidius_tests::dir_with(&["calc-variants"]);
    let found = PluginHost::builder()
        .search_path(dir.path())
        .build()
        .discover();
    assert!(found.failures.is_empty(), "{:?}", found.failures);
    assert_eq!(found.plugins.len(), 6);
    let greeter = found
        .plugins
        .iter()
        .find(|p| p.info.name == "HelloGreeter")
        .unwrap();
    assert_eq!(greeter.info.interface_name, "Greeter");
    assert_eq!(greeter.info.methods[0].signature, "greet(String)->String");
}

/// Mistakes a first-time user makes, built for real: each error says what is wrong
/// and how to fix it.
#[test]
fn a_plugin_crate_without_its_registry_is_named_with_the_fix() {
    let dir = fidius_tests::dir_with(&["forgot-registry"]);
    let err = PluginHost::builder()
        .search_path(dir.path())
        .build()
        .load("MyImpl")
        .unwrap_err();
    let message = err.to_string();
    let file = fixture("forgot-registry");
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(message.contains(&*name), "{message}");
    assert!(
        message.contains("fidius::fidius_plugin_registry!();"),
        "{message}"
    );
    let LoadError::PluginNotFound { skipped, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(skipped.len(), 1, "{skipped:?}");
}

#[test]
fn a_search_path_without_any_library_says_to_build_a_cdylib() {
    // What `cargo build` of a plugin crate left as an rlib produces: no library.
    let dir = tempfile::tempdir().unwrap();
    let rlib = fixture_dir().join("librlib_plugin.rlib");
    assert!(rlib.exists(), "{} was not built", rlib.display());
    std::fs::copy(&rlib, dir.path().join("librlib_plugin.rlib")).unwrap();
    let message = PluginHost::builder()
        .search_path(dir.path())
        .build()
        .load("MyImpl")
        .unwrap_err()
        .to_string();
    assert!(message.contains("No dynamic library"), "{message}");
    assert!(message.contains(r#"crate-type = ["cdylib"]"#), "{message}");
}

/// A plugin of an SDK that re-exports fidius (`crate = "sdk_interface::plugins"`),
/// built without any dependency on fidius itself, loads and answers.
#[test]
fn a_plugin_of_a_reexporting_sdk_loads() {
    use sdk_interface::{Greeter, GreeterClient};
    let handle = PluginHost::builder()
        .expect_interface::<dyn Greeter>()
        .build()
        .load_from(fixture("sdk-plugin"), "English")
        .unwrap();
    let client = GreeterClient::new(handle).unwrap();
    assert_eq!(client.greet("SDK".into()).unwrap(), "Hello, SDK");
}
