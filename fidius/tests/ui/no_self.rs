// Every plugin method takes &self.
#[fidius::plugin_interface(version = 1)]
pub trait NoSelf: Send + Sync {
    fn f(x: u32) -> u32;
}
fn main() {}
