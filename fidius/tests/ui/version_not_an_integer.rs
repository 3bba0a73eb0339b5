// The interface version is an integer, and needs a value.
#[fidius::plugin_interface(version = "one")]
pub trait V1: Send + Sync {
    fn f(&self) -> u32;
}
#[fidius::plugin_interface(version)]
pub trait V2: Send + Sync {
    fn f(&self) -> u32;
}
fn main() {}
