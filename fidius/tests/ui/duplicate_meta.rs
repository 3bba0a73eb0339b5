#[fidius::plugin_interface(version = 1)]
#[trait_meta("team", "a")]
pub trait Meta: Send + Sync {
    #[method_meta("cost", "low")]
    #[method_meta("cost", "high")]
    fn f(&self) -> u32;
}

fn main() {}
