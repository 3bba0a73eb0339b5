use bytes_interface::{plugin_impl, Blobs, PluginError};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct BlobStore {
    calls: AtomicU64,
}

impl BlobStore {
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[plugin_impl(Blobs, buffer = Arena)]
impl Blobs for BlobStore {
    fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        self.tick();
        data
    }
    fn triple(&self, data: Vec<u8>) -> Vec<u8> {
        self.tick();
        data.repeat(3)
    }
    fn make(&self, n: u64, fill: u8) -> Vec<u8> {
        self.tick();
        vec![fill; n as usize]
    }
    fn text(&self, n: u64) -> String {
        self.tick();
        "x".repeat(n as usize)
    }
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
    fn raw_make(&self, n_le: Vec<u8>) -> Vec<u8> {
        self.tick();
        let n = u64::from_le_bytes(n_le.try_into().unwrap_or([0; 8]));
        vec![0xab; n as usize]
    }
    fn div(&self, a: u32, b: u32) -> u32 {
        self.tick();
        if b == 0 {
            panic!("div: {a} / 0");
        }
        a / b
    }
    fn widen(&self, data: Vec<u8>) -> Vec<u16> {
        self.tick();
        data.into_iter().map(u16::from).collect()
    }
    fn fail(&self, n: u64) -> Result<Vec<u8>, PluginError> {
        self.tick();
        if n == 0 {
            Err(PluginError::new("ZERO", "n must not be 0"))
        } else {
            Ok(vec![1; n as usize])
        }
    }
}

fidius::fidius_plugin_registry!();
