//! Shadow copies: every version is loaded from its own copy, at a path never used
//! before, so the dynamic loader can never hand back an old library for a new file and
//! nothing ever writes to a file that is or was mapped.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A finished shadow copy.
#[derive(Debug)]
pub(crate) struct ShadowCopy {
    pub path: PathBuf,
    pub content_hash: u64,
}

/// The directory shadow copies go to when none is configured.
pub fn default_shadow_dir() -> PathBuf {
    std::env::temp_dir().join("fidius-shadow")
}

/// The file-name prefix of every shadow copy of `source`.
fn prefix_of(source: &Path) -> String {
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    format!("{stem}.fidius-")
}

fn nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    fidius::fnv1a(
        &[
            time.to_le_bytes(),
            COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes(),
        ]
        .concat(),
    )
}

/// Copies `source` byte for byte into `dir` under a name never used before
/// (`<stem>.fidius-g<generation>-p<pid>-<nonce>.<ext>`): written under a temporary
/// name first, then renamed, so a half-written copy is never at the final path.
/// Returns the copy with the FNV-1a hash of its content.
pub(crate) fn copy(source: &Path, dir: &Path, generation: u64) -> std::io::Result<ShadowCopy> {
    std::fs::create_dir_all(dir)?;
    let ext = source
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| std::env::consts::DLL_EXTENSION.into());
    let base = format!(
        "{}g{generation}-p{}-{:016x}",
        prefix_of(source),
        std::process::id(),
        nonce()
    );
    let tmp = dir.join(format!("{base}.tmp"));
    let path = dir.join(format!("{base}.{ext}"));
    let result = (|| {
        let mut input = File::open(source)?;
        let mut output = File::create(&tmp)?;
        let mut hash = fidius::hash::Fnv1a::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hash = hash.update(&buf[..n]);
            output.write_all(&buf[..n])?;
        }
        // No fsync: a shadow copy only has to outlive this process, and the rename
        // below is atomic for every reader in it.
        drop(output);
        std::fs::rename(&tmp, &path)?;
        Ok(ShadowCopy {
            path: path.clone(),
            content_hash: hash.finish(),
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes shadow copies of `source` left in `dir` by processes that no longer run
/// (an earlier run that crashed). Returns the files removed.
pub(crate) fn remove_stale(source: &Path, dir: &Path) -> Vec<PathBuf> {
    let prefix = prefix_of(source);
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        // g<gen>-p<pid>-<nonce>.<ext>
        let pid = rest
            .split('-')
            .find_map(|part| part.strip_prefix('p'))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !process_alive(pid) {
                let path = entry.path();
                if std::fs::remove_file(&path).is_ok() {
                    removed.push(path);
                }
            }
        }
    }
    removed
}

#[cfg(target_os = "linux")]
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(not(target_os = "linux"))]
fn process_alive(_pid: u32) -> bool {
    // Without a cheap way to ask, assume it runs: never delete another live process's files.
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_unique_complete_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("libx.so");
        std::fs::write(&src, b"hello plugin").unwrap();
        let shadow = dir.path().join("shadow");
        let a = copy(&src, &shadow, 1).unwrap();
        let b = copy(&src, &shadow, 1).unwrap();
        assert_ne!(a.path, b.path);
        assert_eq!(std::fs::read(&a.path).unwrap(), b"hello plugin");
        assert_eq!(a.content_hash, fidius::fnv1a(b"hello plugin"));
        assert_eq!(a.content_hash, b.content_hash);
        assert!(a.path.extension().unwrap() == "so");
        let leftovers: Vec<_> = std::fs::read_dir(&shadow)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().unwrap() == "tmp")
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn stale_copies_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("libx.so");
        // A pid far above any real one on this machine.
        let dead = dir.path().join("libx.fidius-g3-p4000000-00ff.so");
        let mine = dir
            .path()
            .join(format!("libx.fidius-g3-p{}-00ff.so", std::process::id()));
        let other = dir.path().join("liby.fidius-g3-p4000000-00ff.so");
        for f in [&dead, &mine, &other] {
            std::fs::write(f, b"x").unwrap();
        }
        let removed = remove_stale(&src, dir.path());
        if cfg!(target_os = "linux") {
            assert_eq!(removed, vec![dead.clone()]);
        }
        assert!(mine.exists() && other.exists());
    }

    #[test]
    fn missing_source_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let err = copy(&dir.path().join("gone.so"), dir.path(), 1).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
