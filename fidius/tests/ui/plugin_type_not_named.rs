// A plugin type must be a named type, not a reference or a tuple.
#[fidius::plugin_interface(version = 1)]
pub trait Answer: Send + Sync {
    fn answer(&self) -> u32;
}
#[fidius::plugin_impl(Answer)]
impl Answer for () {
    fn answer(&self) -> u32 {
        1
    }
}
fn main() {}
