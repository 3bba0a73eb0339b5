//! Plugin cdylibs never link host-only dependencies: proven from their dependency tree.

use fidius_tests::workspace_dir;
use std::process::Command;

/// Host-only crates a plugin must never link.
const HOST_ONLY: &[&str] = &["libloading", "notify", "arc-swap", "tracing"];

fn normal_dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_dir())
        .args(["tree", "-e", "normal", "--prefix", "none", "-p", package])
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn plugins_do_not_link_the_loader() {
    for plugin in ["my-plugin", "calc-plugins", "bytes-plugin"] {
        let deps = normal_dependencies(plugin);
        assert!(
            deps.iter().any(|d| d == "fidius-core"),
            "{plugin}: {deps:?}"
        );
        for host_only in HOST_ONLY {
            assert!(
                !deps.iter().any(|d| d == host_only),
                "{plugin} links host-only crate {host_only}: {deps:?}"
            );
        }
    }
}

#[test]
fn the_host_side_does_link_the_loader() {
    // The check above would be vacuous if the tree never showed libloading at all.
    let deps = normal_dependencies("fidius-tests");
    assert!(deps.iter().any(|d| d == "libloading"), "{deps:?}");
}
