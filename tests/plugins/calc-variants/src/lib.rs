//! Plugins built against other versions and shapes of the `Calculator` interface, and
//! one for another interface: each one exercises a different load-time check.
//!
//! Every module declares its own `Calculator`, as a separately compiled interface
//! crate of that version would.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    pub calls: u64,
    pub name: String,
}

/// The required methods every `Calculator` version shares.
macro_rules! common_methods {
    () => {
        fn add(&self, a: i64, b: i64) -> i64 {
            a + b + 1
        }
        fn concat(&self, a: String, b: String, sep: char) -> String {
            format!("{a}{sep}{b}")
        }
        fn reset(&self) {}
        fn divide(&self, a: i64, b: i64) -> Result<i64, fidius::PluginError> {
            Ok(a / b)
        }
        fn boom(&self, _msg: String) -> u32 {
            0
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
                name: "variant".into(),
            }
        }
        fn sub(&self, a: i64, b: i64) -> i64 {
            a - b
        }
    };
}

/// Interface version 1: before `square` existed.
pub mod v1 {
    use super::Stats;
    use fidius::PluginError;

    #[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
    pub trait Calculator: Send + Sync {
        fn add(&self, a: i64, b: i64) -> i64;
        fn concat(&self, a: String, b: String, sep: char) -> String;
        fn reset(&self);
        fn divide(&self, a: i64, b: i64) -> Result<i64, PluginError>;
        fn boom(&self, msg: String) -> u32;
        fn echo(&self, data: Vec<u8>) -> Vec<u8>;
        #[wire(raw)]
        fn reverse_raw(&self, data: Vec<u8>) -> Vec<u8>;
        fn stats(&self) -> Stats;
        fn sub(&self, a: i64, b: i64) -> i64;
    }

    pub struct OldCalc;

    #[fidius::plugin_impl(Calculator)]
    impl Calculator for OldCalc {
        common_methods!();
    }
}

/// Same methods and version as the host's, but the Arena buffer strategy.
pub mod arena {
    use super::Stats;
    use fidius::PluginError;

    #[fidius::plugin_interface(version = 2, buffer = Arena)]
    pub trait Calculator: Send + Sync {
        fn add(&self, a: i64, b: i64) -> i64;
        fn concat(&self, a: String, b: String, sep: char) -> String;
        fn reset(&self);
        fn divide(&self, a: i64, b: i64) -> Result<i64, PluginError>;
        fn boom(&self, msg: String) -> u32;
        fn echo(&self, data: Vec<u8>) -> Vec<u8>;
        #[wire(raw)]
        fn reverse_raw(&self, data: Vec<u8>) -> Vec<u8>;
        fn stats(&self) -> Stats;
        fn sub(&self, a: i64, b: i64) -> i64;
        #[optional(since = 2)]
        fn square(&self, x: i64) -> i64;
    }

    pub struct ArenaCalc;

    #[fidius::plugin_impl(Calculator, buffer = Arena)]
    impl Calculator for ArenaCalc {
        common_methods!();
    }
}

/// Interface version 3: newer than the host's.
pub mod v3 {
    use super::Stats;
    use fidius::PluginError;

    #[fidius::plugin_interface(version = 3, buffer = PluginAllocated)]
    pub trait Calculator: Send + Sync {
        fn add(&self, a: i64, b: i64) -> i64;
        fn concat(&self, a: String, b: String, sep: char) -> String;
        fn reset(&self);
        fn divide(&self, a: i64, b: i64) -> Result<i64, PluginError>;
        fn boom(&self, msg: String) -> u32;
        fn echo(&self, data: Vec<u8>) -> Vec<u8>;
        #[wire(raw)]
        fn reverse_raw(&self, data: Vec<u8>) -> Vec<u8>;
        fn stats(&self) -> Stats;
        fn sub(&self, a: i64, b: i64) -> i64;
        #[optional(since = 2)]
        fn square(&self, x: i64) -> i64;
        #[optional(since = 3)]
        fn cube(&self, x: i64) -> i64;
    }

    pub struct FutureCalc;

    #[fidius::plugin_impl(Calculator)]
    impl Calculator for FutureCalc {
        common_methods!();
        fn cube(&self, x: i64) -> i64 {
            x * x * x
        }
    }
}

/// Version 2 whose optional `square` has another signature.
pub mod changed {
    use super::Stats;
    use fidius::PluginError;

    #[fidius::plugin_interface(version = 2, buffer = PluginAllocated)]
    pub trait Calculator: Send + Sync {
        fn add(&self, a: i64, b: i64) -> i64;
        fn concat(&self, a: String, b: String, sep: char) -> String;
        fn reset(&self);
        fn divide(&self, a: i64, b: i64) -> Result<i64, PluginError>;
        fn boom(&self, msg: String) -> u32;
        fn echo(&self, data: Vec<u8>) -> Vec<u8>;
        #[wire(raw)]
        fn reverse_raw(&self, data: Vec<u8>) -> Vec<u8>;
        fn stats(&self) -> Stats;
        fn sub(&self, a: i64, b: i64) -> i64;
        #[optional(since = 2)]
        fn square(&self, x: i32) -> i32;
    }

    pub struct ChangedCalc;

    #[fidius::plugin_impl(Calculator)]
    impl Calculator for ChangedCalc {
        common_methods!();
        fn square(&self, x: i32) -> i32 {
            x * x
        }
    }
}

/// A required method changed type: another interface hash.
pub mod broken {
    use super::Stats;
    use fidius::PluginError;

    #[fidius::plugin_interface(version = 2, buffer = PluginAllocated)]
    pub trait Calculator: Send + Sync {
        fn add(&self, a: i32, b: i32) -> i32;
        fn concat(&self, a: String, b: String, sep: char) -> String;
        fn reset(&self);
        fn divide(&self, a: i64, b: i64) -> Result<i64, PluginError>;
        fn boom(&self, msg: String) -> u32;
        fn echo(&self, data: Vec<u8>) -> Vec<u8>;
        #[wire(raw)]
        fn reverse_raw(&self, data: Vec<u8>) -> Vec<u8>;
        fn stats(&self) -> Stats;
        fn sub(&self, a: i64, b: i64) -> i64;
    }

    pub struct BrokenCalc;

    #[fidius::plugin_impl(Calculator)]
    impl Calculator for BrokenCalc {
        fn add(&self, a: i32, b: i32) -> i32 {
            a + b
        }
        fn concat(&self, a: String, b: String, sep: char) -> String {
            format!("{a}{sep}{b}")
        }
        fn reset(&self) {}
        fn divide(&self, a: i64, b: i64) -> Result<i64, PluginError> {
            Ok(a / b)
        }
        fn boom(&self, _msg: String) -> u32 {
            0
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
                name: "broken".into(),
            }
        }
        fn sub(&self, a: i64, b: i64) -> i64 {
            a - b
        }
    }
}

/// Another interface altogether.
pub mod greeter {
    #[fidius::plugin_interface(version = 1)]
    pub trait Greeter: Send + Sync {
        fn greet(&self, name: String) -> String;
    }

    pub struct HelloGreeter;

    #[fidius::plugin_impl(Greeter)]
    impl Greeter for HelloGreeter {
        fn greet(&self, name: String) -> String {
            format!("hello, {name}")
        }
    }
}

fidius::fidius_plugin_registry!();
