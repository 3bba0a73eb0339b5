// #[wire(raw)] on a method that does not take and return Vec<u8>.
#[fidius::plugin_interface(version = 1)]
pub trait Raw: Send + Sync {
    #[wire(raw)]
    fn f(&self, a: u32) -> u32;
}
fn main() {}
