//! Procedural macros of fidius. Use them through the `fidius` crate, which re-exports
//! them; the generated code refers to `::fidius`.
//!
//! Layout, one file per stage: `attr` parses attribute arguments, `ast` builds a
//! checked model of the interface trait, `types` classifies argument and return
//! types, `interface` and `client` generate the interface side, and
//! `plugin_impl` the plugin side.

mod ast;
mod attr;
mod client;
mod interface;
mod plugin_impl;
mod types;

use proc_macro::TokenStream;

/// Turns a trait into a fidius plugin interface. See the `fidius` crate docs.
#[proc_macro_attribute]
pub fn plugin_interface(args: TokenStream, item: TokenStream) -> TokenStream {
    interface::expand(args.into(), item.into()).into()
}

/// Registers an `impl Trait for Type` block as a fidius plugin. See the `fidius` crate
/// docs.
#[proc_macro_attribute]
pub fn plugin_impl(args: TokenStream, item: TokenStream) -> TokenStream {
    plugin_impl::expand(args.into(), item.into()).into()
}
