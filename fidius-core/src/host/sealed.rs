//! Sealed copies: a private copy of a library file that nobody can change, made for a
//! trusted load. The copy is hashed while it is written and checked against the
//! host's [`Trust`](super::trust::Trust) before the dynamic loader is given it, so the
//! bytes verified are the bytes loaded, whatever happens to the original file.
//!
//! On Linux the copy is an in-memory file (`memfd_create`) sealed against every
//! change and loaded through `/proc/self/fd`; where that is unavailable, and on other
//! systems, it is a file in a fresh directory only this user can enter, removed again
//! when the library is closed.

use super::trust::{read_signature, signature_path, Digest, Hasher, Trust, Verified};
use super::LoadError;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A copy that can no longer change, and the digest of its content.
pub(crate) struct SealedCopy {
    load_path: PathBuf,
    digest: Digest,
    _backing: Backing,
}

enum Backing {
    /// The in-memory file; loaded through its descriptor, which must stay open until
    /// the dynamic loader has it.
    #[cfg(target_os = "linux")]
    Memory(#[allow(dead_code)] std::os::fd::OwnedFd),
    /// The private directory holding the copy, removed when dropped.
    Dir(#[allow(dead_code)] tempfile::TempDir),
}

impl SealedCopy {
    /// What to hand the dynamic loader.
    pub fn load_path(&self) -> &Path {
        &self.load_path
    }
}

/// A private copy of a library that nobody can change, whose content a [`Trust`]
/// accepted: what a host that loads the library some other way (in a plugin process,
/// say) hands over instead of the library's path. [`PluginLibrary::open_trusted`]
/// makes one and loads it.
///
/// [`PluginLibrary::open_trusted`]: super::PluginLibrary::open_trusted
pub struct TrustedCopy {
    copy: SealedCopy,
    verified: Verified,
}

impl std::fmt::Debug for TrustedCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedCopy")
            .field("load_path", &self.copy.load_path)
            .field("verified", &self.verified)
            .finish()
    }
}

impl TrustedCopy {
    /// Copies `library`, reads its signature file as a pair with it, and judges the
    /// copy; see [`PluginLibrary::open_trusted`](super::PluginLibrary::open_trusted).
    /// An untrusted build is [`LoadError::Untrusted`].
    pub fn make(library: impl AsRef<Path>, trust: &Trust) -> Result<Self, LoadError> {
        let (copy, verified) = verified_copy(library.as_ref(), trust)?;
        Ok(Self { copy, verified })
    }

    /// The path to load the copy through (on Linux, its descriptor's
    /// `/proc/self/fd/N`). Valid while this value lives.
    pub fn load_path(&self) -> &Path {
        self.copy.load_path()
    }

    /// A new descriptor of the copy, which keeps it alive on its own.
    pub fn open(&self) -> std::io::Result<File> {
        File::open(self.copy.load_path())
    }

    /// Why it was trusted.
    pub fn verified(&self) -> &Verified {
        &self.verified
    }

    /// The SHA-256 of its content.
    pub fn digest(&self) -> Digest {
        self.copy.digest
    }

    pub(crate) fn into_parts(self) -> (SealedCopy, Verified) {
        (self.copy, self.verified)
    }
}

/// How many times a copy is made again when the library or its signature changed
/// while it was read (a deploy in progress), and the pause before each.
const ATTEMPTS: u32 = 5;
const PAUSE: Duration = Duration::from_millis(50);

/// Copies `source`, reads its signature file as a pair with it, and judges the copy.
/// A library or signature that changes while this runs is read again (a few times,
/// briefly), never judged half old and half new.
fn verified_copy(source: &Path, trust: &Trust) -> Result<(SealedCopy, Verified), LoadError> {
    let io = |source_err: std::io::Error, path: &Path| LoadError::Io {
        path: path.to_path_buf(),
        source: source_err,
    };
    let sig_path = signature_path(source);
    let mut attempt = 1;
    loop {
        let before = stamp(source).map_err(|e| io(e, source))?;
        let signature = read_signature(&sig_path).map_err(|e| io(e, &sig_path))?;
        let copy = copy(source).map_err(|e| io(e, source))?;
        let again = read_signature(&sig_path).map_err(|e| io(e, &sig_path))?;
        let after = stamp(source).map_err(|e| io(e, source))?;
        let settled = before == after && signature == again;
        if !settled && attempt < ATTEMPTS {
            attempt += 1;
            std::thread::sleep(PAUSE);
            continue;
        }
        return match trust.check(&copy.digest, signature.as_deref(), &sig_path) {
            Ok(verified) => Ok((copy, verified)),
            Err(reason) => Err(LoadError::Untrusted {
                path: source.to_path_buf(),
                reason,
            }),
        };
    }
}

/// What tells a changed file: its length and modification time.
fn stamp(path: &Path) -> std::io::Result<(u64, Option<std::time::SystemTime>)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.len(), meta.modified().ok()))
}

/// Copies `source` into a sealed copy, hashing what is written.
fn copy(source: &Path) -> std::io::Result<SealedCopy> {
    let mut input = File::open(source)?;
    if !input.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    #[cfg(target_os = "linux")]
    if let Some(copy) = memory::copy(&mut input)? {
        return Ok(copy);
    }
    let dir = tempfile::Builder::new()
        .prefix("fidius-sealed-")
        .tempdir()?;
    let name = source.file_name().unwrap_or("plugin".as_ref());
    let load_path = dir.path().join(name);
    let mut output = File::create_new(&load_path)?;
    let digest = copy_hashing(&mut input, &mut output)?;
    output.sync_all()?;
    Ok(SealedCopy {
        load_path,
        digest,
        _backing: Backing::Dir(dir),
    })
}

fn copy_hashing(input: &mut File, output: &mut File) -> std::io::Result<Digest> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
    }
    Ok(hasher.finish())
}

#[cfg(target_os = "linux")]
mod memory {
    use super::{copy_hashing, Backing, SealedCopy};
    use rustix::fs::{MemfdFlags, SealFlags};
    use std::fs::File;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::path::PathBuf;

    /// The copy in a sealed in-memory file, or `None` where such files cannot be
    /// made or executed here (the caller then copies to a private directory).
    pub fn copy(input: &mut File) -> std::io::Result<Option<SealedCopy>> {
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        // MFD_EXEC (Linux 6.3) says the file will be executed; older kernels refuse
        // the flag, and a system may refuse executable memfds altogether.
        let fd = match rustix::fs::memfd_create("fidius:sealed", flags | MemfdFlags::EXEC) {
            Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create("fidius:sealed", flags),
            other => other,
        };
        let Ok(fd) = fd else { return Ok(None) };
        if !std::path::Path::new("/proc/self/fd").is_dir() {
            return Ok(None);
        }
        let mut file = File::from(fd);
        let digest = copy_hashing(input, &mut file)?;
        // Sealing can fail for a moment with EBUSY while the kernel holds an extra
        // reference to a page of the file; it goes away by itself.
        let seals = SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            match rustix::fs::fcntl_add_seals(&file, seals) {
                Ok(()) => break,
                Err(rustix::io::Errno::BUSY) if pause.as_millis() <= 64 => {
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let fd = OwnedFd::from(file);
        Ok(Some(SealedCopy {
            load_path: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            digest,
            _backing: Backing::Memory(fd),
        }))
    }
}
