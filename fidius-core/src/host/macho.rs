//! Mach-O header checks (macOS): format, file type, architecture, and that the load
//! commands and every segment's file bytes lie inside the file. Pure functions over
//! the header bytes, so they are tested on every platform.

use super::header::{read_uint, HeaderError};

const MH_MAGIC_64: u32 = 0xfeed_facf;
const MH_MAGIC: u32 = 0xfeed_face;
const FAT_MAGIC: u32 = 0xcafe_babe;
const FAT_MAGIC_64: u32 = 0xcafe_babf;
const MH_DYLIB: u32 = 6;
const MH_BUNDLE: u32 = 8;
const LC_SEGMENT_64: u32 = 0x19;
const CPU_ARCH_ABI64: u32 = 0x0100_0000;

/// The Mach-O CPU type of an architecture name as in `std::env::consts::ARCH`.
pub(super) fn cpu_type(arch: &str) -> Option<u32> {
    match arch {
        "x86" => Some(7),
        "x86_64" => Some(7 | CPU_ARCH_ABI64),
        "arm" => Some(12),
        "aarch64" => Some(12 | CPU_ARCH_ABI64),
        "powerpc" => Some(18),
        "powerpc64" => Some(18 | CPU_ARCH_ABI64),
        _ => None,
    }
}

fn cpu_name(cpu: u32) -> String {
    match cpu {
        7 => "x86".into(),
        0x0100_0007 => "x86_64".into(),
        12 => "arm".into(),
        0x0100_000c => "arm64".into(),
        18 => "powerpc".into(),
        0x0100_0012 => "powerpc64".into(),
        other => format!("Mach-O CPU type {other:#x}"),
    }
}

fn read_u32(h: &[u8], at: usize, little: bool) -> Option<u32> {
    read_uint(h, at, 4, little).map(|v| v as u32)
}

fn read_u64(h: &[u8], at: usize, little: bool) -> Option<u64> {
    read_uint(h, at, 8, little)
}

/// Checks a Mach-O file (thin or universal) for a host whose CPU type is `host`
/// (`None`: unknown, so any architecture is let through to the loader). `expected`
/// describes the host for error messages.
pub(super) fn check(
    h: &[u8],
    file_len: u64,
    host: Option<u32>,
    expected: &str,
) -> Result<(), HeaderError> {
    let truncated = |what| HeaderError::truncated("Mach-O", file_len, what);
    let Some(magic_be) = read_u32(h, 0, false) else {
        return Err(HeaderError::Format("not a Mach-O file".into()));
    };
    match magic_be {
        FAT_MAGIC | FAT_MAGIC_64 => {
            let wide = magic_be == FAT_MAGIC_64;
            let count = read_u32(h, 4, false).ok_or_else(|| truncated("no slice count".into()))?;
            let entry = if wide { 32 } else { 20 };
            let mut found = Vec::new();
            for i in 0..count as usize {
                let base = 8 + i * entry;
                let fields = if wide {
                    read_u32(h, base, false)
                        .zip(read_u64(h, base + 8, false))
                        .zip(read_u64(h, base + 16, false))
                } else {
                    read_u32(h, base, false)
                        .zip(read_u32(h, base + 8, false).map(u64::from))
                        .zip(read_u32(h, base + 12, false).map(u64::from))
                };
                let Some(((cpu, offset), size)) = fields else {
                    return Err(truncated(format!(
                        "slice {i} of {count} lies beyond the first {} bytes read",
                        h.len()
                    )));
                };
                if offset.saturating_add(size) > file_len {
                    return Err(truncated(format!(
                        "slice {i} ({}) needs bytes up to {}",
                        cpu_name(cpu),
                        offset.saturating_add(size)
                    )));
                }
                found.push(cpu);
            }
            match host {
                Some(host) if !found.contains(&host) => Err(HeaderError::Arch {
                    expected: expected.into(),
                    found: format!(
                        "a universal file with [{}]",
                        found
                            .iter()
                            .map(|&c| cpu_name(c))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
                _ => Ok(()),
            }
        }
        _ => check_thin(h, file_len, host, expected),
    }
}

fn check_thin(
    h: &[u8],
    file_len: u64,
    host: Option<u32>,
    expected: &str,
) -> Result<(), HeaderError> {
    let truncated = |what| HeaderError::truncated("Mach-O", file_len, what);
    let magic = read_u32(h, 0, true);
    if magic == Some(MH_MAGIC) || read_u32(h, 0, false) == Some(MH_MAGIC) {
        let little = magic == Some(MH_MAGIC);
        let cpu = read_u32(h, 4, little).unwrap_or(0);
        return Err(HeaderError::Arch {
            expected: expected.into(),
            found: format!("32-bit {}", cpu_name(cpu)),
        });
    }
    let little = match (magic, read_u32(h, 0, false)) {
        (Some(MH_MAGIC_64), _) => true,
        (_, Some(MH_MAGIC_64)) => false,
        _ => {
            return Err(HeaderError::Format(format!(
                "not a Mach-O file (starts with {:02x?})",
                &h[..h.len().min(8)]
            )))
        }
    };
    let (Some(cpu), Some(file_type), Some(ncmds), Some(sizeofcmds)) = (
        read_u32(h, 4, little),
        read_u32(h, 12, little),
        read_u32(h, 16, little),
        read_u32(h, 20, little),
    ) else {
        return Err(truncated("the Mach-O header is incomplete".into()));
    };
    if host.is_some_and(|host| host != cpu) {
        return Err(HeaderError::Arch {
            expected: expected.into(),
            found: cpu_name(cpu),
        });
    }
    if file_type != MH_DYLIB && file_type != MH_BUNDLE {
        return Err(HeaderError::Format(format!(
            "a Mach-O file but not a dynamic library (file type {file_type})"
        )));
    }
    // The 64-bit header is 32 bytes; the load commands follow it.
    let cmds_end = 32 + u64::from(sizeofcmds);
    if cmds_end > file_len {
        return Err(truncated(format!("load commands end at byte {cmds_end}")));
    }
    let mut at = 32usize;
    for i in 0..ncmds {
        let (Some(cmd), Some(size)) = (read_u32(h, at, little), read_u32(h, at + 4, little)) else {
            return Err(truncated(format!(
                "load command {i} lies beyond the first {} bytes read",
                h.len()
            )));
        };
        if size < 8 {
            return Err(truncated(format!("load command {i} has size {size}")));
        }
        if cmd == LC_SEGMENT_64 {
            // segment_command_64: fileoff at 40, filesize at 48.
            let (Some(offset), Some(filesize)) =
                (read_u64(h, at + 40, little), read_u64(h, at + 48, little))
            else {
                return Err(truncated(format!("segment command {i} is incomplete")));
            };
            if offset.saturating_add(filesize) > file_len {
                return Err(truncated(format!(
                    "segment {i} needs bytes up to {}",
                    offset.saturating_add(filesize)
                )));
            }
        }
        at += size as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86_64: u32 = 0x0100_0007;
    const ARM64: u32 = 0x0100_000c;

    /// A thin 64-bit little-endian Mach-O header with one LC_SEGMENT_64 whose file
    /// bytes end at `segment_end`.
    fn thin(cpu: u32, file_type: u32, segment_end: u64) -> Vec<u8> {
        let mut h = vec![0u8; 32];
        h[0..4].copy_from_slice(&MH_MAGIC_64.to_le_bytes());
        h[4..8].copy_from_slice(&cpu.to_le_bytes());
        h[12..16].copy_from_slice(&file_type.to_le_bytes());
        h[16..20].copy_from_slice(&1u32.to_le_bytes());
        h[20..24].copy_from_slice(&72u32.to_le_bytes());
        let mut seg = vec![0u8; 72];
        seg[0..4].copy_from_slice(&LC_SEGMENT_64.to_le_bytes());
        seg[4..8].copy_from_slice(&72u32.to_le_bytes());
        seg[48..56].copy_from_slice(&segment_end.to_le_bytes());
        h.extend_from_slice(&seg);
        h
    }

    /// A universal header with the given (cpu, offset, size) slices.
    fn fat(slices: &[(u32, u32, u32)]) -> Vec<u8> {
        let mut h = FAT_MAGIC.to_be_bytes().to_vec();
        h.extend_from_slice(&(slices.len() as u32).to_be_bytes());
        for &(cpu, offset, size) in slices {
            for v in [cpu, 0, offset, size, 12] {
                h.extend_from_slice(&v.to_be_bytes());
            }
        }
        h
    }

    fn arch(r: Result<(), HeaderError>) -> bool {
        matches!(r, Err(HeaderError::Arch { .. }))
    }

    fn format(r: Result<(), HeaderError>) -> Option<String> {
        match r {
            Err(HeaderError::Format(reason)) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn host_cpu_types() {
        assert_eq!(cpu_type("x86_64"), Some(X86_64));
        assert_eq!(cpu_type("aarch64"), Some(ARM64));
        assert_eq!(cpu_type("sparc"), None);
    }

    #[test]
    fn thin_libraries_of_the_host_pass() {
        let h = thin(X86_64, MH_DYLIB, 4096);
        assert!(check(&h, 4096, Some(X86_64), "x86_64").is_ok());
        assert!(check(&thin(ARM64, MH_BUNDLE, 200), 200, Some(ARM64), "arm64").is_ok());
        // An unknown host lets any architecture through to the loader.
        assert!(check(&h, 4096, None, "?").is_ok());
    }

    #[test]
    fn other_architectures_are_named() {
        let r = check(&thin(ARM64, MH_DYLIB, 100), 100, Some(X86_64), "x86_64");
        match r {
            Err(HeaderError::Arch { expected, found }) => {
                assert_eq!(expected, "x86_64");
                assert_eq!(found, "arm64");
            }
            _ => panic!("expected an architecture mismatch"),
        }
        let mut h32 = MH_MAGIC.to_le_bytes().to_vec();
        h32.extend_from_slice(&7u32.to_le_bytes());
        h32.resize(28, 0);
        assert!(arch(check(&h32, 28, Some(X86_64), "x86_64")));
    }

    #[test]
    fn executables_and_garbage_are_not_libraries() {
        let exe = thin(X86_64, 2, 100);
        assert!(format(check(&exe, 100, Some(X86_64), "x86_64"))
            .unwrap()
            .contains("not a dynamic library"));
        assert!(format(check(b"hello, world", 12, Some(X86_64), "x86_64"))
            .unwrap()
            .contains("not a Mach-O file"));
        assert!(format(check(b"", 0, Some(X86_64), "x86_64")).is_some());
    }

    #[test]
    fn truncated_files_are_caught_before_the_loader() {
        let h = thin(X86_64, MH_DYLIB, 10_000);
        assert!(check(&h, 10_000, Some(X86_64), "x86_64").is_ok());
        let cut = format(check(&h, 9_999, Some(X86_64), "x86_64")).unwrap();
        assert!(cut.contains("segment 0 needs bytes up to 10000"), "{cut}");
        // The load commands themselves cut off.
        assert!(format(check(&h[..60], 60, Some(X86_64), "x86_64")).is_some());
        // A zero-sized load command would loop forever without the size check.
        let mut zero = h.clone();
        zero[36..40].copy_from_slice(&0u32.to_le_bytes());
        assert!(format(check(&zero, 10_000, Some(X86_64), "x86_64")).is_some());
    }

    #[test]
    fn universal_files_need_a_slice_for_the_host_inside_the_file() {
        let both = fat(&[(X86_64, 4096, 1000), (ARM64, 8192, 1000)]);
        assert!(check(&both, 9192, Some(X86_64), "x86_64").is_ok());
        assert!(check(&both, 9192, Some(ARM64), "arm64").is_ok());
        let arm_only = fat(&[(ARM64, 4096, 1000)]);
        match check(&arm_only, 5096, Some(X86_64), "x86_64") {
            Err(HeaderError::Arch { found, .. }) => {
                assert_eq!(found, "a universal file with [arm64]")
            }
            _ => panic!("expected an architecture mismatch"),
        }
        assert!(format(check(&both, 9000, Some(X86_64), "x86_64"))
            .unwrap()
            .contains("slice 1 (arm64)"));
        // The slice table itself cut off.
        assert!(format(check(&both[..20], 9192, Some(X86_64), "x86_64")).is_some());
    }
}
