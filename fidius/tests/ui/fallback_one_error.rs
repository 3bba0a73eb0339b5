// One mistake in an interface is one error: the trait's client, its `Interface`
// impl and `#[plugin_impl]` on it still resolve, so nothing below is reported.
use fidius::{plugin_impl, plugin_interface, PluginCaller};

#[plugin_interface(version = 1)]
pub trait Counter: Send + Sync {
    fn add(&self, a: u64, b: u64) -> u64;
    fn bump(&mut self) -> u32;
}

pub struct MyCounter;

#[plugin_impl(Counter)]
impl Counter for MyCounter {
    fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }
    fn bump(&mut self) -> u32 {
        1
    }
}

pub fn use_it<C: PluginCaller>(caller: C) -> u64 {
    let client = CounterClient::new(caller).unwrap();
    let _ = CounterClient::<C>::interface();
    client.add(1, 2).unwrap() + u64::from(client.bump().unwrap())
}

fn main() {}
