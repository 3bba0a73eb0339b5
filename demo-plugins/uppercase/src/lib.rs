//! Demo plugin: upper-cases text. Edit VERSION or `transform`, run
//! `cargo build -p uppercase`, and the running demo swaps it in.

use text_interface::{plugin_impl, PluginError, Stream, TextTransform};

const VERSION: &str = "1.0";

pub struct Uppercase;

#[plugin_impl(TextTransform)]
impl TextTransform for Uppercase {
    fn describe(&self) -> String {
        format!("uppercase {VERSION}")
    }

    fn transform(&self, line: String) -> Result<String, PluginError> {
        if line.trim().is_empty() {
            return Err(PluginError::new("EMPTY", "nothing to transform"));
        }
        Ok(line.to_uppercase())
    }

    fn words(&self, line: String) -> Stream<String> {
        let words: Vec<String> = line.split_whitespace().map(str::to_uppercase).collect();
        Stream::from_iter(words)
    }

    fn word_count(&self, line: String) -> u64 {
        line.split_whitespace().count() as u64
    }
}

fidius::fidius_plugin_registry!();
