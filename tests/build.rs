//! Builds the plugin fixtures (real cdylibs) once per build of the test crate, into a
//! target directory of their own, and tells the tests where they are through the
//! `FIDIUS_FIXTURE_DIR` environment variable.
//!
//! A separate target directory is needed: a nested cargo on the outer build's target
//! directory would wait forever for the lock the outer build holds.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The fixture packages, all under `tests/plugins/`.
const FIXTURES: &[&str] = &[
    "my-plugin",
    "calc-plugins",
    "calc-alt",
    "calc-variants",
    "bytes-plugin",
    "not-a-plugin",
    "intruder",
    "bench-plugin",
    "forged",
    "stream-plugin",
    "misbehave-plugin",
    // Mis-built on purpose, as a new user might: the errors must say what is wrong.
    "forgot-registry",
    "rlib-plugin",
    // A plugin of an SDK that re-exports fidius, depending on the SDK alone.
    "sdk-plugin",
];

/// The builds of `hot-plugin`, each kept under its own name: (feature, library name).
/// Three versions of one plugin, and one build of another interface.
const HOT_BUILDS: &[(&str, &str)] = &[
    ("", "hot_v1"),
    ("v2", "hot_v2"),
    ("v3", "hot_v3"),
    ("other-interface", "hot_other"),
    ("pin", "hot_pin"),
    ("newer-interface", "hot_newer"),
    ("panics", "hot_panics"),
];

/// The builds of `counter-plugin`, likewise: (feature, library name).
const COUNTER_BUILDS: &[(&str, &str)] = &[
    ("", "counter_v1"),
    ("v2", "counter_v2"),
    ("refuse", "counter_refuse"),
    ("stateless", "counter_stateless"),
    ("panics", "counter_panics"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out; put fixtures beside it.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_root = out_dir
        .ancestors()
        .nth(4)
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| workspace.join("target"));
    let fixture_target = target_root.join("fidius-fixtures");

    for dir in [
        "tests/plugins",
        "demo-app/src",
        "demo-plugins",
        "fidius/src",
        "fidius-core/src",
        "fidius-macros/src",
        "fidius-cli/src",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    // Benchmarks (the release profile) measure release builds of the plugins.
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let profile_dir = fixture_target.join(if release { "release" } else { "debug" });
    let cargo = |packages: &[&str], feature: &str| {
        let mut cmd = cargo_build(&workspace, &fixture_target, release);
        for p in packages {
            cmd.arg("-p").arg(p);
        }
        if !feature.is_empty() {
            cmd.arg("--features").arg(feature);
        }
        let status = cmd
            .status()
            .expect("running cargo to build plugin fixtures");
        assert!(
            status.success(),
            "building plugin fixtures {packages:?} {feature} failed"
        );
    };

    let versions_dir = profile_dir.join("versions");
    std::fs::create_dir_all(&versions_dir).unwrap();

    // The bench plugin with `SharedAllocator` as its global allocator, kept under a
    // name of its own, before the plain build below takes the package's file name.
    cargo(&["bench-plugin"], "shared-alloc");
    std::fs::copy(
        profile_dir.join(lib_file("bench_plugin")),
        versions_dir.join(lib_file("bench_shared")),
    )
    .unwrap();

    cargo(FIXTURES, "");
    for (feature, name) in HOT_BUILDS {
        cargo(&["hot-plugin"], feature);
        std::fs::copy(
            profile_dir.join(lib_file("hot_plugin")),
            versions_dir.join(lib_file(name)),
        )
        .unwrap();
    }
    for (feature, name) in COUNTER_BUILDS {
        cargo(&["counter-plugin"], feature);
        std::fs::copy(
            profile_dir.join(lib_file("counter_plugin")),
            versions_dir.join(lib_file(name)),
        )
        .unwrap();
    }

    // The command-line tool, tested against the fixtures.
    let mut cmd = cargo_build(&workspace, &fixture_target, release);
    cmd.args(["-p", "fidius-cli", "--bin", "fidius"]);
    let status = cmd
        .status()
        .expect("running cargo to build the fidius tool");
    assert!(status.success(), "building the fidius tool failed");

    // The same plugin in the other profile too: hosts must load debug and release
    // builds alike.
    if !release {
        let mut cmd = cargo_build(&workspace, &fixture_target, true);
        cmd.args(["-p", "my-plugin"]);
        let status = cmd
            .status()
            .expect("running cargo to build my-plugin in release");
        assert!(status.success(), "building my-plugin in release failed");
    }

    // The demo host, whose tour the tests run.
    let mut cmd = cargo_build(&workspace, &fixture_target, release);
    cmd.args(["-p", "demo-app"]);
    let status = cmd.status().expect("running cargo to build the demo");
    assert!(status.success(), "building the demo failed");

    println!(
        "cargo:rustc-env=FIDIUS_FIXTURE_DIR={}",
        profile_dir.display()
    );
    println!(
        "cargo:rustc-env=FIDIUS_WORKSPACE_DIR={}",
        workspace.display()
    );
}

fn lib_file(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// `cargo build` of this workspace into the fixture target directory.
fn cargo_build(workspace: &Path, target_dir: &Path, release: bool) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    if release {
        cmd.arg("--release");
    }
    // Do not inherit the outer build's wrappers (clippy) or encoded flags.
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}
