//! The interface every demo plugin implements.

pub use fidius::{plugin_impl, PluginError, PluginState, SavedState, Stream};

#[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
#[trait_meta("kind", "text-transform")]
pub trait TextTransform: Send + Sync {
    /// Name and version, e.g. `"uppercase 1.0"`.
    fn describe(&self) -> String;
    /// Transforms one line. Fails on an empty line.
    fn transform(&self, line: String) -> Result<String, PluginError>;
    /// The line's words, transformed, one per stream item.
    fn words(&self, line: String) -> Stream<String>;
    /// Words in the line; only some plugins count.
    #[optional(since = 1)]
    fn word_count(&self, line: String) -> u64;
    /// Lines transformed so far, across reloads (a plugin that keeps the count
    /// carries it from one version to the next).
    #[optional(since = 1)]
    fn lines_seen(&self) -> u64;
}

/// A transform the demo runs isolated, in a process of its own (fidius-isolated),
/// because it misbehaves on purpose: see `demo-plugins/fragile`.
#[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
pub trait RiskyTransform: Send + Sync {
    /// Transforms one line; crashes the process on the line `crash`, and never
    /// returns on the line `hang`.
    fn transform(&self, line: String) -> Result<String, PluginError>;
}
