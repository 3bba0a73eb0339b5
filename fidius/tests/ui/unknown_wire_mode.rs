// The only wire mode is raw.
#[fidius::plugin_interface(version = 1)]
pub trait Wire: Send + Sync {
    #[wire(cooked)]
    fn f(&self, data: Vec<u8>) -> Vec<u8>;
}
fn main() {}
