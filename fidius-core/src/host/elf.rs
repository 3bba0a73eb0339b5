//! ELF (Linux and the other Unix systems): the header checks of a shared object.

use super::header::{read_uint, HeaderError};

/// Checks an ELF header: a shared object of this host's word size, byte order and
/// machine, whose segments and section headers lie inside its `file_len` bytes.
pub(super) fn check(h: &[u8], file_len: u64, host: &str) -> Result<(), HeaderError> {
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
                expected: host.to_string(),
                found,
            });
        }
    }
    if e_type != 3 {
        return Err(HeaderError::Format(format!(
            "an ELF file but not a shared object (e_type {e_type})"
        )));
    }
    check_elf_extents(h, bits == 64, little, file_len)
}

/// Checks that the program headers, every `PT_LOAD` segment's file bytes and the
/// section header table lie inside the file.
fn check_elf_extents(h: &[u8], is64: bool, little: bool, file_len: u64) -> Result<(), HeaderError> {
    let truncated = |what| HeaderError::truncated("ELF", file_len, what);
    let rd = |at, size| read_uint(h, at, size, little);
    let word = if is64 { 8 } else { 4 };
    // (e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum) offsets.
    let (phoff_at, shoff_at, rest_at) = if is64 { (32, 40, 54) } else { (28, 32, 42) };
    let fields = (|| {
        Some((
            rd(phoff_at, word)?,
            rd(shoff_at, word)?,
            rd(rest_at, 2)?,
            rd(rest_at + 2, 2)?,
            rd(rest_at + 4, 2)?,
            rd(rest_at + 6, 2)?,
        ))
    })();
    let Some((phoff, shoff, phentsize, phnum, shentsize, shnum)) = fields else {
        return Err(truncated("the ELF header is incomplete".into()));
    };
    let ph_end = phoff.saturating_add(phentsize.saturating_mul(phnum));
    if ph_end > file_len {
        return Err(truncated(format!("program headers end at byte {ph_end}")));
    }
    if shoff != 0 {
        let sh_end = shoff.saturating_add(shentsize.saturating_mul(shnum));
        if sh_end > file_len {
            return Err(truncated(format!("section headers end at byte {sh_end}")));
        }
    }
    for i in 0..phnum {
        let base = (phoff + i * phentsize) as usize;
        // p_type, then p_offset and p_filesz at class-specific offsets.
        let (off_at, filesz_at) = if is64 { (8, 32) } else { (4, 16) };
        let (Some(p_type), Some(offset), Some(filesz)) = (
            rd(base, 4),
            rd(base + off_at, word),
            rd(base + filesz_at, word),
        ) else {
            return Err(truncated(format!(
                "program header {i} lies beyond the first {} bytes read",
                h.len()
            )));
        };
        const PT_LOAD: u64 = 1;
        if p_type == PT_LOAD && offset.saturating_add(filesz) > file_len {
            return Err(truncated(format!(
                "loadable segment {i} needs bytes up to {}",
                offset.saturating_add(filesz)
            )));
        }
    }
    Ok(())
}

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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn check_host(h: &[u8], file_len: u64) -> Result<(), HeaderError> {
        check(h, file_len, "this host")
    }

    /// An ELF header with no program or section headers.
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
        assert!(check_host(&elf(2, m, 3), 64).is_ok());
    }

    #[test]
    fn rejects_other_machines_and_kinds() {
        let other = if elf_machine_for_host() == Some(62) {
            183
        } else {
            62
        };
        let arch = |r| matches!(r, Err(HeaderError::Arch { .. }));
        let format = |r| matches!(r, Err(HeaderError::Format(_)));
        assert!(arch(check_host(&elf(2, other, 3), 64)));
        assert!(arch(check_host(&elf(1, 3, 3), 64)));
        let m = elf_machine_for_host().unwrap();
        assert!(format(check_host(&elf(2, m, 2), 64)));
        assert!(format(check_host(b"hello world, this is text", 25)));
    }

    #[test]
    fn rejects_segments_past_the_end_of_the_file() {
        let m = elf_machine_for_host().unwrap();
        let mut h = elf(2, m, 3);
        // One program header at offset 64: PT_LOAD, p_offset 0, p_filesz 10_000.
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&1u16.to_le_bytes());
        let mut ph = vec![0u8; 56];
        ph[0..4].copy_from_slice(&1u32.to_le_bytes());
        ph[32..40].copy_from_slice(&10_000u64.to_le_bytes());
        h.extend_from_slice(&ph);
        let format = |r| matches!(r, Err(HeaderError::Format(_)));
        assert!(check_host(&h, 10_000).is_ok());
        assert!(format(check_host(&h, 9_999)));
        // The program headers themselves cut off.
        assert!(format(check_host(&h[..100], 100)));
    }
}
