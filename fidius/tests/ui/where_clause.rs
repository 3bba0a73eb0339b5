// No where clauses on plugin methods.
#[fidius::plugin_interface(version = 1)]
pub trait Where: Send + Sync {
    fn f(&self) -> u32
    where
        Self: Sized;
}
fn main() {}
