//! A test interface of streaming methods.

pub use fidius::{plugin_impl, PluginError, Stream};

#[fidius::plugin_interface(version = 1, buffer = Arena)]
pub trait Streams: Send + Sync {
    /// 0, 1, ..., n-1, produced lazily.
    fn numbers(&self, n: u64) -> Stream<u64>;
    /// No items.
    fn nothing(&self) -> Stream<String>;
    /// 0..n, then a `PluginError`.
    fn fail_after(&self, n: u64) -> Stream<u64>;
    /// 0..n, then a panic.
    fn panic_after(&self, n: u64) -> Stream<u64>;
    /// `count` items of `size` bytes each, item i filled with i.
    fn blobs(&self, count: u64, size: u64) -> Stream<Vec<u8>>;
    /// Items produced so far by every stream of this plugin.
    fn produced(&self) -> u64;
    /// Producers alive right now (created and not yet freed).
    fn live(&self) -> u64;
}
