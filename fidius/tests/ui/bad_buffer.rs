// Only two buffer strategies exist.
#[fidius::plugin_interface(version = 1, buffer = Heap)]
pub trait Buf: Send + Sync {
    fn f(&self) -> u32;
}
fn main() {}
