// `crate = "path"`: an interface crate that re-exports fidius under another path
// names it, and the generated code goes through that path.
mod sdk {
    pub use ::fidius as plugins;
}

#[fidius::plugin_interface(version = 1, crate = "crate::sdk::plugins")]
pub trait Greeter: Send + Sync {
    fn greet(&self, name: String) -> String;
    fn count(&self) -> u64;
}

pub struct English;

#[fidius::plugin_impl(Greeter, crate = "crate::sdk::plugins")]
impl Greeter for English {
    fn greet(&self, name: String) -> String {
        format!("Hello, {name}")
    }
    fn count(&self) -> u64 {
        1
    }
}

// The spelling upstream users write is accepted too.
#[fidius::plugin_interface(version = 1, crate = "fidius")]
pub trait Plain: Send + Sync {
    fn f(&self) -> u32;
}

fn main() {
    assert_eq!(fidius::interface_info::<dyn Greeter>().name, "Greeter");
    assert_eq!(fidius::interface_info::<dyn Plain>().name, "Plain");
}
