//! Demo plugin: upper-cases text. Edit VERSION or `transform`, run
//! `cargo build -p uppercase`, and the running demo swaps it in. It counts the lines
//! it transformed, and the count survives reloads (`PluginState`).

use std::sync::atomic::{AtomicU64, Ordering};
use text_interface::{plugin_impl, PluginError, PluginState, SavedState, Stream, TextTransform};

const VERSION: &str = "1.0";

#[derive(Default)]
pub struct Uppercase {
    seen: AtomicU64,
}

#[plugin_impl(TextTransform, state)]
impl TextTransform for Uppercase {
    fn describe(&self) -> String {
        format!("uppercase {VERSION}")
    }

    fn transform(&self, line: String) -> Result<String, PluginError> {
        if line.trim().is_empty() {
            return Err(PluginError::new("EMPTY", "nothing to transform"));
        }
        self.seen.fetch_add(1, Ordering::Relaxed);
        Ok(line.to_uppercase())
    }

    fn words(&self, line: String) -> Stream<String> {
        let words: Vec<String> = line.split_whitespace().map(str::to_uppercase).collect();
        Stream::from_iter(words)
    }

    fn word_count(&self, line: String) -> u64 {
        line.split_whitespace().count() as u64
    }

    fn lines_seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }
}

/// The count of lines goes from each version to the next.
impl PluginState for Uppercase {
    const STATE_VERSION: u32 = 1;
    type State = u64;

    fn save_state(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    fn restore_state(&self, saved: SavedState) -> Result<(), PluginError> {
        self.seen.store(saved.decode()?, Ordering::Relaxed);
        Ok(())
    }
}

fidius::fidius_plugin_registry!();
