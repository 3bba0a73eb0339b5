//! What the library header checks share: their error, reading integers of either
//! byte order, and how this host describes itself in a mismatch.

/// Why a header check failed.
pub(super) enum HeaderError {
    /// Not a library of this platform's format, or truncated or corrupt.
    Format(String),
    /// A library for another architecture.
    Arch { expected: String, found: String },
}

/// The `size`-byte unsigned integer at `at` in `h` (little- or big-endian), or `None`
/// if it is not all inside `h`. Shared by the ELF, Mach-O and PE checks.
pub(super) fn read_uint(h: &[u8], at: usize, size: usize, little: bool) -> Option<u64> {
    let b = h.get(at..at.checked_add(size)?)?;
    let fold = |v: u64, &byte: &u8| v << 8 | u64::from(byte);
    Some(if little {
        b.iter().rev().fold(0, fold)
    } else {
        b.iter().fold(0, fold)
    })
}

impl HeaderError {
    /// A file of `format` (ELF, Mach-O, PE) whose structure does not fit in its
    /// `file_len` bytes.
    pub(super) fn truncated(format: &str, file_len: u64, what: String) -> Self {
        Self::Format(format!(
            "truncated or corrupt {format} file ({file_len} bytes): {what}"
        ))
    }
}

pub(super) fn host_description() -> String {
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
