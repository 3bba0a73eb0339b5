//! Sealed copies: a private copy of a library file that nobody can change, made for a
//! trusted load. The copy is hashed while it is written and checked against the
//! host's [`Trust`] before the dynamic loader is given it, so the bytes verified are
//! the bytes loaded, whatever happens to the original file.
//!
//! On Linux the copy is an in-memory file (`memfd_create`) sealed against every
//! change and loaded through `/proc/self/fd`. Where that is unavailable, and on other
//! systems, it is a file created new (mode 0600) in a fresh directory of mode 0700,
//! removed when the library is closed. A copy whose library stays mapped after it is
//! closed (see the crate's notes on unloading) keeps its descriptor open for good: the
//! dynamic loader knows a library by the name it was loaded under, and a later copy
//! given the same descriptor number must not be taken for it.

use super::trust::{read_signature, signature_path, unreadable_signature, Digest, Hasher};
use super::trust::{Trust, Verified};
use super::{platform, LoadError};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest library a trusted load copies; a larger file is refused unread.
pub const MAX_LIBRARY_SIZE: u64 = 1 << 30;

/// A copy that can no longer change, and the digest of its content.
pub(crate) struct SealedCopy {
    load_path: PathBuf,
    digest: Digest,
    backing: Backing,
}

enum Backing {
    /// The in-memory file, loaded through its descriptor's path; `name` is how the
    /// memory map shows it.
    #[cfg(target_os = "linux")]
    Memory {
        fd: std::os::fd::OwnedFd,
        name: String,
    },
    /// The private directory holding the copy, removed when dropped.
    Dir(#[allow(dead_code)] tempfile::TempDir),
}

impl SealedCopy {
    /// What to hand the dynamic loader.
    pub fn load_path(&self) -> &Path {
        &self.load_path
    }

    /// Lets go of the copy once the library loaded from it was closed. An in-memory
    /// copy whose library is still mapped keeps its descriptor, and with it its
    /// number and name (see the module docs).
    pub fn release(self) {
        match self.backing {
            #[cfg(target_os = "linux")]
            Backing::Memory { fd, name } => {
                if still_mapped(&name) {
                    use std::os::fd::IntoRawFd;
                    #[cfg(feature = "host")]
                    tracing::debug!(copy = %name, "a trusted library stayed mapped after it was closed; its copy stays open");
                    let _ = fd.into_raw_fd();
                }
            }
            Backing::Dir(dir) => drop(dir),
        }
    }
}

/// Whether the in-memory file `name` is still mapped in this process.
#[cfg(target_os = "linux")]
fn still_mapped(name: &str) -> bool {
    let needle = format!("/memfd:{name} ");
    let needle_end = format!("/memfd:{name}");
    match std::fs::read_to_string("/proc/self/maps") {
        Ok(maps) => maps
            .lines()
            .any(|line| line.contains(&needle) || line.ends_with(&needle_end)),
        // Cannot tell: keep it, the safe way.
        Err(_) => true,
    }
}

/// A private copy of a library that nobody can change, whose content a [`Trust`]
/// accepted: what a host that loads the library some other way (in a plugin process,
/// say) hands over instead of the library's path.
/// [`PluginLibrary::open_trusted`](super::PluginLibrary::open_trusted) makes one and
/// loads it.
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
    /// An untrusted build is [`LoadError::Untrusted`]; a file that is no library of
    /// this platform, or larger than [`MAX_LIBRARY_SIZE`], is refused from its header
    /// or size, before it is copied.
    pub fn make(library: impl AsRef<Path>, trust: &Trust) -> Result<Self, LoadError> {
        let (copy, verified) = verified_copy(library.as_ref(), trust)?;
        Ok(Self { copy, verified })
    }

    /// The path this process loads the copy through (on Linux, its descriptor's
    /// `/proc/self/fd/N`). Valid in this process only, while this value lives: hand
    /// another process a descriptor from [`open`](Self::open) instead.
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
    let io = |e: std::io::Error, path: &Path| LoadError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let sig_path = signature_path(source);
    let read_sig = || {
        read_signature(&sig_path).map_err(|e| match unreadable_signature(&sig_path, &e) {
            Some(reason) => LoadError::Untrusted {
                path: source.to_path_buf(),
                reason,
            },
            None => io(e, &sig_path),
        })
    };
    let mut attempt = 1;
    loop {
        let before = stamp(source).map_err(|e| io(e, source))?;
        let signature = read_sig()?;
        let copy = copy(source)?;
        let again = read_sig()?;
        let after = stamp(source).map_err(|e| io(e, source))?;
        let settled = before == after && signature == again;
        if !settled && attempt < ATTEMPTS {
            attempt += 1;
            copy.release();
            std::thread::sleep(PAUSE);
            continue;
        }
        return match trust.check(&copy.digest, again.as_deref(), &sig_path) {
            Ok(verified) => Ok((copy, verified)),
            Err(reason) => {
                copy.release();
                Err(LoadError::Untrusted {
                    path: source.to_path_buf(),
                    reason,
                })
            }
        };
    }
}

/// What tells a changed file: its length and modification time.
fn stamp(path: &Path) -> std::io::Result<(u64, Option<std::time::SystemTime>)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.len(), meta.modified().ok()))
}

/// Copies `source` into a sealed copy, hashing what is written. The file is opened
/// once (a regular file, never waited on), and judged from its size and header
/// before anything is copied.
fn copy(source: &Path) -> Result<SealedCopy, LoadError> {
    let io = |e: std::io::Error| LoadError::Io {
        path: source.to_path_buf(),
        source: e,
    };
    let mut input = platform::open_regular(source).map_err(io)?;
    let len = input.metadata().map_err(io)?.len();
    if len > MAX_LIBRARY_SIZE {
        return Err(LoadError::NotALibrary {
            path: source.to_path_buf(),
            reason: format!("{len} bytes, more than any library loaded ({MAX_LIBRARY_SIZE})"),
        });
    }
    let head = platform::read_header(&mut input).map_err(io)?;
    platform::check_library_header(source, &head, len)?;
    let mut input = std::io::Cursor::new(head).chain(input.take(MAX_LIBRARY_SIZE));
    #[cfg(target_os = "linux")]
    if let Some(copy) = memory::copy(&mut input).map_err(io)? {
        return Ok(copy);
    }
    to_private_dir(source, &mut input).map_err(io)
}

/// The copy as a new file (mode 0600) in a fresh directory of mode 0700.
fn to_private_dir(source: &Path, input: &mut impl Read) -> std::io::Result<SealedCopy> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("fidius-sealed-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    let dir = builder.tempdir()?;
    let name = source.file_name().unwrap_or("plugin".as_ref());
    let load_path = dir.path().join(name);
    let mut options = std::fs::OpenOptions::new();
    // O_CREAT | O_EXCL: a new file, never one (or a link) already there.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut output = options.open(&load_path)?;
    let digest = copy_hashing(input, &mut output)?;
    output.sync_all()?;
    Ok(SealedCopy {
        load_path,
        digest,
        backing: Backing::Dir(dir),
    })
}

fn copy_hashing(input: &mut impl Read, output: &mut File) -> std::io::Result<Digest> {
    /// Writes through to the copy, hashing what passes.
    struct Hashing<'a>(&'a mut File, Hasher);
    impl Write for Hashing<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.0.write(buf)?;
            self.1.update(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    let mut out = Hashing(output, Hasher::new());
    std::io::copy(input, &mut out)?;
    Ok(out.1.finish())
}

#[cfg(target_os = "linux")]
mod memory {
    use super::{copy_hashing, Backing, SealedCopy};
    use rustix::fs::{MemfdFlags, SealFlags};
    use std::fs::File;
    use std::io::Read;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The copy in a sealed in-memory file, or `None` where such files cannot be
    /// made or executed here (the caller then copies to a private directory).
    pub fn copy(input: &mut impl Read) -> std::io::Result<Option<SealedCopy>> {
        static COPIES: AtomicU64 = AtomicU64::new(0);
        // A name of its own, so that the memory map tells whether it is still mapped.
        let name = format!(
            "fidius:sealed:{}:{}",
            std::process::id(),
            COPIES.fetch_add(1, Ordering::Relaxed)
        );
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        // MFD_EXEC (Linux 6.3) says the file will be executed; older kernels refuse
        // the flag, and a system may refuse executable memfds altogether.
        let fd = match rustix::fs::memfd_create(&name, flags | MemfdFlags::EXEC) {
            Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create(&name, flags),
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
            backing: Backing::Memory { fd, name },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where no in-memory file can be had, the copy is private: a new file readable
    /// by its owner only, in a directory only its owner may enter, whatever the umask.
    #[cfg(unix)]
    #[test]
    fn a_copy_in_a_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let copy = to_private_dir(Path::new("libx.so"), &mut &b"library bytes"[..]).unwrap();
        let file = std::fs::metadata(copy.load_path())
            .unwrap()
            .permissions()
            .mode();
        let dir = std::fs::metadata(copy.load_path().parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(file & 0o777, 0o600, "{file:o}");
        assert_eq!(dir & 0o777, 0o700, "{dir:o}");
        assert_eq!(copy.digest, Digest::of(b"library bytes"));
        let dir = copy.load_path().parent().unwrap().to_path_buf();
        copy.release();
        assert!(!dir.exists(), "the copy's directory outlived it");
    }
}
