//! The plugins the call benchmark measures, and the bare baseline it compares with.

use bench_interface::{plugin_impl, BenchAlloc, BenchArena, Record};

pub struct ArenaBench;

#[plugin_impl(BenchArena)]
impl BenchArena for ArenaBench {
    fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }
    fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    fn echo_raw(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    fn echo_str(&self, text: String) -> String {
        text
    }
    fn update(&self, record: Record) -> Record {
        record.updated()
    }
}

pub struct AllocBench;

#[plugin_impl(BenchAlloc)]
impl BenchAlloc for AllocBench {
    fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }
    fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    fn echo_raw(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    fn echo_str(&self, text: String) -> String {
        text
    }
    fn update(&self, record: Record) -> Record {
        record.updated()
    }
}

/// The baseline: a bare `extern "C"` function, called through a function pointer.
#[unsafe(no_mangle)]
pub extern "C" fn bench_bare_add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}

fidius::fidius_plugin_registry!();

/// With feature `shared-alloc`, the allocator a host using `SharedAllocator` too can
/// take results from without copying them.
#[cfg(feature = "shared-alloc")]
#[global_allocator]
static ALLOCATOR: fidius::SharedAllocator = fidius::SharedAllocator;
