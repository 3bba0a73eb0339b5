//! The README's plugin, built without `crate-type = ["cdylib"]`: it compiles, and a
//! host finds no library at all. The host must say so.

use my_interface::{plugin_impl, MyPlugin};

pub struct MyImpl;

#[plugin_impl(MyPlugin)]
impl MyPlugin for MyImpl {
    fn process(&self, input: String) -> String {
        format!("processed: {input}")
    }
}

fidius::fidius_plugin_registry!();
