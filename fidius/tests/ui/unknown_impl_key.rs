#[fidius::plugin_interface(version = 1)]
pub trait Simple: Send + Sync {
    fn f(&self) -> u32;
}

pub struct Impl;

#[fidius::plugin_impl(Simple, speed = fast)]
impl Simple for Impl {
    fn f(&self) -> u32 {
        1
    }
}

fn main() {}
