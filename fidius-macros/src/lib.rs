//! Procedural macros of fidius. Use them through the `fidius` crate, which re-exports
//! them; the generated code refers to `::fidius`.
//!
//! `#[plugin_interface]` runs in stages, one file each:
//!
//! | file | stage |
//! |---|---|
//! | `attr` | reads the attributes: the macro's arguments and the fidius attributes on the trait and its methods |
//! | `ast` | builds the model of the interface: its methods, their arguments, return kinds and fast paths |
//! | `types` | classifies types (scalar, bytes, `Result`, `Stream`) and spells them canonically |
//! | `valid` | checks the model against the rules of an interface |
//! | `expand` | generates the interface: the trait, its `Interface` and `Vtable` impls, the shims |
//! | `client` | generates the typed `{Trait}Client` |
//! | `fallback` | what is emitted when the trait has errors: the errors, plus stubs so that they do not cascade |
//!
//! `plugin_impl` is the whole of `#[plugin_impl]`: it reads its arguments and emits the
//! plugin's instance and descriptor, binding the methods through the shims `expand`
//! generated.

mod ast;
mod attr;
mod client;
mod expand;
mod fallback;
mod plugin_impl;
mod types;
mod valid;

use proc_macro::TokenStream;

/// Turns a trait into a fidius plugin interface. See the `fidius` crate docs.
#[proc_macro_attribute]
pub fn plugin_interface(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::interface(args.into(), item.into()).into()
}

/// Registers an `impl Trait for Type` block as a fidius plugin. See the `fidius` crate
/// docs.
#[proc_macro_attribute]
pub fn plugin_impl(args: TokenStream, item: TokenStream) -> TokenStream {
    plugin_impl::expand(args.into(), item.into()).into()
}

/// The errors found so far, each spanned where it points. Every stage pushes into one
/// collection so that a user sees all their mistakes at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn into_result(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}
