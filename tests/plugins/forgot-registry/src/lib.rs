//! The README's plugin, built without `fidius::fidius_plugin_registry!()`: a cdylib a
//! host cannot find any plugin in. The host must say what is missing.

use my_interface::{plugin_impl, MyPlugin};

pub struct MyImpl;

#[plugin_impl(MyPlugin)]
impl MyPlugin for MyImpl {
    fn process(&self, input: String) -> String {
        format!("processed: {input}")
    }
}
