//! Building the demo plugins and finding their libraries.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The demo plugins: (crate, plugin type).
pub const PLUGINS: &[(&str, &str)] = &[("uppercase", "Uppercase"), ("redact", "Redact")];

/// The plugin the demo runs isolated, in a process of its own: (crate, plugin type).
pub const ISOLATED: (&str, &str) = ("fragile", "Fragile");

/// Where the built plugins are.
pub struct Built {
    pub workspace: PathBuf,
    pub target_dir: PathBuf,
}

impl Built {
    /// The plugin directory: where cargo puts the plugins it builds.
    pub fn plugin_dir(&self) -> PathBuf {
        self.target_dir.join("debug")
    }

    /// The library file of demo crate `name`.
    pub fn library(&self, name: &str) -> PathBuf {
        self.plugin_dir().join(format!(
            "{}{name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ))
    }

    /// (plugin type, library file) for every demo plugin.
    pub fn files(&self) -> Vec<(String, PathBuf)> {
        PLUGINS
            .iter()
            .map(|(krate, plugin)| (plugin.to_string(), self.library(krate)))
            .collect()
    }

    /// Where the demo keeps its shadow copies.
    pub fn shadow_dir(&self) -> PathBuf {
        self.target_dir.join("demo-shadow")
    }
}

/// The file name of the isolated plugin's library.
pub fn isolated_library_name() -> PathBuf {
    PathBuf::from(format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        ISOLATED.0,
        std::env::consts::DLL_SUFFIX
    ))
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("demo-app sits in the workspace")
        .to_path_buf()
}

pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `cargo build -p uppercase -p redact -p fragile`, in the workspace's target
/// directory.
pub fn build() -> Result<Built, String> {
    let workspace = workspace();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&workspace).arg("build");
    for (krate, _) in PLUGINS.iter().chain([&ISOLATED]) {
        cmd.args(["-p", krate]);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("running cargo to build the demo plugins: {e}"))?;
    if !status.success() {
        return Err("building the demo plugins failed".into());
    }
    Ok(Built {
        workspace,
        target_dir,
    })
}
