//! A test interface whose plugin keeps counters in memory and carries them across
//! versions (`fidius::PluginState`).

pub use fidius::{plugin_impl, PluginError, PluginState, SavedState};

#[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
pub trait Counter: Send + Sync {
    /// Adds `by` to counter `key`; returns its new value.
    fn bump(&self, key: u32, by: u64) -> u64;
    /// The value of counter `key`.
    fn value(&self, key: u32) -> u64;
    /// Which build this is.
    fn build(&self) -> String;
    /// Makes the saved state `bytes` larger (for measuring handoffs).
    fn ballast(&self, bytes: u64);
}
