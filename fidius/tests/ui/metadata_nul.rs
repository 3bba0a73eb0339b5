// Metadata ends up in C strings: no NUL inside.
#[fidius::plugin_interface(version = 1)]
pub trait Meta: Send + Sync {
    #[method_meta("k\0ey", "v")]
    fn f(&self) -> u32;
}
fn main() {}
