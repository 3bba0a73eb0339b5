//! Helpers shared by the end-to-end tests: where the compiled plugin fixtures are.
//!
//! The fixtures (real cdylibs from `tests/plugins/`) are built once by this crate's
//! build script.

use std::path::{Path, PathBuf};

/// The directory holding the compiled fixture libraries.
pub fn fixture_dir() -> &'static Path {
    Path::new(env!("FIDIUS_FIXTURE_DIR"))
}

/// The workspace root.
pub fn workspace_dir() -> &'static Path {
    Path::new(env!("FIDIUS_WORKSPACE_DIR"))
}

/// The path of fixture library `crate_name` (e.g. `calc-plugins`), with this
/// platform's prefix and extension.
pub fn fixture(crate_name: &str) -> PathBuf {
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    let path = fixture_dir().join(file);
    assert!(path.exists(), "fixture {} was not built", path.display());
    path
}

/// A fresh temporary directory holding copies of the given fixtures.
pub fn dir_with(fixtures: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    for f in fixtures {
        let src = fixture(f);
        std::fs::copy(&src, dir.path().join(src.file_name().unwrap())).expect("copying a fixture");
    }
    dir
}
