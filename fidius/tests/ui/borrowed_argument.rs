// Arguments are decoded in the plugin: they must be owned.
#[fidius::plugin_interface(version = 1)]
pub trait Borrow: Send + Sync {
    fn f(&self, s: &str) -> u32;
}
fn main() {}
