// A mistake that keeps the trait from being a trait object (here `async`) is still
// one error: the client is there, and no `dyn Trait` is named.
#[fidius::plugin_interface(version = 1)]
pub trait Later: Send + Sync {
    async fn wait(&self) -> u32;
    fn now(&self) -> u32;
}

pub fn use_it<C: fidius::PluginCaller>(caller: C) -> u32 {
    let client = LaterClient::new(caller).unwrap();
    client.now().unwrap() + client.wait().unwrap()
}

fn main() {}
