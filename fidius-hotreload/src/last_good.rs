//! The last-known-good store (opt-in, [`HotPluginBuilder::last_known_good`]): the
//! last build of each hot plugin that passed validation (and its probation, when it
//! had one), kept so that a host restarting after a bad deploy starts from it instead
//! of failing.
//!
//! The store is a directory private to this user (the checks of the shadow
//! directory: mode 0700, owned by this user, writable by nobody else), holding one
//! file per plugin: bounded by the number of plugins, whatever the number of reloads.
//! A build is kept by copying the watched file again once its version is proven, and
//! only if that copy has the content the version was loaded from (a file changed
//! meanwhile is not kept; the next good build will be). With a `Trust`, its signature
//! is kept beside it, and a start from the store is judged like any other.
//!
//! [`HotPluginBuilder::last_known_good`]: crate::HotPluginBuilder::last_known_good

use crate::shadow::{private_dir, CopyError};
use fidius::host::trust::{read_signature, signature_path};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the last good builds are kept.
#[derive(Debug, Clone)]
pub(crate) struct LastGood {
    dir: PathBuf,
}

impl LastGood {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The file keeping the last good build of `plugin` watched at `source`:
    /// `<file stem>.<plugin>.<hash of both>.<extension>`.
    pub fn file_for(&self, source: &Path, plugin: &str) -> PathBuf {
        let stem = source
            .file_stem()
            .map_or_else(|| "plugin".into(), |s| s.to_string_lossy());
        let ext = source.extension().map_or_else(
            || std::env::consts::DLL_EXTENSION.into(),
            |e| e.to_string_lossy(),
        );
        let key = [
            source.as_os_str().as_encoded_bytes(),
            b"\0",
            plugin.as_bytes(),
        ]
        .concat();
        let name: String = format!("{stem}.{plugin}.{:016x}.{ext}", fidius::fnv1a(&key))
            .chars()
            .map(|c| if c == '/' || c == '\\' { '_' } else { c })
            .collect();
        self.dir.join(name)
    }

    /// The kept build of `plugin` at `source`, if there is one (in a store that passes
    /// its checks).
    pub fn find(&self, source: &Path, plugin: &str) -> Option<PathBuf> {
        private_dir::check(&self.dir).ok()?;
        let file = self.file_for(source, plugin);
        std::fs::symlink_metadata(&file)
            .is_ok_and(|m| m.is_file())
            .then_some(file)
    }

    /// Keeps the build at `source` as `plugin`'s last good one, if its content still
    /// hashes to `content_hash` (the version's); with `signed`, its signature too.
    /// Replaces the kept one whole (written beside it, then renamed).
    pub fn keep(
        &self,
        source: &Path,
        plugin: &str,
        content_hash: u64,
        signed: bool,
    ) -> Result<bool, String> {
        private_dir::ensure(&self.dir).map_err(describe)?;
        let target = self.file_for(source, plugin);
        let staged = target.with_extension(format!("staged-{}", std::process::id()));
        let _ = std::fs::remove_file(&staged);
        let written = (|| -> std::io::Result<bool> {
            let mut input = fidius::host::platform::open_regular(source)?;
            let mut output = Hashing(
                private_dir::create_file(&staged)?,
                xxhash_rust::xxh3::Xxh3::new(),
            );
            std::io::copy(&mut input, &mut output)?;
            Ok(output.1.digest() == content_hash)
        })();
        match written {
            Ok(true) => {}
            Ok(false) => {
                let _ = std::fs::remove_file(&staged);
                return Ok(false);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(format!("{}: {e}", staged.display()));
            }
        }
        if signed {
            let signature = read_signature(&signature_path(source))
                .map_err(|e| format!("{}: {e}", signature_path(source).display()))?;
            let target_sig = signature_path(&target);
            match signature {
                Some(text) => {
                    let staged_sig = signature_path(&staged);
                    let _ = std::fs::remove_file(&staged_sig);
                    private_dir::create_file(&staged_sig)
                        .and_then(|mut f| f.write_all(text.as_bytes()))
                        .and_then(|()| std::fs::rename(&staged_sig, &target_sig))
                        .map_err(|e| format!("{}: {e}", target_sig.display()))?;
                }
                None => {
                    let _ = std::fs::remove_file(&target_sig);
                }
            }
        }
        std::fs::rename(&staged, &target).map_err(|e| format!("{}: {e}", target.display()))?;
        Ok(true)
    }
}

/// Writes through to the kept file, hashing what passes (the content hash of
/// `VersionInfo`).
struct Hashing(std::fs::File, xxhash_rust::xxh3::Xxh3);

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn describe(e: CopyError) -> String {
    match e {
        CopyError::Insecure(why) => why,
        CopyError::Source(e) | CopyError::Target(e) => e.to_string(),
        other => format!("{other:?}"),
    }
}
