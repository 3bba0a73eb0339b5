//! A test interface using the Arena buffer strategy.

pub use fidius::{plugin_impl, PluginError};

#[fidius::plugin_interface(version = 1, buffer = Arena)]
pub trait Blobs: Send + Sync {
    fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    /// The input three times over: a byte result larger than its input.
    fn triple(&self, data: Vec<u8>) -> Vec<u8>;
    /// `n` bytes of `fill`.
    fn make(&self, n: u64, fill: u8) -> Vec<u8>;
    /// A string of `n` characters, to cross the arena with a non-byte type.
    fn text(&self, n: u64) -> String;
    /// How many times any method body has run.
    fn calls(&self) -> u64;
    #[wire(raw)]
    fn raw_make(&self, n_le: Vec<u8>) -> Vec<u8>;
    fn fail(&self, n: u64) -> Result<Vec<u8>, PluginError>;
    /// Scalars only: takes the direct path. Panics when `b` is 0.
    fn div(&self, a: u32, b: u32) -> u32;
    /// Each byte as a `u16`: its result travels as an array of integers, as a
    /// `Vec<u8>` did from plugins built before byte arguments became `bin`.
    fn widen(&self, data: Vec<u8>) -> Vec<u16>;
}
