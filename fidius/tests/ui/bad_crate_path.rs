#[fidius::plugin_interface(version = 1, crate = fidius)]
pub trait Greeter: Send + Sync {
    fn greet(&self, name: String) -> String;
}

fn main() {}
