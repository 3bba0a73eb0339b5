// A fallible method must use PluginError.
#[fidius::plugin_interface(version = 1)]
pub trait Fallible: Send + Sync {
    fn f(&self) -> Result<u32, String>;
}
fn main() {}
