//! A test interface that uses every feature of `#[plugin_interface]`.

pub use fidius::{plugin_impl, PluginError};
use serde::{Deserialize, Serialize};

/// A struct result, to check that user types cross the boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub calls: u64,
    pub name: String,
}

#[fidius::plugin_interface(version = 2, buffer = PluginAllocated)]
#[trait_meta("category", "math")]
#[trait_meta("owner", "tests")]
pub trait Calculator: Send + Sync {
    fn add(&self, a: i64, b: i64) -> i64;
    fn concat(&self, a: String, b: String, sep: char) -> String;
    fn reset(&self);
    fn divide(&self, a: i64, b: i64) -> Result<i64, PluginError>;
    /// Panics with `msg` when `msg` is not empty.
    fn boom(&self, msg: String) -> u32;
    fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    #[wire(raw)]
    fn reverse_raw(&self, data: Vec<u8>) -> Vec<u8>;
    #[method_meta("cost", "high")]
    #[method_meta("unit", "calls")]
    fn stats(&self) -> Stats;
    /// Same signature as `add`: a plugin listing methods in another order must still
    /// be wired by name.
    fn sub(&self, a: i64, b: i64) -> i64;
    #[optional(since = 2)]
    #[method_meta("added", "v2")]
    fn square(&self, x: i64) -> i64;
}
