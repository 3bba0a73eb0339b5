// Interface attributes written again on the impl, as upstream fidius users write them,
// are accepted when they agree with the trait.
use fidius::{plugin_impl, plugin_interface};

#[plugin_interface(version = 2)]
pub trait Tools: Send + Sync {
    #[wire(raw)]
    #[method_meta("kind", "bytes")]
    fn reverse(&self, data: Vec<u8>) -> Vec<u8>;
    #[optional(since = 2)]
    fn shout(&self, s: String) -> String;
    #[optional]
    fn whisper(&self, s: String) -> String;
}

pub struct MyTools;

#[plugin_impl(Tools)]
impl Tools for MyTools {
    #[wire(raw)]
    #[method_meta("kind", "bytes")]
    fn reverse(&self, mut data: Vec<u8>) -> Vec<u8> {
        data.reverse();
        data
    }
    #[optional(since = 2)]
    fn shout(&self, s: String) -> String {
        s.to_uppercase()
    }
    #[optional]
    fn whisper(&self, s: String) -> String {
        s.to_lowercase()
    }
}

fn main() {}
