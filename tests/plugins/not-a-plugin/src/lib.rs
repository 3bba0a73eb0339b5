//! A shared library that is not a fidius plugin: it exports no registry.

#[unsafe(no_mangle)]
pub extern "C" fn not_a_plugin_answer() -> i32 {
    42
}
