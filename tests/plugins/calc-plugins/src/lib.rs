//! Two plugins in one library: a unit struct and a `Default` type with state.

use calc_interface::{plugin_impl, Calculator, PluginError, Stats};
use std::sync::atomic::{AtomicU64, Ordering};

/// A unit struct that implements the optional `square`, listing its methods in a
/// different order than the trait.
pub struct BasicCalc;

#[plugin_impl(Calculator)]
impl Calculator for BasicCalc {
    fn sub(&self, a: i64, b: i64) -> i64 {
        a - b
    }
    fn square(&self, x: i64) -> i64 {
        x * x
    }
    fn stats(&self) -> Stats {
        Stats {
            calls: 0,
            name: "basic".into(),
        }
    }
    fn reverse_raw(&self, mut data: Vec<u8>) -> Vec<u8> {
        data.reverse();
        data
    }
    fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    fn boom(&self, msg: String) -> u32 {
        if !msg.is_empty() {
            panic!("{msg}");
        }
        7
    }
    fn divide(&self, a: i64, b: i64) -> Result<i64, PluginError> {
        if b == 0 {
            return Err(
                PluginError::new("DIV_ZERO", format!("cannot divide {a} by zero"))
                    .with_details("b was 0"),
            );
        }
        Ok(a / b)
    }
    fn reset(&self) {}
    fn concat(&self, a: String, b: String, sep: char) -> String {
        format!("{a}{sep}{b}")
    }
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

/// A `Default` plugin with state; leaves out the optional `square`.
#[derive(Default)]
pub struct CountingCalc {
    calls: AtomicU64,
}

impl CountingCalc {
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

#[plugin_impl(Calculator, buffer = PluginAllocated)]
impl Calculator for CountingCalc {
    fn add(&self, a: i64, b: i64) -> i64 {
        self.tick();
        a + b + 1000
    }
    fn concat(&self, a: String, b: String, sep: char) -> String {
        self.tick();
        format!("{b}{sep}{a}")
    }
    fn reset(&self) {
        self.calls.store(0, Ordering::Relaxed);
    }
    fn divide(&self, a: i64, b: i64) -> Result<i64, PluginError> {
        self.tick();
        a.checked_div(b)
            .ok_or_else(|| PluginError::new("DIV_ZERO", "counting calc refuses zero"))
    }
    fn boom(&self, _msg: String) -> u32 {
        self.tick();
        0
    }
    fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        self.tick();
        data
    }
    fn reverse_raw(&self, data: Vec<u8>) -> Vec<u8> {
        self.tick();
        data
    }
    fn stats(&self) -> Stats {
        Stats {
            calls: self.calls.load(Ordering::Relaxed),
            name: "counting".into(),
        }
    }
    fn sub(&self, a: i64, b: i64) -> i64 {
        self.tick();
        a - b - 1000
    }
}

fidius::fidius_plugin_registry!();
