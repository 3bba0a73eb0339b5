//! PE header checks (Windows): format, that the file is a DLL, the machine, and that
//! every section's file bytes lie inside the file. Pure functions over the header
//! bytes, so they are tested on every platform.

use super::header::{read_uint, HeaderError};

const IMAGE_FILE_DLL: u16 = 0x2000;

/// The PE machine of an architecture name as in `std::env::consts::ARCH`.
pub(super) fn machine(arch: &str) -> Option<u16> {
    match arch {
        "x86" => Some(0x014c),
        "x86_64" => Some(0x8664),
        "arm" => Some(0x01c4),
        "aarch64" => Some(0xaa64),
        _ => None,
    }
}

fn machine_name(m: u16) -> String {
    match m {
        0x014c => "x86".into(),
        0x8664 => "x86_64".into(),
        0x01c4 => "arm".into(),
        0xaa64 => "arm64".into(),
        other => format!("PE machine {other:#06x}"),
    }
}

fn u16_at(h: &[u8], at: usize) -> Option<u16> {
    read_uint(h, at, 2, true).map(|v| v as u16)
}

fn u32_at(h: &[u8], at: usize) -> Option<u32> {
    read_uint(h, at, 4, true).map(|v| v as u32)
}

/// Checks a PE file for a host whose machine is `host` (`None`: unknown, so any
/// machine is let through to the loader). `expected` describes the host for errors.
pub(super) fn check(
    h: &[u8],
    file_len: u64,
    host: Option<u16>,
    expected: &str,
) -> Result<(), HeaderError> {
    let truncated = |what| HeaderError::truncated("PE", file_len, what);
    if h.get(..2) != Some(b"MZ") {
        return Err(HeaderError::Format(format!(
            "not a PE file (starts with {:02x?})",
            &h[..h.len().min(8)]
        )));
    }
    let pe =
        u32_at(h, 0x3c).ok_or_else(|| truncated("the DOS header is incomplete".into()))? as usize;
    if h.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(truncated(format!(
            "no PE signature at byte {pe} (of the first {} read)",
            h.len()
        )));
    }
    // The COFF header follows the signature.
    let coff = pe + 4;
    let (Some(machine), Some(sections), Some(optional_size), Some(characteristics)) = (
        u16_at(h, coff),
        u16_at(h, coff + 2),
        u16_at(h, coff + 16),
        u16_at(h, coff + 18),
    ) else {
        return Err(truncated("the COFF header is incomplete".into()));
    };
    if host.is_some_and(|host| host != machine) {
        return Err(HeaderError::Arch {
            expected: expected.into(),
            found: machine_name(machine),
        });
    }
    if characteristics & IMAGE_FILE_DLL == 0 {
        return Err(HeaderError::Format(
            "a PE file but not a DLL (an executable?)".into(),
        ));
    }
    let table = coff + 20 + optional_size as usize;
    for i in 0..sections as usize {
        // Each section header is 40 bytes: SizeOfRawData at 16, PointerToRawData at 20.
        let base = table + i * 40;
        let (Some(size), Some(offset)) = (u32_at(h, base + 16), u32_at(h, base + 20)) else {
            return Err(truncated(format!(
                "section header {i} lies beyond the first {} bytes read",
                h.len()
            )));
        };
        let end = u64::from(offset) + u64::from(size);
        if end > file_len {
            return Err(truncated(format!("section {i} needs bytes up to {end}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMD64: u16 = 0x8664;

    /// A DOS stub pointing at a PE header at 0x80 with one section whose raw data
    /// ends at `section_end`.
    fn dll(machine: u16, characteristics: u16, section_end: u32) -> Vec<u8> {
        let mut h = vec![0u8; 0x80];
        h[..2].copy_from_slice(b"MZ");
        h[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        h.extend_from_slice(b"PE\0\0");
        let mut coff = vec![0u8; 20];
        coff[0..2].copy_from_slice(&machine.to_le_bytes());
        coff[2..4].copy_from_slice(&1u16.to_le_bytes());
        coff[16..18].copy_from_slice(&0u16.to_le_bytes());
        coff[18..20].copy_from_slice(&characteristics.to_le_bytes());
        h.extend_from_slice(&coff);
        let mut section = vec![0u8; 40];
        section[16..20].copy_from_slice(&(section_end - 0x400).to_le_bytes());
        section[20..24].copy_from_slice(&0x400u32.to_le_bytes());
        h.extend_from_slice(&section);
        h
    }

    fn format(r: Result<(), HeaderError>) -> Option<String> {
        match r {
            Err(HeaderError::Format(reason)) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn host_machines() {
        assert_eq!(machine("x86_64"), Some(AMD64));
        assert_eq!(machine("aarch64"), Some(0xaa64));
        assert_eq!(machine("mips"), None);
    }

    #[test]
    fn dlls_of_the_host_pass() {
        let h = dll(AMD64, IMAGE_FILE_DLL | 0x0022, 0x2000);
        assert!(check(&h, 0x2000, Some(AMD64), "x86_64").is_ok());
        assert!(check(&h, 0x2000, None, "?").is_ok());
    }

    #[test]
    fn other_machines_are_named() {
        match check(
            &dll(0xaa64, IMAGE_FILE_DLL, 0x2000),
            0x2000,
            Some(AMD64),
            "x86_64",
        ) {
            Err(HeaderError::Arch { expected, found }) => {
                assert_eq!(expected, "x86_64");
                assert_eq!(found, "arm64");
            }
            _ => panic!("expected an architecture mismatch"),
        }
    }

    #[test]
    fn executables_and_garbage_are_not_libraries() {
        let exe = dll(AMD64, 0x0022, 0x2000);
        assert!(format(check(&exe, 0x2000, Some(AMD64), "x86_64"))
            .unwrap()
            .contains("not a DLL"));
        assert!(format(check(b"hello, world", 12, Some(AMD64), "x86_64"))
            .unwrap()
            .contains("not a PE file"));
        // MZ with no PE header where it points.
        let mut stub = dll(AMD64, IMAGE_FILE_DLL, 0x2000);
        stub[0x80..0x84].copy_from_slice(b"XX\0\0");
        assert!(format(check(&stub, 0x2000, Some(AMD64), "x86_64"))
            .unwrap()
            .contains("no PE signature"));
    }

    #[test]
    fn truncated_files_are_caught_before_the_loader() {
        let h = dll(AMD64, IMAGE_FILE_DLL, 0x2000);
        let cut = format(check(&h, 0x1fff, Some(AMD64), "x86_64")).unwrap();
        assert!(cut.contains("section 0 needs bytes up to 8192"), "{cut}");
        // Headers cut off.
        assert!(format(check(&h[..0x90], 0x90, Some(AMD64), "x86_64")).is_some());
        assert!(format(check(&h[..0x30], 0x30, Some(AMD64), "x86_64")).is_some());
    }
}
