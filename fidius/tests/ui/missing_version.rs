#[fidius::plugin_interface(buffer = PluginAllocated)]
pub trait NoVersion: Send + Sync {
    fn f(&self) -> u32;
}

fn main() {}
