// #[plugin_impl] must name the interface trait.
#[fidius::plugin_interface(version = 1)]
pub trait Answer: Send + Sync {
    fn answer(&self) -> u32;
}
pub struct S;
#[fidius::plugin_impl]
impl Answer for S {
    fn answer(&self) -> u32 {
        1
    }
}
fn main() {}
