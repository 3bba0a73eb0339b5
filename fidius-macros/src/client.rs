//! Code generation for the typed `{Trait}Client`, generic over any `PluginCaller`.

use crate::ast::{FastPath, InterfaceDef, MethodDef, ReturnKind};
use crate::types;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

pub fn generate(def: &InterfaceDef) -> TokenStream {
    let methods = def
        .methods
        .iter()
        .enumerate()
        .map(|(index, m)| method(index, m, body(index, m)));
    wrap(def, methods, false)
}

/// The client of an interface with errors: every method is there, under its signature,
/// but unreachable (the crate does not compile), so uses of the client report nothing
/// further.
pub fn stub(def: &InterfaceDef) -> TokenStream {
    let methods = def
        .methods
        .iter()
        .enumerate()
        .map(|(index, m)| method(index, m, quote!(::core::unreachable!())));
    wrap(def, methods, true)
}

/// The client struct and its constructors around `methods`.
fn wrap(def: &InterfaceDef, methods: impl Iterator<Item = TokenStream>, stub: bool) -> TokenStream {
    let name = &def.item.ident;
    let vis = &def.item.vis;
    let client = format_ident!("{}Client", name);
    let doc = format!(
        "Typed client for [`{name}`] plugins, over any [`PluginCaller`](::fidius::PluginCaller): \
         a loaded `PluginHandle`, a hot-reloading handle, or a reference to either.\n\n\
         Each method mirrors the trait's and returns `Result<T, CallError>`; a method that \
         returns `Result<T, PluginError>` reports the plugin's error as `CallError::Plugin`."
    );

    // The stub names nothing of the trait's: the trait may not even be dyn compatible.
    let allow = stub.then(|| quote!(#[allow(unused_variables)]));
    let (new, interface) = if stub {
        (
            quote!(::core::unreachable!()),
            quote!(::core::unreachable!()),
        )
    } else {
        (
            quote! {
                ::fidius::__private::bind_client(
                    &caller,
                    &<dyn #name as ::fidius::__private::Interface>::INFO,
                )?;
                ::core::result::Result::Ok(Self { caller })
            },
            quote!(&<dyn #name as ::fidius::__private::Interface>::INFO),
        )
    };
    quote! {
        #[doc = #doc]
        #[derive(Debug, Clone)]
        #vis struct #client<C> {
            caller: C,
        }

        #allow
        impl<C: ::fidius::PluginCaller> #client<C> {
            /// Binds a client to `caller`, checking that the plugin implements this
            /// interface (name, hash, version, buffer strategy and method table).
            pub fn new(caller: C) -> ::core::result::Result<Self, ::fidius::CallError> {
                #new
            }

            /// The interface this client speaks.
            pub fn interface() -> &'static ::fidius::InterfaceInfo {
                #interface
            }

            /// The caller this client calls through.
            pub fn caller(&self) -> &C {
                &self.caller
            }

            /// Unwraps the caller.
            pub fn into_caller(self) -> C {
                self.caller
            }

            #(#methods)*
        }
    }
}

/// One client method: its documentation, signature and `body`, and for an optional
/// method its `has_` query.
fn method(index: usize, m: &MethodDef, body: TokenStream) -> TokenStream {
    let ident = &m.ident;
    // Byte arguments are only read, so any byte slice will do. (String arguments
    // stay `String`: `impl AsRef<str>` would break the common `"text".into()`.)
    let params = m.args.iter().map(|a| {
        let (i, t) = (&a.ident, &a.ty);
        if types::is_byte_vec(t) {
            quote!(#i: impl ::core::convert::AsRef<[u8]>)
        } else {
            quote!(#i: #t)
        }
    });
    let ok = m.ret.ok_type();
    let streaming = matches!(m.ret, ReturnKind::Stream(_));
    let ret_ty = if streaming {
        quote!(::fidius::PluginStream<#ok>)
    } else {
        quote!(#ok)
    };
    // Generics only in the fallback's stub: an interface method has none.
    let generics = &m.sig.generics;
    let where_clause = &m.sig.generics.where_clause;
    let method_doc = format!("Calls `{}` (method {index}: `{}`).", m.ident, m.signature);
    let has = m.optional.map(|opt| {
        let since = opt.since;
        let has_ident = format_ident!("has_{}", m.ident);
        let has_doc = format!(
            "True when the plugin implements the optional method `{}` (added in interface version {since}).",
            m.ident
        );
        quote! {
            #[doc = #has_doc]
            pub fn #has_ident(&self) -> bool {
                ::fidius::PluginCaller::has_method(&self.caller, #index)
            }
        }
    });
    quote! {
        #[doc = #method_doc]
        pub fn #ident #generics (&self, #(#params),*) -> ::core::result::Result<#ret_ty, ::fidius::CallError> #where_clause {
            #body
        }
        #has
    }
}

/// The body of the client method for method `index`: the fastest path the caller
/// offers, the wire format otherwise.
fn body(index: usize, m: &MethodDef) -> TokenStream {
    let ok = m.ret.ok_type();
    let streaming = matches!(m.ret, ReturnKind::Stream(_));
    // The argument tuple (byte arguments as `bin`) and the result decoder, shared by
    // every path below.
    let enc = m.args.iter().map(|a| {
        let i = &a.ident;
        if types::is_byte_vec(&a.ty) {
            quote!(::fidius::__private::AsBin(#i.as_ref()))
        } else {
            quote!(&#i)
        }
    });
    let args = quote!(&(#(#enc,)*));
    let decode = if types::is_byte_vec(&ok) {
        quote!(::fidius::__private::decode_bytes)
    } else {
        quote!(::fidius::__private::decode_result::<#ok>)
    };
    let wire = quote!(::fidius::__private::call_encoded(&self.caller, #index, #args, #decode));
    let body = if streaming {
        quote!(::fidius::__private::call_stream(&self.caller, #index, #args, #decode))
    } else if m.fast_path == FastPath::Text {
        // UTF-8 in and out, unframed, when the caller can; the wire format otherwise.
        let arg = &m.args[0].ident;
        quote! {{
            match ::fidius::PluginCaller::call_bytes(&self.caller, #index, #arg.as_bytes()) {
                ::core::option::Option::Some(result) => {
                    result.and_then(::fidius::__private::text_result)
                }
                ::core::option::Option::None => #wire,
            }
        }}
    } else if m.raw || m.fast_path == FastPath::Bytes {
        // Bytes in and out, unframed, when the caller can; otherwise the raw slot
        // (raw methods) or the wire format.
        let arg = &m.args[0].ident;
        let fallback = if m.raw {
            quote!(::fidius::PluginCaller::call_with(&self.caller, #index, __bytes, |b| {
                ::core::result::Result::Ok(b.to_vec())
            }))
        } else {
            wire
        };
        quote! {{
            let __bytes: &[u8] = #arg.as_ref();
            match ::fidius::PluginCaller::call_bytes(&self.caller, #index, __bytes) {
                ::core::option::Option::Some(result) => result,
                ::core::option::Option::None => #fallback,
            }
        }}
    } else if m.fast_path == FastPath::Scalar {
        let fn_ty = m.direct_fn_type();
        let scalars = m.args.iter().map(|a| &a.ident);
        quote! {{
            let mut __result = ::core::mem::MaybeUninit::<#ok>::uninit();
            let __direct = ::fidius::PluginCaller::call_direct(&self.caller, #index, |__f, __err| {
                // SAFETY: the entry has exactly this signature: the caller's
                // plugin was checked against this interface, whose hash covers
                // the argument and result types.
                unsafe {
                    let __f = ::core::mem::transmute::<::fidius::__private::ErasedFn, #fn_ty>(__f);
                    __f(#(#scalars,)* __result.as_mut_ptr(), __err)
                }
            });
            match __direct {
                // SAFETY: STATUS_OK means the entry wrote the result.
                ::core::option::Option::Some(::core::result::Result::Ok(())) => {
                    ::core::result::Result::Ok(unsafe { __result.assume_init() })
                }
                ::core::option::Option::Some(::core::result::Result::Err(e)) => {
                    ::core::result::Result::Err(e)
                }
                ::core::option::Option::None => #wire,
            }
        }}
    } else {
        wire
    };

    if m.optional.is_some() {
        let method_name = m.ident.to_string();
        quote!((#body).map_err(|e| ::fidius::__private::absent_as_not_implemented(e, #method_name)))
    } else {
        body
    }
}
