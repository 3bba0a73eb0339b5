#[fidius::plugin_interface(version = 1, buffer = Arena)]
pub trait Bytes: Send + Sync {
    fn f(&self) -> Vec<u8>;
}

pub struct Impl;

#[fidius::plugin_impl(Bytes, buffer = PluginAllocated)]
impl Bytes for Impl {
    fn f(&self) -> Vec<u8> {
        Vec::new()
    }
}

fn main() {}
