// #[plugin_interface] on something that is not a trait.
#[fidius::plugin_interface(version = 1)]
pub struct NotATrait;
fn main() {}
