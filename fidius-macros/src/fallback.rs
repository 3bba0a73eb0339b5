//! What `#[plugin_interface]` emits for a trait with mistakes, after thiserror's
//! fallback: the errors, the trait itself, and stubs of everything generated from it
//! (its `Interface` and `Vtable` impls and its client) under their real names. The
//! crate does not compile either way; the stubs only keep each mistake from
//! reappearing as more errors wherever the trait, its client or `#[plugin_impl]` is
//! used (unmet `Interface` and `Vtable` bounds, unknown client methods in an IDE).
//! `tests/ui/fallback_*.rs` show one mistake staying one error.

use crate::ast::InterfaceDef;
use proc_macro2::TokenStream;
use quote::quote;
use syn::{FnArg, ItemTrait, TraitItem};

pub fn interface(def: &InterfaceDef, errors: syn::Error) -> TokenStream {
    let item = &def.item;
    let name = &item.ident;
    let name_str = name.to_string();
    let version = def.version;
    let buffer = def.buffer.ident();
    let errors = errors.to_compile_error();
    let client = crate::client::stub(def);
    // `impl ... for dyn Trait` would only add errors when the trait cannot be a trait
    // object; those mistakes are among the errors already.
    let client = crate::expand::rebase(client, def.krate.as_ref());
    if !dyn_compatible(item) {
        return quote!(#errors #item #client);
    }
    let stubs = quote! {
        #[doc(hidden)]
        // SAFETY: never used: the crate does not compile (the errors above).
        unsafe impl ::fidius::__private::Interface for dyn #name {
            const INFO: ::fidius::__private::InterfaceInfo = ::fidius::__private::InterfaceInfo {
                name: #name_str,
                hash: 0,
                version: #version,
                buffer: ::fidius::BufferStrategyKind::#buffer,
                methods: &[],
                optional: &[],
            };
            const NAME_C: &'static ::core::ffi::CStr = c"";
            const METHODS: &'static [::fidius::__private::MethodDescriptor] = &[];
            const TRAIT_META: &'static [::fidius::__private::MetaEntry] = &[];
            const PYTHON: ::fidius::python_descriptor::PythonInterfaceDescriptor =
                ::fidius::python_descriptor::PythonInterfaceDescriptor {
                    interface_name: #name_str,
                    interface_hash: 0,
                    methods: &[],
                };
            const WASM: ::fidius::wasm_descriptor::WasmInterfaceDescriptor =
                ::fidius::wasm_descriptor::WasmInterfaceDescriptor {
                    interface_name: #name_str,
                    export_name: ::fidius::__private::kebab_const!(#name_str),
                    interface_hash: 0,
                    methods: &[],
                };
        }

        #[doc(hidden)]
        impl<__FidiusT: ::fidius::__private::PluginInstance> ::fidius::__private::Vtable<__FidiusT>
            for dyn #name
        {
            const VTABLE: &'static [::fidius::__private::MethodFn] = &[];
            const DIRECT: &'static [::core::option::Option<::fidius::__private::ErasedFn>] = &[];
        }
    };
    let stubs = crate::expand::rebase(stubs, def.krate.as_ref());
    quote!(#errors #item #stubs #client)
}

/// The trait can be a trait object: it is not generic, and it has only methods, each
/// taking `self` by reference, none generic or `async`. (The rules the checks in
/// `valid` enforce, and which Rust requires of `dyn Trait`.)
fn dyn_compatible(item: &ItemTrait) -> bool {
    item.generics.params.is_empty() && item.items.iter().all(|i| match i {
        TraitItem::Fn(f) => {
            f.sig.generics.params.is_empty()
                && f.sig.asyncness.is_none()
                && matches!(f.sig.inputs.first(), Some(FnArg::Receiver(r)) if r.reference.is_some())
        }
        _ => false,
    })
}
