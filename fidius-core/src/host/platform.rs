//! Checks, from the file header alone, that a file is a shared library this host can
//! load, before the dynamic loader (which runs the library's initialisers) sees it.

use super::header::{host_description, HeaderError};
use super::LoadError;
use std::io::Read;
use std::path::Path;

/// The file extension of shared libraries on this platform (`so`, `dylib`, `dll`).
pub const DYLIB_EXTENSION: &str = std::env::consts::DLL_EXTENSION;

/// The file name cargo gives the `cdylib` of crate `crate_name` on this platform:
/// `greeter-plugin` → `libgreeter_plugin.so` (Linux), `libgreeter_plugin.dylib`
/// (macOS), `greeter_plugin.dll` (Windows).
///
/// ```
/// let name = fidius_core::host::platform::library_file_name("greeter-plugin");
/// # #[cfg(target_os = "linux")]
/// assert_eq!(name, "libgreeter_plugin.so");
/// ```
pub fn library_file_name(crate_name: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// Opens `path` for reading only if it is a regular file, judged on the open
/// descriptor: a FIFO, device, socket or directory is refused, and opening a FIFO does
/// not wait for a writer (nor a terminal become the controlling one). Whoever can
/// write a plugin directory must not be able to hang the host that reads it.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let not_regular =
        || std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
    // Anything but a regular file is refused before it is opened (opening a device can
    // have effects of its own); the open descriptor is checked again below, in case
    // the path changed in between.
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
        options.custom_flags(flags.bits() as i32);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    // Reads of a regular file block as usual (some network file systems would
    // otherwise answer "try again").
    #[cfg(unix)]
    rustix::fs::fcntl_setfl(&file, rustix::fs::OFlags::empty())?;
    Ok(file)
}

/// Reads the headers of `path` and checks format (ELF, Mach-O or PE, whichever this
/// platform loads), that it is a shared library, word size, byte order, machine, and
/// that every loadable segment (ELF, Mach-O) or section (PE) lies inside the file.
///
/// The last check matters: glibc's loader maps a truncated library without complaint,
/// and the first touch of a page past the end of the file kills the process with
/// SIGBUS. On every platform it turns a truncated file into an error that says so.
pub fn check_library_file(path: &Path) -> Result<(), LoadError> {
    let io_err = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let header = read_header(&mut file).map_err(io_err)?;
    check_library_header(path, &header, file_len)
}

/// How much of a file [`check_library_header`] wants to see: the file header and, in
/// any library we build, the program headers right after it.
pub const HEADER_BYTES: usize = 64 * 1024;

/// Reads up to [`HEADER_BYTES`] from the start of `file` (less if it is shorter).
pub fn read_header(file: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut header = vec![0u8; HEADER_BYTES];
    let mut n = 0;
    while n < header.len() {
        match file.read(&mut header[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    header.truncate(n);
    Ok(header)
}

/// The checks of [`check_library_file`], on a header already read (the first
/// [`HEADER_BYTES`] of the file, or all of it if shorter) of a file `file_len` bytes
/// long. `path` only names the file in errors. For a caller that reads the file once
/// through its own descriptor, and must judge it before doing anything else with it.
pub fn check_library_header(path: &Path, header: &[u8], file_len: u64) -> Result<(), LoadError> {
    let not_lib = |reason: String| LoadError::NotALibrary {
        path: path.to_path_buf(),
        reason,
    };
    if header.is_empty() {
        return Err(not_lib("the file is empty".into()));
    }
    check_header(header, file_len).map_err(|e| match e {
        HeaderError::Format(reason) => not_lib(reason),
        HeaderError::Arch { expected, found } => LoadError::WrongArchitecture {
            path: path.to_path_buf(),
            expected,
            found,
        },
    })
}

#[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
fn check_header(h: &[u8], file_len: u64) -> Result<(), HeaderError> {
    super::elf::check(h, file_len, &host_description())
}

#[cfg(any(target_os = "macos", target_os = "ios"))]
fn check_header(h: &[u8], file_len: u64) -> Result<(), HeaderError> {
    let host = super::macho::cpu_type(std::env::consts::ARCH);
    super::macho::check(h, file_len, host, &host_description())
}

#[cfg(windows)]
fn check_header(h: &[u8], file_len: u64) -> Result<(), HeaderError> {
    let host = super::pe::machine(std::env::consts::ARCH);
    super::pe::check(h, file_len, host, &host_description())
}
