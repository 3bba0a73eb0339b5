//! Private copies: every version is loaded from a copy of the watched file that only
//! this process can reach, so nobody can swap other code in between the copy and the
//! load, the dynamic loader can never hand back an old library for a new file, and
//! nothing ever writes to a file that is mapped.
//!
//! Two stores, chosen per hot plugin:
//!
//! * **In memory** (Linux, the default): an anonymous file from `memfd_create`, filled
//!   from the source, sealed against any further change, and loaded through its own
//!   descriptor (`/proc/self/fd/N`). There is no path anyone else could race for,
//!   nothing on disk to clean up after a crash, and no inode the loader could mistake
//!   for another. The memory map names it `/memfd:fidius:…`. The descriptor stays
//!   open until the library has left memory (for good if it is pinned): the loader,
//!   and backtraces that symbolize the library's code, know it by that path.
//! * **In a private directory** (elsewhere, when memfd is unavailable, or when asked
//!   for): the directory must be a real directory owned by this process's user and
//!   writable by nobody else, checked on every copy; the file is created with
//!   `O_EXCL | O_NOFOLLOW`, checked to still be the file written just before it is
//!   loaded, and (on Unix) unlinked as soon as it is loaded.
//!
//! The source is opened once, must be a regular file on the open descriptor, and is
//! read only through that descriptor.

use crate::events::{Rejection, Stage};
use crate::unload::{self, UnloadState};
use fidius::host::trust::{Digest, Hasher};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Where copies go, as configured on a builder.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    /// Use an in-memory file where this platform has one.
    pub in_memory: bool,
    /// The private directory for copies that are files.
    pub dir: PathBuf,
}

impl Store {
    /// The default: in memory where possible, else [`default_shadow_dir`].
    pub fn new() -> Self {
        Self {
            in_memory: true,
            dir: default_shadow_dir(),
        }
    }

    /// Whether copies made with these settings are in-memory files.
    pub fn uses_memory(&self) -> bool {
        self.in_memory && memory::available()
    }
}

/// The directory file copies go to when none is configured: `fidius-shadow-<uid>` in
/// the temporary directory on Unix (created with mode 0700, and refused if someone
/// else made it first), `fidius-shadow` in the per-user temporary directory elsewhere.
///
/// On Linux it is used only when in-memory copies are unavailable or turned off.
pub fn default_shadow_dir() -> PathBuf {
    #[cfg(unix)]
    let name = format!("fidius-shadow-{}", rustix::process::geteuid().as_raw());
    #[cfg(not(unix))]
    let name = "fidius-shadow".to_string();
    std::env::temp_dir().join(name)
}

/// Why a copy could not be made.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// Opening or reading the watched file failed (`NotFound` when it is gone).
    Source(std::io::Error),
    /// The watched path is not a regular file.
    NotRegular(&'static str),
    /// Making the copy failed.
    Target(std::io::Error),
    /// The shadow directory or the copy is not safe to load from: someone else could
    /// put their code where ours should be.
    Insecure(String),
    /// The file is larger than the configured limit; nothing was copied.
    TooLarge { len: u64, max: u64 },
    /// The file's header says it is no library this host can load; nothing was
    /// copied.
    NotALibrary(fidius::LoadError),
    /// The hot plugin or directory was dropped while copying.
    Cancelled,
}

impl CopyError {
    /// The rejection of `source`'s new build that this error means.
    pub fn rejection(self, source: &Path, store: &Store) -> Rejection {
        let transient = self.is_transient();
        let mut error = None;
        let (stage, reason) = match self {
            CopyError::Source(e) if e.kind() == std::io::ErrorKind::NotFound => (
                Stage::Detect,
                format!("nothing to load: {}", what_is_at(source)),
            ),
            CopyError::Source(e) if e.kind() == std::io::ErrorKind::PermissionDenied => (
                Stage::Copy,
                format!(
                    "this process may not read the file ({e}); its permissions or its \
                     directory's must let the host's user read it"
                ),
            ),
            CopyError::Source(e) => (
                Stage::Copy,
                format!("reading the file failed: {e} ({})", what_is_at(source)),
            ),
            CopyError::NotRegular(kind) => (
                Stage::Copy,
                format!("not a regular file (it is {kind}); only regular files are loaded"),
            ),
            CopyError::Target(e) if store.uses_memory() => (
                Stage::Copy,
                format!("the file was read, but writing its in-memory copy failed: {e}"),
            ),
            CopyError::Target(e) => (
                Stage::Copy,
                format!(
                    "the file was read, but writing its copy into the shadow directory {} \
                     failed: {e}",
                    store.dir.display()
                ),
            ),
            CopyError::Insecure(reason) => (Stage::Security, reason),
            CopyError::TooLarge { len, max } => (
                Stage::Copy,
                format!(
                    "the file is {}, more than the limit of {} (max_file_size); nothing was copied",
                    bytes(len),
                    bytes(max)
                ),
            ),
            CopyError::NotALibrary(e) => {
                let reason = e.to_string();
                error = Some(e);
                (Stage::Load, reason)
            }
            CopyError::Cancelled => (Stage::Copy, "stopped while copying".to_string()),
        };
        Rejection {
            transient,
            error: error.map(Arc::new),
            ..Rejection::new(source, stage, reason, None)
        }
    }

    /// Whether this failure may clear up by itself: the file still being written,
    /// a full or failing disk.
    pub fn is_transient(&self) -> bool {
        match self {
            CopyError::Target(e) | CopyError::Source(e) => {
                matches!(
                    e.raw_os_error(),
                    Some(code) if TRANSIENT_ERRNOS.contains(&code)
                ) || e.kind() == std::io::ErrorKind::StorageFull
                    || e.kind() == std::io::ErrorKind::Interrupted
            }
            _ => false,
        }
    }
}

/// `ENOSPC`, `EDQUOT`, `EIO`, `EAGAIN`, `ENOMEM`, `EBUSY` (Linux numbers; elsewhere the
/// kinds above decide).
#[cfg(target_os = "linux")]
const TRANSIENT_ERRNOS: &[i32] = &[28, 122, 5, 11, 12, 16];
#[cfg(not(target_os = "linux"))]
const TRANSIENT_ERRNOS: &[i32] = &[];

/// A size for people: `2.0 GiB`, `512 MiB`, `640 KiB`, `12 B`.
fn bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            return if n.is_multiple_of(size) {
                format!("{} {unit}", n / size)
            } else {
                format!("{:.1} {unit}", n as f64 / size as f64)
            };
        }
    }
    format!("{n} B")
}

/// What is at `path` now, for a message: "nothing is at this path", "it is a
/// directory", "it is a symbolic link loop"...
pub(crate) fn what_is_at(path: &Path) -> String {
    let link = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return "nothing is at this path (removed, renamed away, or never there)".into()
        }
        Err(e) => return format!("its path cannot be looked at: {e}"),
    };
    if !link.file_type().is_symlink() {
        return format!(
            "it is {}",
            describe_kind(link.file_type()).trim_start_matches("not ")
        );
    }
    match std::fs::metadata(path) {
        Ok(meta) => format!(
            "it is a symbolic link to {}",
            describe_kind(meta.file_type()).trim_start_matches("not ")
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "it is a symbolic link to nothing (a dangling link)".into()
        }
        Err(e) if e.raw_os_error() == Some(40) => "it is a symbolic link loop".into(),
        Err(e) => format!("it is a symbolic link that cannot be followed: {e}"),
    }
}

/// A copy of one build, made for one version.
///
/// Closing it ([`ShadowCopy::close`], or dropping it) after its library was closed
/// finds out whether the library left memory, and cleans up accordingly.
#[derive(Debug)]
pub(crate) struct ShadowCopy {
    /// What the dynamic loader is given.
    load_path: PathBuf,
    /// The copy's name in this process's memory map: `/memfd:fidius:…` or the file.
    pub map_name: PathBuf,
    /// The content hash.
    pub content_hash: u64,
    /// The SHA-256 of the content, when the copy was asked for it
    /// ([`Limits::digest`]): what a host's `Trust` judges.
    pub digest: Option<Digest>,
    backing: Backing,
    /// An address inside the library loaded from the copy, once it is loaded: asked
    /// about first when the unload is checked (see `unload.rs`).
    probe: Option<usize>,
    /// Loaded by a plugin process, never in this one: `Some(exited)`, whether that
    /// process was seen to exit.
    isolated: Option<bool>,
}

#[derive(Debug)]
enum Backing {
    /// An in-memory file, loaded through its descriptor's path.
    #[cfg(target_os = "linux")]
    Memory { fd: std::os::fd::OwnedFd },
    /// A file in the private directory; `present` until it is unlinked.
    File { present: bool },
    /// Closed: nothing left to clean up.
    Closed,
}

/// What a copy may take.
pub(crate) struct Limits<'a> {
    /// The largest file copied.
    pub max_size: u64,
    /// Set when the copy should stop (its hot plugin or directory is being dropped).
    pub cancel: &'a AtomicBool,
    /// Judge the header before copying: always, except in the unit tests of the
    /// copy's own mechanics below, which copy bytes that are no library.
    pub inspect: bool,
    /// Also take the content's SHA-256 (for a host with a `Trust`).
    pub digest: bool,
}

/// The watched file, opened once: its first bytes already read (and judged), the rest
/// still to come.
struct Input<'a> {
    file: File,
    head: Vec<u8>,
    cancel: &'a AtomicBool,
    /// The size limit, held to while reading too (the file may still grow).
    max_size: u64,
    /// Take the SHA-256 too.
    digest: bool,
}

/// Copies `source` for version `generation` into the store. Returns the copy with
/// the hash of its content.
///
/// Before anything is copied, the file must be a regular file no larger than the
/// limit whose first bytes are the header of a library this host can load (format,
/// word size, byte order, machine, segments inside the file): anything else, however
/// large, costs one `open`, one `fstat` and one read of at most 64 KiB.
pub(crate) fn copy(
    source: &Path,
    store: &Store,
    generation: u64,
    limits: &Limits,
) -> Result<ShadowCopy, CopyError> {
    let mut file = open_source(source)?;
    let len = file.metadata().map_err(CopyError::Source)?.len();
    if len > limits.max_size {
        return Err(CopyError::TooLarge {
            len,
            max: limits.max_size,
        });
    }
    let head = fidius::host::platform::read_header(&mut file).map_err(CopyError::Source)?;
    if limits.inspect {
        fidius::host::platform::check_library_header(source, &head, len)
            .map_err(CopyError::NotALibrary)?;
    }
    let mut input = Input {
        file,
        head,
        cancel: limits.cancel,
        max_size: limits.max_size,
        digest: limits.digest,
    };
    #[cfg(target_os = "linux")]
    if store.uses_memory() {
        return memory::copy(source, &mut input, generation);
    }
    copy_to_dir(source, &mut input, &store.dir, generation)
}

/// Opens the watched file for reading, once: it must be a regular file on the open
/// descriptor (a FIFO, device or directory is refused, and opening a FIFO does not
/// wait for a writer), as `fidius::host::platform::open_regular` checks.
fn open_source(source: &Path) -> Result<File, CopyError> {
    fidius::host::platform::open_regular(source).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidInput {
            let kind = std::fs::metadata(source).map(|m| describe_kind(m.file_type()));
            CopyError::NotRegular(kind.unwrap_or("not a regular file"))
        } else {
            CopyError::Source(e)
        }
    })
}

fn describe_kind(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Copies everything from `input` to `output`, returning the content hash of it (see
/// [`VersionInfo::content_hash`](crate::VersionInfo::content_hash)) and, when asked,
/// its SHA-256. A read error is the source's, a write error the target's.
fn copy_hashing(input: &mut Input, output: &mut File) -> Result<(u64, Option<Digest>), CopyError> {
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    let mut sha256 = input.digest.then(Hasher::new);
    let mut update = |bytes: &[u8]| {
        hash.update(bytes);
        if let Some(sha256) = &mut sha256 {
            sha256.update(bytes);
        }
    };
    update(&input.head);
    output.write_all(&input.head).map_err(CopyError::Target)?;
    // On the stack: a fresh heap buffer this size would be new pages, faulted in and
    // given back on every copy.
    let mut buf = [0u8; 64 * 1024];
    let mut copied = input.head.len() as u64;
    loop {
        if input.cancel.load(Ordering::Relaxed) {
            return Err(CopyError::Cancelled);
        }
        if copied > input.max_size {
            return Err(CopyError::TooLarge {
                len: copied,
                max: input.max_size,
            });
        }
        let n = match input.file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Source(e)),
        };
        copied += n as u64;
        update(&buf[..n]);
        output.write_all(&buf[..n]).map_err(CopyError::Target)?;
    }
    Ok((hash.digest(), sha256.map(Hasher::finish)))
}

/// The content hash of `bytes`, as [`copy_hashing`] computes it.
#[cfg(test)]
fn content_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// A number never used before in this process, for unique copy names.
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

impl ShadowCopy {
    /// The path to give the dynamic loader.
    pub fn load_path(&self) -> &Path {
        &self.load_path
    }

    /// The message of `error`, a failure to load this copy of `source`, naming the
    /// user's file and where its copy is instead of the loader's path to the copy.
    pub fn explain(&self, error: &fidius::LoadError, source: &Path) -> String {
        let place = match self.backing {
            #[cfg(target_os = "linux")]
            Backing::Memory { .. } => format!("{} (its in-memory copy)", source.display()),
            _ => format!(
                "{} (copied to {})",
                source.display(),
                self.map_name.display()
            ),
        };
        error
            .to_string()
            .replace(&self.load_path.display().to_string(), &place)
    }

    /// The library is now loaded from this copy for as long as its version lives. A
    /// file copy is unlinked (on Unix), so that from now on no path leads to it and
    /// nothing can open or link it. An in-memory copy keeps its descriptor: its path
    /// `/proc/self/fd/N` is the library's name for the loader (and for backtraces
    /// that symbolize its code), and must name no other file while the library is in
    /// memory.
    pub fn loaded(&mut self, probe: usize) {
        self.probe = Some(probe);
        #[cfg(unix)]
        if let Backing::File { present: true } = self.backing {
            if std::fs::remove_file(&self.load_path).is_ok() {
                self.backing = Backing::File { present: false };
            }
        }
    }

    /// A descriptor of the copy, for a plugin process to load it through: the very
    /// bytes that were checked, whatever happens to any path.
    #[cfg(all(feature = "isolated", target_os = "linux"))]
    pub fn descriptor(&self) -> std::io::Result<std::sync::Arc<std::os::fd::OwnedFd>> {
        let fd = match &self.backing {
            #[cfg(target_os = "linux")]
            Backing::Memory { fd } => fd.try_clone()?,
            _ => std::fs::File::open(&self.load_path)?.into(),
        };
        Ok(std::sync::Arc::new(fd))
    }

    /// The copy is loaded by a plugin process (through [`descriptor`](Self::descriptor)),
    /// never in this one: a file copy is unlinked, and closing it reports
    /// [`UnloadState::Exited`] (the version's process has exited by then).
    #[cfg(all(feature = "isolated", target_os = "linux"))]
    pub fn isolated(&mut self) {
        self.isolated = Some(true);
        self.loaded(0);
        self.probe = None;
    }

    /// The plugin process that loaded it was not seen to exit: its unload state is
    /// not known.
    #[cfg(all(feature = "isolated", target_os = "linux"))]
    pub fn process_left_running(&mut self) {
        self.isolated = Some(false);
    }

    /// Called once the library loaded from this copy was closed: reads the memory map
    /// to find out whether the library left memory, removes what is left of the copy,
    /// and returns that state.
    pub fn close(mut self) -> UnloadState {
        self.finish()
    }

    fn finish(&mut self) -> UnloadState {
        let state = match self.isolated {
            Some(true) => UnloadState::Exited,
            Some(false) => UnloadState::Unknown,
            None => unload::state_after_close(&self.map_name, self.probe),
        };
        match std::mem::replace(&mut self.backing, Backing::Closed) {
            #[cfg(target_os = "linux")]
            Backing::Memory { fd } => {
                // The loader knows the library by its load path, `/proc/self/fd/N`.
                // While the library may still be in memory, N must keep naming this
                // file: a new copy loaded under the same path would get the old
                // library back. So a copy still mapped keeps its descriptor for good.
                // (A copy loaded only by a plugin process was never in this one.)
                if self.isolated.is_none() && state != UnloadState::Unmapped {
                    let _ = std::os::fd::IntoRawFd::into_raw_fd(fd);
                }
            }
            Backing::File { present: true } => {
                let _ = std::fs::remove_file(&self.load_path);
            }
            Backing::File { present: false } | Backing::Closed => {}
        }
        state
    }
}

impl Drop for ShadowCopy {
    fn drop(&mut self) {
        if !matches!(self.backing, Backing::Closed) {
            self.finish();
        }
    }
}

/// Copies into a file in the private directory `dir`.
fn copy_to_dir(
    source: &Path,
    input: &mut Input,
    dir: &Path,
    generation: u64,
) -> Result<ShadowCopy, CopyError> {
    private_dir::ensure(dir)?;
    let ext = source
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| std::env::consts::DLL_EXTENSION.into());
    let path = dir.join(format!(
        "{}g{generation}-p{}-{:016x}.{ext}",
        prefix_of(source),
        std::process::id(),
        nonce()
    ));
    let mut output = private_dir::create_file(&path).map_err(CopyError::Target)?;
    let mut copy = ShadowCopy {
        load_path: path.clone(),
        map_name: path.clone(),
        content_hash: 0,
        digest: None,
        backing: Backing::File { present: true },
        probe: None,
        isolated: None,
    };
    // From here on, dropping `copy` on an error removes the file.
    (copy.content_hash, copy.digest) = copy_hashing(input, &mut output)?;
    // No fsync: a copy only has to outlive this process's use of it.
    private_dir::check_still_ours(&output, &path)?;
    Ok(copy)
}

/// A name part for copies of `source`: its file name (`whole`) or stem, lossily as
/// text, cut to at most 128 bytes (on a character boundary) so that every name built
/// from it stays within the 249 bytes of a memfd name and the 255 of a file name.
fn short_name(source: &Path, whole: bool) -> String {
    let part = if whole {
        source.file_name()
    } else {
        source.file_stem()
    };
    let full = part.map_or_else(|| "plugin".into(), |s| s.to_string_lossy());
    let mut end = full.len().min(128);
    while !full.is_char_boundary(end) {
        end -= 1;
    }
    full[..end].to_string()
}

/// The file-name prefix of every file copy of `source`.
fn prefix_of(source: &Path) -> String {
    format!("{}.fidius-", short_name(source, false))
}

/// Removes file copies of `source` left in `dir` by processes that no longer run (an
/// earlier run that crashed between making a copy and loading it). Only a directory
/// that passes the private-directory checks is looked at. Returns the files removed.
pub(crate) fn remove_stale(source: &Path, dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    if !dir.exists() || private_dir::check(dir).is_err() {
        return removed;
    }
    let prefix = prefix_of(source);
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

/// Whether process `pid` exists (signal 0: "permission denied" means it does).
#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    // Without a cheap way to ask, assume it runs: never delete another live process's files.
    true
}

/// The private directory for file copies: its checks, and how files are made in it.
pub(crate) mod private_dir {
    use super::CopyError;
    use std::fs::File;
    use std::path::Path;

    /// Creates `dir` (mode 0700) if it does not exist, then [`check`]s it.
    pub fn ensure(dir: &Path) -> Result<(), CopyError> {
        if std::fs::symlink_metadata(dir).is_err() {
            // Missing parents too are made private to this user.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            match builder.create(dir) {
                Ok(()) => {}
                // Made meanwhile, by another thread or someone else: the check decides.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CopyError::Target(e)),
            }
        }
        check(dir)
    }

    /// `dir` must be a directory (not a symbolic link to one), owned by this process's
    /// effective user, and writable by nobody else.
    #[cfg(unix)]
    pub fn check(dir: &Path) -> Result<(), CopyError> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(dir).map_err(CopyError::Target)?;
        let refuse = |what: String| {
            Err(CopyError::Insecure(format!(
                "refusing shadow directory {}: {what}, so another user could replace the \
                 copies this process loads; remove it, or configure a private directory \
                 with shadow_dir",
                dir.display()
            )))
        };
        if meta.file_type().is_symlink() {
            return refuse("it is a symbolic link".into());
        }
        if !meta.is_dir() {
            return refuse("it is not a directory".into());
        }
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return refuse(format!(
                "it is owned by uid {}, not by this process's uid {me}",
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return refuse(format!(
                "its mode {:o} lets the group or others write to it",
                meta.mode() & 0o7777
            ));
        }
        Ok(())
    }

    /// Only existence can be checked here; the default directory is in the per-user
    /// temporary directory.
    #[cfg(not(unix))]
    pub fn check(dir: &Path) -> Result<(), CopyError> {
        match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(CopyError::Insecure(format!(
                "refusing shadow directory {}: it is not a directory",
                dir.display()
            ))),
            Err(e) => Err(CopyError::Target(e)),
        }
    }

    /// Creates `path`, which must not exist yet (and is not followed if it is a link),
    /// readable and writable by this user only.
    pub fn create_file(path: &Path) -> std::io::Result<File> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        }
        options.open(path)
    }

    /// The file at `path` must still be `written`, the file this process created: the
    /// loader opens it by path.
    #[cfg(unix)]
    pub fn check_still_ours(written: &File, path: &Path) -> Result<(), CopyError> {
        use std::os::unix::fs::MetadataExt;
        let ours = written.metadata().map_err(CopyError::Target)?;
        match std::fs::symlink_metadata(path) {
            Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => Ok(()),
            _ => Err(CopyError::Insecure(format!(
                "an unexpected file is where this process's copy should be: {} was replaced \
                 or removed between writing and loading it",
                path.display()
            ))),
        }
    }

    #[cfg(not(unix))]
    pub fn check_still_ours(_written: &File, _path: &Path) -> Result<(), CopyError> {
        Ok(())
    }
}

/// In-memory copies (Linux): `memfd_create`, sealed, loaded as `/proc/self/fd/N`.
#[cfg(target_os = "linux")]
mod memory {
    use super::{copy_hashing, nonce, Backing, CopyError, Input, ShadowCopy};
    use rustix::fs::{MemfdFlags, SealFlags};
    use std::fs::File;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    /// Set to any value to keep copies in the shadow directory instead of in memory.
    const DISABLE_VAR: &str = "FIDIUS_HOTRELOAD_NO_MEMFD";

    /// Whether in-memory copies can be used here: not turned off, `memfd_create`
    /// works (it can be filtered, or refuse executable files), and `/proc/self/fd`
    /// is there to load them through. Probed once.
    pub fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            if std::env::var_os(DISABLE_VAR).is_some() {
                return false;
            }
            let probe = create("fidius:probe");
            let usable = probe.is_ok() && Path::new("/proc/self/fd").is_dir();
            if !usable {
                tracing::warn!(
                    error = ?probe.err(),
                    "in-memory plugin copies are unavailable; copies go to the private shadow directory"
                );
            }
            usable
        })
    }

    /// A new in-memory file that may be sealed and executed.
    fn create(name: &str) -> rustix::io::Result<OwnedFd> {
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        // MFD_EXEC (Linux 6.3) says outright that the file will be executed, so that a
        // system defaulting to non-executable memfds refuses here, not in the loader.
        // Older kernels do not know the flag.
        match rustix::fs::memfd_create(name, flags | MemfdFlags::EXEC) {
            Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create(name, flags),
            other => other,
        }
    }

    /// The memory-map name of a copy of `source`: `fidius:<file name>:<hash of the
    /// full path>:g<generation>:<nonce>`, with no whitespace and within the kernel's
    /// 249-byte limit (the file name is cut to at most 128 bytes).
    fn name_for(source: &Path, generation: u64) -> String {
        let file: String = super::short_name(source, true)
            .chars()
            .map(|c| {
                if c.is_whitespace() || c == '\0' {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let path_hash = fidius::fnv1a(source.as_os_str().as_encoded_bytes()) as u32;
        format!(
            "fidius:{file}:{path_hash:08x}:g{generation}:{:016x}",
            nonce()
        )
    }

    /// The longest pause between attempts to seal a copy (1, 2, 4 ... 64 ms: about
    /// an eighth of a second in all).
    const SEAL_RETRY_MAX: std::time::Duration = std::time::Duration::from_millis(64);

    pub fn copy(
        source: &Path,
        input: &mut Input,
        generation: u64,
    ) -> Result<ShadowCopy, CopyError> {
        let name = name_for(source, generation);
        let fd = create(&name).map_err(|e| CopyError::Target(e.into()))?;
        let mut file = File::from(fd);
        let (content_hash, digest) = copy_hashing(input, &mut file)?;
        // From now on the content cannot change, whoever holds the descriptor.
        //
        // Sealing against writes fails with EBUSY while the kernel sees a page of the
        // file with an extra reference, which it can hold for a moment on its own
        // (memory compaction, khugepaged): seen once in hundreds of reloads on a busy
        // machine. Such a reference goes away by itself, so try again, briefly.
        let seals = SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            match rustix::fs::fcntl_add_seals(&file, seals) {
                Ok(()) => break,
                Err(rustix::io::Errno::BUSY) if pause <= SEAL_RETRY_MAX => {
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                Err(e) => return Err(CopyError::Target(e.into())),
            }
        }
        let fd = OwnedFd::from(file);
        Ok(ShadowCopy {
            load_path: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            map_name: PathBuf::from(format!("/memfd:{name}")),
            content_hash,
            digest,
            backing: Backing::Memory { fd },
            probe: None,
            isolated: None,
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod memory {
    /// No in-memory files on this platform.
    pub fn available() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NEVER: AtomicBool = AtomicBool::new(false);

    /// The copy's mechanics alone: these tests copy bytes that are no library.
    const RAW: Limits<'static> = Limits {
        max_size: u64::MAX,
        cancel: &NEVER,
        inspect: false,
        digest: false,
    };

    #[test]
    fn each_failure_names_its_side_and_transient_ones_say_so() {
        let store = store_in(Path::new("/srv/shadow"), false);
        let source = Path::new("/srv/plugins/libp.so");
        let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let r = CopyError::Source(denied()).rejection(source, &store);
        assert!(r.reason.contains("may not read the file"), "{r}");
        assert!(!r.reason.contains("shadow"), "{r}");
        assert!(!r.transient);
        let r = CopyError::Target(denied()).rejection(source, &store);
        assert!(
            r.reason.contains(
                "the file was read, but writing its copy into the shadow directory /srv/shadow"
            ),
            "{r}"
        );
        let full = CopyError::Target(std::io::Error::from_raw_os_error(28));
        assert!(full.is_transient());
        let r = full.rejection(source, &store);
        assert!(r.transient, "{r}");
        let r = CopyError::TooLarge {
            len: 3 << 29,
            max: 512 << 20,
        }
        .rejection(source, &store);
        assert!(
            r.reason.contains("1.5 GiB, more than the limit of 512 MiB"),
            "{r}"
        );
    }

    fn store_in(dir: &Path, in_memory: bool) -> Store {
        Store {
            in_memory,
            dir: dir.to_path_buf(),
        }
    }

    fn content(copy: &ShadowCopy) -> Vec<u8> {
        std::fs::read(copy.load_path()).unwrap()
    }

    #[test]
    fn copies_are_unique_complete_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("libx.so");
        std::fs::write(&src, b"hello plugin").unwrap();
        for in_memory in [false, true] {
            let store = store_in(&dir.path().join("shadow"), in_memory);
            let a = copy(&src, &store, 1, &RAW).unwrap();
            let b = copy(&src, &store, 1, &RAW).unwrap();
            assert_ne!(a.load_path(), b.load_path());
            assert_ne!(a.map_name, b.map_name);
            assert_eq!(content(&a), b"hello plugin");
            assert_eq!(a.content_hash, content_hash(b"hello plugin"));
            assert_eq!(a.content_hash, b.content_hash);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_in_memory_copy_is_sealed_and_named_for_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("libx.so");
        std::fs::write(&src, b"hello plugin").unwrap();
        let store = store_in(&dir.path().join("shadow"), true);
        if !store.uses_memory() {
            eprintln!("SKIPPED: in-memory copies are unavailable here");
            return;
        }
        let copy = copy(&src, &store, 7, &RAW).unwrap();
        let name = copy.map_name.to_string_lossy().into_owned();
        assert!(name.starts_with("/memfd:fidius:libx.so:"), "{name}");
        assert!(name.contains(":g7:"), "{name}");
        // Sealed: not even this process can change it.
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(copy.load_path())
            .and_then(|mut f| f.write_all(b"evil"))
            .unwrap_err();
        assert!(err.raw_os_error().is_some(), "{err}");
        assert_eq!(content(&copy), b"hello plugin");
        // Nothing on disk.
        assert!(!dir.path().join("shadow").exists());
    }

    #[test]
    fn a_long_file_name_still_gets_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join(format!("lib{}.so", "\u{e9}".repeat(120)));
        std::fs::write(&src, b"hello plugin").unwrap();
        for in_memory in [false, true] {
            let store = store_in(&dir.path().join("shadow"), in_memory);
            let copy = copy(&src, &store, 1, &RAW).unwrap();
            assert_eq!(content(&copy), b"hello plugin");
        }
    }

    #[test]
    fn only_regular_files_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir.path().join("shadow"), true);
        let err = copy(dir.path(), &store, 1, &RAW).unwrap_err();
        assert!(
            matches!(err, CopyError::NotRegular("a directory")),
            "{err:?}"
        );
        #[cfg(unix)]
        {
            // A FIFO with no writer: refused at once, without waiting for one.
            let fifo = dir.path().join("libfifo.so");
            let status = std::process::Command::new("mkfifo").arg(&fifo).status();
            if status.map(|s| s.success()).unwrap_or(false) {
                let err = copy(&fifo, &store, 1, &RAW).unwrap_err();
                assert!(matches!(err, CopyError::NotRegular("a FIFO")), "{err:?}");
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_shadow_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("libx.so");
        std::fs::write(&src, b"hello plugin").unwrap();
        let shadow = dir.path().join("shadow");
        std::fs::create_dir(&shadow).unwrap();
        std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = copy(&src, &store_in(&shadow, false), 1, &RAW).unwrap_err();
        let CopyError::Insecure(reason) = err else {
            panic!("{err:?}")
        };
        assert!(reason.contains("mode 777"), "{reason}");
        assert_eq!(std::fs::read_dir(&shadow).unwrap().count(), 0);

        // A symbolic link to a private directory is refused too.
        let private = dir.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        let err = copy(&src, &store_in(&link, false), 1, &RAW).unwrap_err();
        assert!(
            matches!(&err, CopyError::Insecure(r) if r.contains("symbolic link")),
            "{err:?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_copy_replaced_before_it_is_loaded_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libx.fidius-g1.so");
        let written = private_dir::create_file(&path).unwrap();
        assert!(private_dir::check_still_ours(&written, &path).is_ok());
        // Someone renames their own file over the copy.
        let foreign = dir.path().join("foreign");
        std::fs::write(&foreign, b"not ours").unwrap();
        std::fs::rename(&foreign, &path).unwrap();
        let err = private_dir::check_still_ours(&written, &path).unwrap_err();
        assert!(
            matches!(&err, CopyError::Insecure(r) if r.contains("an unexpected file")),
            "{err:?}"
        );
        // A copy's name is never reused, and a link there is never followed.
        assert!(private_dir::create_file(&path).is_err());
        let link = dir.path().join("link.so");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        assert!(private_dir::create_file(&link).is_err());
        assert!(!dir.path().join("elsewhere").exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_new_shadow_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("libx.so");
        std::fs::write(&src, b"hello plugin").unwrap();
        let shadow = dir.path().join("a/b/shadow");
        let mut copy = copy(&src, &store_in(&shadow, false), 1, &RAW).unwrap();
        let mode = std::fs::metadata(&shadow).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let file_mode = std::fs::metadata(copy.load_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(file_mode & 0o777, 0o600);
        // Once loaded, the file is unlinked: no path leads to it any more.
        copy.loaded(0);
        assert!(!copy.load_path().exists());
        assert_eq!(std::fs::read_dir(&shadow).unwrap().count(), 0);
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
        for in_memory in [false, true] {
            let store = store_in(dir.path(), in_memory);
            let err = copy(&dir.path().join("gone.so"), &store, 1, &RAW).unwrap_err();
            assert!(
                matches!(&err, CopyError::Source(e) if e.kind() == std::io::ErrorKind::NotFound),
                "{err:?}"
            );
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }
}
