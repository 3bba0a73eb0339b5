// An interface trait cannot be generic.
#[fidius::plugin_interface(version = 1)]
pub trait Gen<T>: Send + Sync {
    fn f(&self) -> u32;
}
fn main() {}
