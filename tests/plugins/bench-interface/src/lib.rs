//! The interfaces the call benchmark measures: the same methods with each buffer
//! strategy.

pub use fidius::{plugin_impl, PluginError};

#[fidius::plugin_interface(version = 1, buffer = Arena)]
pub trait BenchArena: Send + Sync {
    fn add(&self, a: i64, b: i64) -> i64;
    fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    #[wire(raw)]
    fn echo_raw(&self, data: Vec<u8>) -> Vec<u8>;
}

#[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
pub trait BenchAlloc: Send + Sync {
    fn add(&self, a: i64, b: i64) -> i64;
    fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    #[wire(raw)]
    fn echo_raw(&self, data: Vec<u8>) -> Vec<u8>;
}
