// The impl must be for the trait named in #[plugin_impl(...)].
#[fidius::plugin_interface(version = 1)]
pub trait A: Send + Sync {
    fn a(&self) -> u32;
}
#[fidius::plugin_interface(version = 1)]
pub trait B: Send + Sync {
    fn b(&self) -> u32;
}
pub struct S;
#[fidius::plugin_impl(A)]
impl B for S {
    fn b(&self) -> u32 {
        1
    }
}
fn main() {}
