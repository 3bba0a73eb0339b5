//! A plugin of an SDK that re-exports fidius: no dependency on fidius itself.

use sdk_interface::Greeter;

pub struct English;

#[sdk_interface::plugins::plugin_impl(Greeter, crate = "sdk_interface::plugins")]
impl Greeter for English {
    fn greet(&self, name: String) -> String {
        format!("Hello, {name}")
    }
    fn count(&self) -> u64 {
        1
    }
}

sdk_interface::plugins::fidius_plugin_registry!();
