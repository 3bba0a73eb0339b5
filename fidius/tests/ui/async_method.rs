// Plugin methods are synchronous.
#[fidius::plugin_interface(version = 1)]
pub trait Later: Send + Sync {
    async fn f(&self) -> u32;
}
fn main() {}
