//! A second library implementing the same interface.

use calc_interface::{plugin_impl, Calculator, PluginError, Stats};

pub struct AltCalc;

#[plugin_impl(Calculator)]
impl Calculator for AltCalc {
    fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b).wrapping_mul(2)
    }
    fn concat(&self, a: String, b: String, _sep: char) -> String {
        a + &b
    }
    fn reset(&self) {}
    fn divide(&self, a: i64, b: i64) -> Result<i64, PluginError> {
        Ok(a.checked_div(b).unwrap_or(0))
    }
    fn boom(&self, _msg: String) -> u32 {
        1
    }
    fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    fn reverse_raw(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    fn stats(&self) -> Stats {
        Stats {
            calls: 0,
            name: "alt".into(),
        }
    }
    fn sub(&self, a: i64, b: i64) -> i64 {
        a - b
    }
}

fidius::fidius_plugin_registry!();
