// A plugin type is one concrete type.
#[fidius::plugin_interface(version = 1)]
pub trait Answer: Send + Sync {
    fn answer(&self) -> u32;
}
pub struct G<T>(std::marker::PhantomData<T>);
#[fidius::plugin_impl(Answer)]
impl<T: Send + Sync + 'static> Answer for G<T> {
    fn answer(&self) -> u32 {
        1
    }
}
fn main() {}
