#[fidius::plugin_interface(version = 1, colour = "blue")]
pub trait Colourful: Send + Sync {
    fn f(&self) -> u32;
}

fn main() {}
