// An interface attribute written again on the impl must agree with the trait's; each
// that does not is explained where it is written.
use fidius::{plugin_impl, plugin_interface};

#[plugin_interface(version = 1)]
pub trait Tools: Send + Sync {
    fn reverse(&self, data: Vec<u8>) -> Vec<u8>;
    #[method_meta("kind", "text")]
    fn shout(&self, s: String) -> String;
}

pub struct MyTools;

#[plugin_impl(Tools)]
impl Tools for MyTools {
    #[wire(raw)]
    fn reverse(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    #[optional]
    #[method_meta("kind", "bytes")]
    fn shout(&self, s: String) -> String {
        s
    }
}

fn main() {}
