//! Demo plugin: reverses each word of a line, and misbehaves on request. On the line
//! `crash` it writes through a null pointer (a segmentation fault); on the line `hang`
//! it never returns. In-process, either would take the demo down or hold one of its
//! threads for good; the demo runs it isolated, in a process of its own.

use text_interface::{plugin_impl, PluginError, RiskyTransform};

pub struct Fragile;

#[plugin_impl(RiskyTransform)]
impl RiskyTransform for Fragile {
    fn transform(&self, line: String) -> Result<String, PluginError> {
        match line.trim() {
            // SAFETY: none, on purpose: this is the crash the demo contains.
            "crash" => unsafe {
                std::ptr::null_mut::<u8>().write_volatile(1);
                unreachable!()
            },
            "hang" => loop {
                std::hint::spin_loop();
            },
            "" => Err(PluginError::new("EMPTY", "nothing to transform")),
            line => Ok(line
                .split_whitespace()
                .map(|w| w.chars().rev().collect::<String>())
                .collect::<Vec<_>>()
                .join(" ")),
        }
    }
}

fidius::fidius_plugin_registry!();
