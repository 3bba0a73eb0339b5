//! Code generation for `#[plugin_impl(Trait)]`: the instance, the descriptor, and its
//! registration. The trait's methods are bound by name through the shims the
//! interface generated; this macro only names the optional methods it defines.

use crate::attr::{self, Buffer};
use crate::expand::c_str;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned as _;
use syn::{ImplItem, ItemImpl, Path, Token, Type};

struct Args {
    trait_path: Path,
    buffer: Option<Buffer>,
    /// `state`: the type implements `fidius::PluginState` and carries its state
    /// across versions.
    state: bool,
    /// `crate = "..."`: the path generated code names fidius by.
    krate: Option<syn::Path>,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let trait_path: Path = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected the interface trait: `#[plugin_impl(MyTrait)]`",
            )
        })?;
        let mut buffer = None;
        let mut state = false;
        let mut krate = None;
        if input.parse::<Option<Token![,]>>()?.is_some() {
            // The bare flag `state`, before any `key = value`.
            let fork = input.fork();
            if fork.parse::<syn::Ident>().is_ok_and(|i| i == "state")
                && (fork.is_empty() || fork.peek(Token![,]))
            {
                input.parse::<syn::Ident>()?;
                input.parse::<Option<Token![,]>>()?;
                state = true;
            }
            for kv in attr::parse_key_values(input)? {
                if kv.key == "buffer" {
                    buffer = Some(attr::parse_buffer(&kv)?);
                } else if kv.key == "crate" {
                    krate = Some(attr::parse_crate(&kv)?);
                } else {
                    return Err(syn::Error::new_spanned(
                        &kv.key,
                        format!(
                            "unknown key `{}` in #[plugin_impl]; expected `state`, `buffer` or `crate`",
                            kv.key
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            trait_path,
            buffer,
            state,
            krate,
        })
    }
}

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut imp: ItemImpl = match syn::parse2(item.clone()) {
        Ok(imp) => imp,
        Err(e) => {
            let e = e.to_compile_error();
            return quote!(#item #e);
        }
    };
    match generate(args, &mut imp) {
        Ok(ts) => ts,
        Err(e) => {
            let e = e.to_compile_error();
            quote!(#imp #e)
        }
    }
}

fn generate(args: TokenStream, imp: &mut ItemImpl) -> syn::Result<TokenStream> {
    let args: Args = syn::parse2(args)?;
    let trait_path = args.trait_path.clone();
    let repeated = take_repeated_attrs(imp, &trait_path)?;
    let Some((_, impl_trait, _)) = &imp.trait_ else {
        return Err(syn::Error::new_spanned(
            imp.impl_token,
            "#[plugin_impl] applies to `impl Trait for Type`",
        ));
    };
    let last = |p: &Path| p.segments.last().map(|s| s.ident.clone());
    if last(impl_trait) != last(&args.trait_path) {
        return Err(syn::Error::new_spanned(
            impl_trait,
            "this impl is for a different trait than the one named in #[plugin_impl(...)]",
        ));
    }
    if !imp.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &imp.generics,
            "a plugin type cannot be generic: each plugin is one concrete type",
        ));
    }
    let self_ty = &imp.self_ty;
    let plugin_name = match &**self_ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
    .ok_or_else(|| syn::Error::new_spanned(self_ty, "a plugin type must be a named type"))?;
    let name_c = c_str(&plugin_name);
    let trait_path = &args.trait_path;
    let imp = &*imp;
    let implemented = imp.items.iter().filter_map(|i| match i {
        ImplItem::Fn(f) => Some(f.sig.ident.to_string()),
        _ => None,
    });
    let buffer_check = args.buffer.map(|b| {
        let b = b.ident();
        quote! {
            const _: () = ::fidius::__private::assert_buffer(
                <dyn #trait_path as ::fidius::__private::Interface>::INFO.buffer,
                ::fidius::BufferStrategyKind::#b,
            );
        }
    });

    // A plugin that carries state gets the descriptor with its state functions
    // (which needs `#self_ty: fidius::PluginState`, so a missing impl is a clear
    // error at the descriptor).
    let build = if args.state {
        quote!(descriptor_with_state)
    } else {
        quote!(descriptor)
    };

    let generated = quote! {
        #(#repeated)*

        impl ::fidius::__private::PluginInstance for #self_ty {
            fn instance() -> &'static Self {
                static INSTANCE: ::std::sync::OnceLock<#self_ty> = ::std::sync::OnceLock::new();
                // The borrow selects Default over the unit-struct fallback.
                #[allow(clippy::needless_borrow)]
                INSTANCE.get_or_init(|| {
                    #[allow(unused_imports)]
                    use ::fidius::__private::{ViaDefault as _, ViaUnit as _};
                    (&::fidius::__private::Ctor::<#self_ty>::new()).make()
                })
            }
        }

        const _: () = {
            #buffer_check
            static DESCRIPTOR: ::fidius::PluginDescriptor =
                ::fidius::__private::#build::<dyn #trait_path, #self_ty>(
                    #name_c,
                    &[#(#implemented),*],
                );
            ::fidius::inventory::submit! {
                ::fidius::__private::DescriptorRef(&DESCRIPTOR)
            }
        };
    };
    let generated = crate::expand::rebase(generated, args.krate.as_ref());
    Ok(quote!(#imp #generated))
}

/// Takes the interface attributes written again on the impl's methods
/// (`#[wire(raw)]`, `#[optional]`, `#[method_meta]`, as the trait has them), and
/// returns for each a compile-time check that it agrees with the trait, spanned at
/// the attribute: the trait's attributes decide, and one that disagrees is explained.
fn take_repeated_attrs(imp: &mut ItemImpl, trait_path: &Path) -> syn::Result<Vec<TokenStream>> {
    let info = quote!(<dyn #trait_path as ::fidius::__private::Interface>::INFO);
    let methods = quote!(<dyn #trait_path as ::fidius::__private::Interface>::METHODS);
    let mut checks = Vec::new();
    let mut errors = crate::Errors::default();
    for item in &mut imp.items {
        let ImplItem::Fn(f) = item else { continue };
        let name = f.sig.ident.to_string();
        f.attrs.retain(|a| {
            let span = a.span();
            let check = if a.path().is_ident("wire") {
                attr::parse_wire(a).map(|()| {
                    quote_spanned!(span=> ::fidius::__private::assert_impl_raw(&#info, #name))
                })
            } else if a.path().is_ident("optional") {
                let given = matches!(a.meta, syn::Meta::List(_));
                attr::parse_optional(a).map(|(since, _)| {
                    let since = if given {
                        quote!(::core::option::Option::Some(#since))
                    } else {
                        quote!(::core::option::Option::None)
                    };
                    quote_spanned!(span=> ::fidius::__private::assert_impl_optional(&#info, #methods, #name, #since))
                })
            } else if a.path().is_ident("method_meta") {
                let mut pair = Vec::new();
                attr::push_meta(&mut pair, a).map(|()| {
                    let key = c_str(&pair[0].key.value());
                    let value = c_str(&pair[0].value.value());
                    quote_spanned!(span=> ::fidius::__private::assert_impl_meta(&#info, #methods, #name, #key, #value))
                })
            } else {
                return true;
            };
            match check {
                Ok(check) => checks.push(quote_spanned!(span=> const _: () = #check;)),
                Err(e) => errors.push(e),
            }
            false
        });
    }
    errors.into_result().map(|()| checks)
}
