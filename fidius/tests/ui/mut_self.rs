#[fidius::plugin_interface(version = 1)]
pub trait Mutating: Send + Sync {
    fn bump(&mut self) -> u32;
}

fn main() {}
