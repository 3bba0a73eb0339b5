//! An SDK crate: the interface, and fidius re-exported under its own name, so that
//! plugin crates depend on this crate alone (`crate = "sdk_interface::plugins"`).

pub use fidius as plugins;

#[fidius::plugin_interface(version = 1)]
pub trait Greeter: Send + Sync {
    fn greet(&self, name: String) -> String;
    fn count(&self) -> u64;
}
