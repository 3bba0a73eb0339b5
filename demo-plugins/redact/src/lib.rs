//! Demo plugin: replaces every digit with `#`. It does not count words (the optional
//! method is left out).

use text_interface::{plugin_impl, PluginError, Stream, TextTransform};

const VERSION: &str = "1.0";

pub struct Redact;

fn redact(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

#[plugin_impl(TextTransform)]
impl TextTransform for Redact {
    fn describe(&self) -> String {
        format!("redact {VERSION}")
    }

    fn transform(&self, line: String) -> Result<String, PluginError> {
        if line.trim().is_empty() {
            return Err(PluginError::new("EMPTY", "nothing to transform"));
        }
        Ok(redact(&line))
    }

    fn words(&self, line: String) -> Stream<String> {
        let words: Vec<String> = line.split_whitespace().map(redact).collect();
        Stream::from_iter(words)
    }
}

fidius::fidius_plugin_registry!();
