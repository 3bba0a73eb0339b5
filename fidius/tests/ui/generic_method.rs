#[fidius::plugin_interface(version = 1)]
pub trait Generic: Send + Sync {
    fn convert<T: Clone>(&self, value: u32) -> u32;
}

fn main() {}
