#[fidius::plugin_interface(version = 1)]
pub trait TwoMethods: Send + Sync {
    fn first(&self) -> u32;
    fn second(&self) -> u32;
}

pub struct Half;

#[fidius::plugin_impl(TwoMethods)]
impl TwoMethods for Half {
    fn first(&self) -> u32 {
        1
    }
}

fn main() {}
