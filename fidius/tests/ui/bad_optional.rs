// #[optional] takes nothing or `since = N`.
#[fidius::plugin_interface(version = 2)]
pub trait Opt: Send + Sync {
    fn a(&self) -> u32;
    #[optional = 2]
    fn b(&self) -> u32;
    #[optional(until = 2)]
    fn c(&self) -> u32;
    #[optional(since = 5)]
    fn d(&self) -> u32;
}
fn main() {}
