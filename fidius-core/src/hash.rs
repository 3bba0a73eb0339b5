//! FNV-1a hashing of interface signatures.
//!
//! The interface hash is the 64-bit FNV-1a of the canonical signatures of the
//! interface's *required* methods, in declaration order, each followed by a newline.
//! Optional methods are left out so that adding one keeps old plugins loadable.
//! A canonical signature looks like `process(String)->String` or
//! `blob[raw](Vec<u8>)->Vec<u8>`; the macro removes all whitespace from type tokens.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Streaming 64-bit FNV-1a: feed bytes in pieces, get the same hash as [`fnv1a`] of
/// their concatenation. Usable in constants.
///
/// ```
/// use fidius_core::hash::{fnv1a, Fnv1a};
/// assert_eq!(Fnv1a::new().update(b"foo").update(b"bar").finish(), fnv1a(b"foobar"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Fnv1a {
    /// A hasher that has seen nothing yet.
    pub const fn new() -> Self {
        Fnv1a(FNV_OFFSET)
    }

    /// Feeds `bytes`.
    pub const fn update(mut self, bytes: &[u8]) -> Self {
        let mut i = 0;
        while i < bytes.len() {
            self.0 ^= bytes[i] as u64;
            self.0 = self.0.wrapping_mul(FNV_PRIME);
            i += 1;
        }
        self
    }

    /// The hash of everything fed so far.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

/// 64-bit FNV-1a of `bytes`. Usable in constants.
///
/// ```
/// assert_eq!(fidius_core::hash::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
/// assert_eq!(fidius_core::hash::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
/// ```
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    Fnv1a::new().update(bytes).finish()
}

/// The interface hash of a list of canonical required-method signatures.
///
/// ```
/// use fidius_core::hash::interface_hash;
/// let a = interface_hash(&["process(String)->String"]);
/// let b = interface_hash(&["process(String)->Vec<u8>"]);
/// assert_ne!(a, b);
/// ```
pub const fn interface_hash(signatures: &[&str]) -> u64 {
    // FNV-1a over `sig1 \n sig2 \n ...`, without building the joined string, so that
    // the interface macro can evaluate it in a constant.
    let mut hash = Fnv1a::new();
    let mut s = 0;
    while s < signatures.len() {
        hash = hash.update(signatures[s].as_bytes()).update(b"\n");
        s += 1;
    }
    hash.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Reference values from the FNV specification's test suite.
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn interface_hash_is_fnv_of_joined_lines() {
        assert_eq!(
            interface_hash(&["a()", "b(u8)->u8"]),
            fnv1a(b"a()\nb(u8)->u8\n")
        );
        assert_eq!(interface_hash(&[]), fnv1a(b""));
    }

    #[test]
    fn order_and_separator_matter() {
        assert_ne!(
            interface_hash(&["a()", "b()"]),
            interface_hash(&["b()", "a()"])
        );
        assert_ne!(interface_hash(&["ab()"]), interface_hash(&["a", "b()"]));
    }
}
