//! The interface the hot-reload tests swap versions of.

pub use fidius::{plugin_impl, PluginError};

#[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
pub trait Versioned: Send + Sync {
    /// The build's version number.
    fn version(&self) -> u32;
    /// `x * 16 + version`: every result tells which version produced it.
    fn work(&self, x: u64) -> u64;
    /// `"v<version>:<s>"`, through the wire format.
    fn tag(&self, s: String) -> String;
    /// The file this plugin's code was loaded from (Linux: from `/proc/self/maps`).
    fn origin(&self) -> String;
    /// `n` items, each `version`; item `i` is produced only after the file
    /// `<gate>.<i>` exists (so a test can hold a stream open across a reload).
    fn gated(&self, n: u64, gate: String) -> fidius::Stream<u32>;
    /// Blocks until the file `path` exists (at most 60 s), then returns the version.
    fn wait_for(&self, path: String) -> u32;
}
