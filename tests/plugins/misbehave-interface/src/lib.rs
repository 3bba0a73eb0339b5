//! A test interface whose plugin misbehaves on request: crashes, loops, sleeps and
//! allocates without end. Only ever loaded in a plugin process of its own.

pub use fidius::{plugin_impl, PluginError};

#[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
pub trait Misbehave: Send + Sync {
    fn add(&self, a: i64, b: i64) -> i64;
    fn echo(&self, text: String) -> String;
    fn divide(&self, a: i64, b: i64) -> Result<i64, PluginError>;
    /// Ends the process as `how` says: `"segfault"`, `"abort"` (after a line on
    /// standard error), `"exit"` (status 7), `"fork-then-segfault"` (leaving a forked
    /// copy of itself behind, asleep); panics for `"panic"`; writes a line to standard
    /// output and one to standard error for `"print"`; otherwise returns `how`.
    fn crash(&self, how: String) -> String;
    /// Never returns.
    fn spin(&self) -> u32;
    /// Returns `ms` after sleeping that long.
    fn sleep_ms(&self, ms: u64) -> u64;
    /// Allocates without end (and never touches the memory).
    fn hog(&self) -> u64;
    /// The id of the process it runs in.
    fn pid(&self) -> u32;
}
