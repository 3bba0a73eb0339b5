//! Checks, from the file header alone, that a file is a shared library this host can
//! load, before the dynamic loader (which runs the library's initialisers) sees it.

use super::LoadError;
use std::io::Read;
use std::path::Path;

/// The file extension of shared libraries on this platform (`so`, `dylib`, `dll`).
pub const DYLIB_EXTENSION: &str = std::env::consts::DLL_EXTENSION;

/// Reads the header of `path` and checks format, word size, byte order and machine.
pub fn check_library_file(path: &Path) -> Result<(), LoadError> {
    let mut header = [0u8; 64];
    let mut file = std::fs::File::open(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut n = 0;
    while n < header.len() {
        match file.read(&mut header[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(source) => {
                return Err(LoadError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    let not_lib = |reason: String| LoadError::NotALibrary {
        path: path.to_path_buf(),
        reason,
    };
    if n == 0 {
        return Err(not_lib("the file is empty".into()));
    }
    check_header(&header[..n]).map_err(|e| match e {
        HeaderError::Format(reason) => not_lib(reason),
        HeaderError::Arch { expected, found } => LoadError::WrongArchitecture {
            path: path.to_path_buf(),
            expected,
            found,
        },
    })
}

enum HeaderError {
    Format(String),
    Arch { expected: String, found: String },
}

fn host_description() -> String {
    format!(
        "{}-bit {} ({})",
        usize::BITS,
        std::env::consts::ARCH,
        if cfg!(target_endian = "little") {
            "little-endian"
        } else {
            "big-endian"
        }
    )
}

#[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
fn check_header(h: &[u8]) -> Result<(), HeaderError> {
    if h.len() < 20 || &h[..4] != b"\x7fELF" {
        return Err(HeaderError::Format(format!(
            "not an ELF file (starts with {:02x?})",
            &h[..h.len().min(8)]
        )));
    }
    let bits = match h[4] {
        1 => 32,
        2 => 64,
        c => return Err(HeaderError::Format(format!("unknown ELF class {c}"))),
    };
    let little = match h[5] {
        1 => true,
        2 => false,
        d => return Err(HeaderError::Format(format!("unknown ELF byte order {d}"))),
    };
    let rd16 = |o: usize| {
        let b = [h[o], h[o + 1]];
        if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    let e_type = rd16(16);
    let machine = rd16(18);
    let found = format!(
        "{bits}-bit {} ({})",
        elf_machine_name(machine),
        if little {
            "little-endian"
        } else {
            "big-endian"
        }
    );
    let host_machine = elf_machine_for_host();
    if bits != usize::BITS
        || little != cfg!(target_endian = "little")
        || Some(machine) != host_machine
    {
        // Report the architecture mismatch only when we know the host's machine code.
        if host_machine.is_some() || bits != usize::BITS {
            return Err(HeaderError::Arch {
                expected: host_description(),
                found,
            });
        }
    }
    if e_type != 3 {
        return Err(HeaderError::Format(format!(
            "an ELF file but not a shared object (e_type {e_type})"
        )));
    }
    Ok(())
}

#[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
fn elf_machine_for_host() -> Option<u16> {
    match std::env::consts::ARCH {
        "x86" => Some(3),
        "arm" => Some(40),
        "x86_64" => Some(62),
        "aarch64" => Some(183),
        "riscv64" | "riscv32" => Some(243),
        "powerpc64" => Some(21),
        "s390x" => Some(22),
        "loongarch64" => Some(258),
        _ => None,
    }
}

#[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
fn elf_machine_name(m: u16) -> String {
    match m {
        3 => "x86".into(),
        40 => "arm".into(),
        62 => "x86_64".into(),
        183 => "aarch64".into(),
        243 => "riscv".into(),
        21 => "powerpc64".into(),
        22 => "s390x".into(),
        258 => "loongarch64".into(),
        other => format!("ELF machine {other}"),
    }
}

#[cfg(any(target_os = "macos", target_os = "ios"))]
fn check_header(h: &[u8]) -> Result<(), HeaderError> {
    const MH_MAGIC_64: [u8; 4] = [0xcf, 0xfa, 0xed, 0xfe];
    const FAT: [u8; 4] = [0xca, 0xfe, 0xba, 0xbe];
    if h.len() >= 4 && (h[..4] == MH_MAGIC_64 || h[..4] == FAT) {
        return Ok(());
    }
    let _ = host_description;
    Err(HeaderError::Format("not a Mach-O file".into()))
}

#[cfg(windows)]
fn check_header(h: &[u8]) -> Result<(), HeaderError> {
    if h.len() >= 2 && &h[..2] == b"MZ" {
        return Ok(());
    }
    let _ = host_description;
    Err(HeaderError::Format("not a PE file".into()))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn elf(class: u8, machine: u16, e_type: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = 1;
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    #[test]
    fn accepts_own_shared_objects() {
        let m = elf_machine_for_host().unwrap();
        assert!(check_header(&elf(2, m, 3)).is_ok());
    }

    #[test]
    fn rejects_other_machines_and_kinds() {
        let other = if elf_machine_for_host() == Some(62) {
            183
        } else {
            62
        };
        assert!(matches!(
            check_header(&elf(2, other, 3)),
            Err(HeaderError::Arch { .. })
        ));
        assert!(matches!(
            check_header(&elf(1, 3, 3)),
            Err(HeaderError::Arch { .. })
        ));
        let m = elf_machine_for_host().unwrap();
        assert!(matches!(
            check_header(&elf(2, m, 2)),
            Err(HeaderError::Format(_))
        ));
        assert!(matches!(
            check_header(b"hello world, this is text"),
            Err(HeaderError::Format(_))
        ));
    }
}
