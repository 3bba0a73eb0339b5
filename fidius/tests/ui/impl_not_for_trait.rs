// #[plugin_impl] on an inherent impl.
#[fidius::plugin_interface(version = 1)]
pub trait Answer: Send + Sync {
    fn answer(&self) -> u32;
}
pub struct S;
#[fidius::plugin_impl(Answer)]
impl S {
    pub fn answer(&self) -> u32 {
        1
    }
}
fn main() {}
