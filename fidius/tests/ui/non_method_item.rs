// An interface holds methods only.
#[fidius::plugin_interface(version = 1)]
pub trait Consts: Send + Sync {
    const C: u32;
    fn f(&self) -> u32;
}
fn main() {}
