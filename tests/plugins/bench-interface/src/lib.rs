//! The interfaces the call benchmark measures: the same methods with each buffer
//! strategy.

pub use fidius::{plugin_impl, PluginError};
use serde::{Deserialize, Serialize};

/// A struct of the shapes real interfaces pass: a string, a number, a list of strings,
/// an optional float and a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub id: u64,
    pub tags: Vec<String>,
    pub score: Option<f64>,
    pub active: bool,
}

impl Record {
    /// What `update` returns for `self`: the same record, modified.
    pub fn updated(mut self) -> Record {
        self.id = self.id.wrapping_add(1);
        self.active = !self.active;
        self.score = self.score.map(|s| s * 2.0);
        self
    }
}

#[fidius::plugin_interface(version = 1, buffer = Arena)]
pub trait BenchArena: Send + Sync {
    fn add(&self, a: i64, b: i64) -> i64;
    fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    #[wire(raw)]
    fn echo_raw(&self, data: Vec<u8>) -> Vec<u8>;
    fn echo_str(&self, text: String) -> String;
    fn update(&self, record: Record) -> Record;
}

#[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
pub trait BenchAlloc: Send + Sync {
    fn add(&self, a: i64, b: i64) -> i64;
    fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    #[wire(raw)]
    fn echo_raw(&self, data: Vec<u8>) -> Vec<u8>;
    fn echo_str(&self, text: String) -> String;
    fn update(&self, record: Record) -> Record;
}
