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
use fidius::host::trust::{read_signature, signature_path, Hasher, Trust};
use parking_lot::Mutex;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the last good builds are kept.
#[derive(Debug)]
pub(crate) struct LastGood {
    dir: PathBuf,
    /// One keep at a time: two would race for the same file.
    writing: Mutex<()>,
}

impl LastGood {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            writing: Mutex::new(()),
        }
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

    /// The kept build of `plugin` at `source`, if there is one. A store that fails its
    /// checks (not private to this user) is not used, and says why.
    pub fn find(&self, source: &Path, plugin: &str) -> Option<PathBuf> {
        if let Err(e) = private_dir::check(&self.dir) {
            tracing::warn!(store = %self.dir.display(), reason = %describe(e), "the last-known-good store is not used");
            return None;
        }
        let file = self.file_for(source, plugin);
        std::fs::symlink_metadata(&file)
            .is_ok_and(|m| m.is_file())
            .then_some(file)
    }

    /// Keeps the build at `source` as `plugin`'s last good one, if its content still
    /// hashes to `content_hash` (the version's) and, with a `trust`, its signature
    /// file still vouches for it (both are then kept, as a pair). `Ok(false)` when it
    /// changed meanwhile: the next good build will be kept instead. The kept files are
    /// replaced whole (written beside them, then renamed, the signature first).
    pub fn keep(
        &self,
        source: &Path,
        plugin: &str,
        content_hash: u64,
        trust: Option<&Trust>,
    ) -> Result<bool, String> {
        static STAGED: AtomicU64 = AtomicU64::new(0);
        let _one_at_a_time = self.writing.lock();
        private_dir::ensure(&self.dir).map_err(describe)?;
        let target = self.file_for(source, plugin);
        let staged = target.with_extension(format!(
            "staged-{}-{}",
            std::process::id(),
            STAGED.fetch_add(1, Ordering::Relaxed)
        ));
        let staged_sig = signature_path(&staged);
        let kept = Self::write_pair(source, (&staged, &staged_sig), &target, content_hash, trust);
        // Whatever happened, nothing staged stays behind.
        let _ = std::fs::remove_file(&staged);
        let _ = std::fs::remove_file(&staged_sig);
        kept
    }

    /// Copies `source` to `staged` and, when it is the build loaded (and, with a
    /// trust, still vouched for), renames it (and its signature) into `target`.
    fn write_pair(
        source: &Path,
        (staged, staged_sig): (&Path, &Path),
        target: &Path,
        content_hash: u64,
        trust: Option<&Trust>,
    ) -> Result<bool, String> {
        fn at(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
            move |e| format!("{}: {e}", path.display())
        }
        let source_sig = signature_path(source);
        let signature = match trust {
            Some(_) => read_signature(&source_sig).map_err(at(&source_sig))?,
            None => None,
        };
        let mut input = fidius::host::platform::open_regular(source).map_err(at(source))?;
        let mut output = Hashing {
            file: private_dir::create_file(staged).map_err(at(staged))?,
            content: xxhash_rust::xxh3::Xxh3::new(),
            sha256: trust.map(|_| Hasher::new()),
        };
        std::io::copy(&mut input, &mut output).map_err(at(staged))?;
        if output.content.digest() != content_hash {
            return Ok(false);
        }
        if let (Some(trust), Some(sha256)) = (trust, output.sha256) {
            if trust
                .check(&sha256.finish(), signature.as_deref(), &source_sig)
                .is_err()
            {
                return Ok(false);
            }
            let target_sig = signature_path(target);
            match signature {
                Some(text) => {
                    private_dir::create_file(staged_sig)
                        .and_then(|mut f| f.write_all(text.as_bytes()))
                        .map_err(at(staged_sig))?;
                    std::fs::rename(staged_sig, &target_sig).map_err(at(&target_sig))?;
                }
                // Pinned, not signed: no signature to keep.
                None => {
                    let _ = std::fs::remove_file(&target_sig);
                }
            }
        }
        std::fs::rename(staged, target).map_err(at(target))?;
        Ok(true)
    }
}

/// Writes through to the kept file, hashing what passes: the content hash of
/// `VersionInfo`, and the SHA-256 a trust judges.
struct Hashing {
    file: std::fs::File,
    content: xxhash_rust::xxh3::Xxh3,
    sha256: Option<Hasher>,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.content.update(&buf[..n]);
        if let Some(sha256) = &mut self.sha256 {
            sha256.update(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

fn describe(e: CopyError) -> String {
    match e {
        CopyError::Insecure(why) => why,
        CopyError::Source(e) | CopyError::Target(e) => e.to_string(),
        other => format!("{other:?}"),
    }
}
