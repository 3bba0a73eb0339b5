//! Code generation for `#[plugin_interface]`: the trait, its `Interface` and
//! `Vtable` implementations on `dyn Trait`, the shims, and the typed client.
//!
//! Everything the plugin side needs hangs off `dyn Trait`, so a plugin crate that
//! imports only the trait can use `#[plugin_impl(Trait)]`.

use crate::ast::{FastPath, InterfaceDef, MethodDef, ReturnKind};
use crate::attr::{self, MetaPair};
use crate::{fallback, types, valid, Errors};
use proc_macro2::{Group, Spacing, Span, TokenStream, TokenTree};
use quote::{format_ident, quote};
use std::ffi::CString;
use syn::ItemTrait;

/// `#[plugin_interface(args)] item`: the interface, or its errors and the fallback.
pub fn interface(args: TokenStream, item: TokenStream) -> TokenStream {
    let item: ItemTrait = match syn::parse2(item) {
        Ok(item) => item,
        Err(mut e) => {
            e.combine(syn::Error::new(
                Span::call_site(),
                "#[plugin_interface] applies to a trait",
            ));
            return e.to_compile_error();
        }
    };
    let mut errors = Errors::default();
    let args = attr::interface_args(args, &mut errors);
    let def = InterfaceDef::from_trait(item, args, &mut errors);
    valid::check(&def, &mut errors);
    match errors.into_result() {
        Ok(()) => generate(&def),
        Err(e) => fallback::interface(&def, e),
    }
}

/// `tokens` with every path that starts `::fidius` made to start with `krate`
/// instead, when one is given (`crate = "..."`): generated code names fidius through
/// it. A `::fidius` that continues a path (`a::fidius`) is left alone.
pub fn rebase(tokens: TokenStream, krate: Option<&syn::Path>) -> TokenStream {
    fn walk(tokens: TokenStream, with: &TokenStream) -> TokenStream {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut out: Vec<TokenTree> = Vec::with_capacity(trees.len());
        let mut i = 0;
        while i < trees.len() {
            let starts_path = match out.last() {
                // `a::fidius` continues a path; after a keyword (`impl ::fidius`,
                // `&'static ::fidius`) a path starts.
                Some(TokenTree::Ident(prev)) => {
                    let lifetime = matches!(
                        out.iter().rev().nth(1),
                        Some(TokenTree::Punct(p)) if p.as_char() == '\''
                    );
                    lifetime || is_keyword_before_path(&prev.to_string())
                }
                _ => true,
            };
            if let (TokenTree::Punct(a), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(id))) =
                (&trees[i], trees.get(i + 1), trees.get(i + 2))
            {
                if starts_path
                    && a.as_char() == ':'
                    && a.spacing() == Spacing::Joint
                    && b.as_char() == ':'
                    && id == "fidius"
                {
                    out.extend(with.clone());
                    i += 3;
                    continue;
                }
            }
            out.push(match &trees[i] {
                TokenTree::Group(g) => {
                    let mut group = Group::new(g.delimiter(), walk(g.stream(), with));
                    group.set_span(g.span());
                    group.into()
                }
                other => other.clone(),
            });
            i += 1;
        }
        out.into_iter().collect()
    }
    match krate {
        Some(krate) => walk(tokens, &quote!(#krate)),
        None => tokens,
    }
}

/// A keyword after which `::fidius` starts a path rather than continuing one: any
/// keyword but the path segments `crate`, `self`, `super` and `Self`.
fn is_keyword_before_path(word: &str) -> bool {
    matches!(
        word,
        "as" | "async"
            | "await"
            | "break"
            | "const"
            | "continue"
            | "dyn"
            | "else"
            | "enum"
            | "extern"
            | "fn"
            | "for"
            | "if"
            | "impl"
            | "in"
            | "let"
            | "loop"
            | "match"
            | "mod"
            | "move"
            | "mut"
            | "pub"
            | "ref"
            | "return"
            | "static"
            | "struct"
            | "trait"
            | "type"
            | "unsafe"
            | "use"
            | "where"
            | "while"
            | "yield"
    )
}

pub fn c_str(s: &str) -> syn::LitCStr {
    syn::LitCStr::new(
        &CString::new(s).expect("names and signatures contain no NUL"),
        Span::call_site(),
    )
}

pub fn meta_entries(pairs: &[MetaPair]) -> TokenStream {
    let entries = pairs.iter().map(|p| {
        let k = c_str(&p.key.value());
        let v = c_str(&p.value.value());
        quote!(::fidius::__private::MetaEntry { key: #k.as_ptr(), value: #v.as_ptr() })
    });
    quote!(&[#(#entries),*])
}

fn flags(m: &MethodDef) -> TokenStream {
    let mut parts = vec![quote!(0u32)];
    if m.optional.is_some() {
        parts.push(quote!(::fidius::__private::METHOD_OPTIONAL));
    }
    if m.raw {
        parts.push(quote!(::fidius::__private::METHOD_RAW));
    }
    if matches!(m.ret, ReturnKind::Fallible(_)) {
        parts.push(quote!(::fidius::__private::METHOD_RESULT));
    }
    if matches!(m.ret, ReturnKind::Stream(_)) {
        parts.push(quote!(::fidius::__private::METHOD_STREAMING));
    }
    match m.fast_path {
        FastPath::None => {}
        FastPath::Scalar => parts.push(quote!(::fidius::__private::METHOD_DIRECT)),
        FastPath::Bytes => parts.push(quote!(::fidius::__private::METHOD_DIRECT_BYTES)),
        FastPath::Text => parts.push(quote!(::fidius::__private::METHOD_DIRECT_TEXT)),
    }
    quote!(#(#parts)|*)
}

fn generate(def: &InterfaceDef) -> TokenStream {
    let item = &def.item;
    let name = &item.ident;
    let name_str = name.to_string();
    let name_c = c_str(&name_str);
    let version = def.version;
    let buffer = def.buffer.ident();

    let specs = def.methods.iter().map(|m| {
        let n = m.ident.to_string();
        let sig = &m.signature;
        let flags = flags(m);
        quote!(::fidius::__private::MethodSpec { name: #n, signature: #sig, flags: #flags })
    });
    let required_sigs = def
        .methods
        .iter()
        .filter(|m| m.optional.is_none())
        .map(|m| &m.signature);
    let optional_names = def
        .methods
        .iter()
        .filter(|m| m.optional.is_some())
        .map(|m| m.ident.to_string());
    let descriptors = def.methods.iter().map(|m| {
        let n = c_str(&m.ident.to_string());
        let sig = c_str(&m.signature);
        let flags = flags(m);
        let (since, bit) = m.optional.map_or((0, u32::MAX), |o| (o.since, o.bit));
        let meta = meta_entries(&m.meta);
        let meta_count = m.meta.len() as u32;
        quote!(::fidius::__private::MethodDescriptor {
            name: #n.as_ptr(),
            signature: #sig.as_ptr(),
            flags: #flags,
            since: #since,
            optional_bit: #bit,
            metadata_count: #meta_count,
            metadata: {
                const META: &[::fidius::__private::MetaEntry] = #meta;
                META.as_ptr()
            },
        })
    });
    let trait_meta = meta_entries(&def.trait_meta);
    let python_methods = def.methods.iter().map(|m| {
        let n = m.ident.to_string();
        let raw = m.raw;
        let streaming = matches!(m.ret, ReturnKind::Stream(_));
        quote!(::fidius::python_descriptor::PythonMethodDescriptor { name: #n, raw: #raw, streaming: #streaming })
    });
    let wasm_methods = def.methods.iter().map(|m| {
        let n = m.ident.to_string();
        let raw = m.raw;
        let streaming = matches!(m.ret, ReturnKind::Stream(_));
        quote!(::fidius::wasm_descriptor::WasmMethodDescriptor { name: #n, kebab_name: ::fidius::__private::kebab_const!(#n), raw: #raw, streaming: #streaming })
    });

    let shim_idents: Vec<_> = def
        .methods
        .iter()
        .map(|m| format_ident!("__fidius_shim_{}", m.ident))
        .collect();
    let shims = def
        .methods
        .iter()
        .zip(&shim_idents)
        .map(|(m, shim)| shim_fn(name, m, shim, false));
    let direct_entries = def.methods.iter().map(|m| {
        if m.fast_path.unframed() {
            let f = format_ident!("__fidius_bytes_{}", m.ident);
            return quote!(::core::option::Option::Some(
                // SAFETY: only the type is erased; hosts transmute it back to MethodFn.
                unsafe {
                    ::core::mem::transmute::<::fidius::__private::MethodFn, ::fidius::__private::ErasedFn>(
                        <dyn #name>::#f::<__FidiusT> as ::fidius::__private::MethodFn,
                    )
                }
            ));
        }
        if m.fast_path != FastPath::Scalar {
            return quote!(::core::option::Option::None);
        }
        let f = format_ident!("__fidius_direct_{}", m.ident);
        let fn_ty = m.direct_fn_type();
        quote!(::core::option::Option::Some(
            // SAFETY: only the type is erased; hosts transmute the pointer back to
            // exactly this signature (the interface hash covers its types).
            unsafe {
                ::core::mem::transmute::<#fn_ty, ::fidius::__private::ErasedFn>(
                    <dyn #name>::#f::<__FidiusT> as #fn_ty,
                )
            }
        ))
    });
    let direct_fns = def
        .methods
        .iter()
        .filter(|m| m.fast_path == FastPath::Scalar)
        .map(|m| direct_fn(name, m));
    let bytes_fns = def
        .methods
        .iter()
        .filter(|m| m.fast_path.unframed())
        .map(|m| {
            let f = format_ident!("__fidius_bytes_{}", m.ident);
            shim_fn(name, m, &f, true)
        });
    let client = crate::client::generate(def);

    let generated = quote! {
        #[doc(hidden)]
        // SAFETY: generated from the trait definition above by #[plugin_interface].
        unsafe impl ::fidius::__private::Interface for dyn #name {
            const INFO: ::fidius::__private::InterfaceInfo = ::fidius::__private::InterfaceInfo {
                name: #name_str,
                hash: ::fidius::__private::interface_hash(&[#(#required_sigs),*]),
                version: #version,
                buffer: ::fidius::BufferStrategyKind::#buffer,
                methods: &[#(#specs),*],
                optional: &[#(#optional_names),*],
            };
            const NAME_C: &'static ::core::ffi::CStr = #name_c;
            const METHODS: &'static [::fidius::__private::MethodDescriptor] = &[#(#descriptors),*];
            const TRAIT_META: &'static [::fidius::__private::MetaEntry] = #trait_meta;
            const PYTHON: ::fidius::python_descriptor::PythonInterfaceDescriptor =
                ::fidius::python_descriptor::PythonInterfaceDescriptor {
                    interface_name: #name_str,
                    interface_hash: <dyn #name as ::fidius::__private::Interface>::INFO.hash,
                    methods: &[#(#python_methods),*],
                };
            const WASM: ::fidius::wasm_descriptor::WasmInterfaceDescriptor =
                ::fidius::wasm_descriptor::WasmInterfaceDescriptor {
                    interface_name: #name_str,
                    export_name: ::fidius::__private::kebab_const!(#name_str),
                    interface_hash: <dyn #name as ::fidius::__private::Interface>::INFO.hash,
                    methods: &[#(#wasm_methods),*],
                };
        }

        #[doc(hidden)]
        impl<__FidiusT: #name + ::fidius::__private::PluginInstance>
            ::fidius::__private::Vtable<__FidiusT> for dyn #name
        {
            const VTABLE: &'static [::fidius::__private::MethodFn] = &[
                #(<dyn #name>::#shim_idents::<__FidiusT> as ::fidius::__private::MethodFn),*
            ];
            const DIRECT: &'static [::core::option::Option<::fidius::__private::ErasedFn>] = &[
                #(#direct_entries),*
            ];
        }

        #[doc(hidden)]
        impl dyn #name {
            #(#shims)*
            #(#direct_fns)*
            #(#bytes_fns)*
        }

        #client
    };
    let generated = rebase(generated, def.krate.as_ref());
    quote!(#item #generated)
}

/// The scalar fast path of a method whose arguments and result are plain scalars.
fn direct_fn(trait_name: &syn::Ident, m: &MethodDef) -> TokenStream {
    let method = &m.ident;
    let f = format_ident!("__fidius_direct_{}", m.ident);
    let vars: Vec<_> = (0..m.args.len())
        .map(|i| format_ident!("__a{}", i))
        .collect();
    let tys = m.args.iter().map(|a| &a.ty);
    let ret = m.ret.ok_type();
    quote! {
        /// The direct entry of a scalar method.
        ///
        /// # Safety
        /// `__out` must be valid for writing the result and `__err` must point at a
        /// valid `CallOutput`, as the direct-entry contract says.
        #[doc(hidden)]
        #[allow(non_snake_case)]
        #[inline(never)]
        pub unsafe extern "C" fn #f<__FidiusT: #trait_name + ::fidius::__private::PluginInstance>(
            #(#vars: #tys,)*
            __out: *mut #ret,
            __err: *mut ::fidius::__private::CallOutput,
        ) -> i32 {
            // SAFETY: the host passes a result slot and an error output, as the direct
            // entry contract (which run_direct requires) says.
            unsafe {
                ::fidius::__private::run_direct(__out, __err, || {
                    <__FidiusT as #trait_name>::#method(
                        <__FidiusT as ::fidius::__private::PluginInstance>::instance(),
                        #(#vars),*
                    )
                })
            }
        }
    }
}

/// The `extern "C"` shim for one method: decode the argument tuple, call
/// `<T as Trait>::method` (bound by name), write the reply.
///
/// With `unframed`, the shim is the bytes entry of a `fn(Vec<u8>) -> Vec<u8>` method,
/// or the text entry of a `fn(String) -> String` method: the argument and result
/// travel as they are (UTF-8, for text), as for `#[wire(raw)]`.
fn shim_fn(
    trait_name: &syn::Ident,
    m: &MethodDef,
    shim: &syn::Ident,
    unframed: bool,
) -> TokenStream {
    let method = &m.ident;
    let vars: Vec<_> = (0..m.args.len())
        .map(|i| format_ident!("__a{}", i))
        .collect();
    let decode_tys = m.args.iter().map(|a| {
        if types::is_byte_vec(&a.ty) {
            quote!(::fidius::__private::BinVec)
        } else {
            let ty = &a.ty;
            quote!(#ty)
        }
    });
    let call_args = m.args.iter().zip(&vars).map(|(a, v)| {
        if types::is_byte_vec(&a.ty) && !(unframed && m.fast_path == FastPath::Text) {
            quote!(#v.0)
        } else {
            quote!(#v)
        }
    });
    let raw = m.raw || unframed;
    // On failure, the error names the method, the argument and its type.
    let sig = &m.signature;
    let arg_names = m.args.iter().map(|a| {
        let n = a.ident.to_string();
        let t = types::canonical(&a.ty);
        quote!((#n, #t))
    });
    let checks = m.args.iter().map(|a| {
        let ty = if types::is_byte_vec(&a.ty) {
            quote!(::fidius::__private::BinVec)
        } else {
            let ty = &a.ty;
            quote!(#ty)
        };
        quote!(::fidius::__private::check_arg::<#ty> as ::fidius::__private::ArgCheck)
    });
    let explain = quote! {
        ::fidius::__private::explain_args(#sig, &[#(#arg_names),*], &[#(#checks),*], __input, &e)
    };
    let decode = if unframed && m.fast_path == FastPath::Text {
        quote! {
            let __a0 = match ::fidius::__private::text_arg(#sig, __input) {
                ::core::result::Result::Ok(s) => s,
                ::core::result::Result::Err(e) => return __reply.serialization_error(&e),
            };
        }
    } else if raw {
        quote!(let __a0 = ::fidius::__private::BinVec(__input.to_vec());)
    } else if m.args.is_empty() {
        quote!()
    } else if m.fast_path == FastPath::Scalar && m.args.len() < 16 {
        // Plain scalars: read directly, without serde, when encoded the usual way
        // (ScalarArgs covers up to 15 arguments; 16, serde's limit, goes through serde).
        quote! {
            let (#(#vars,)*): (#(#decode_tys,)*) = match ::fidius::__private::decode_scalar_args(__input) {
                ::core::result::Result::Ok(v) => v,
                ::core::result::Result::Err(e) => return __reply.serialization_error(&#explain),
            };
        }
    } else {
        quote! {
            let (#(#vars,)*): (#(#decode_tys,)*) = match ::fidius::__private::decode_args(__input) {
                ::core::result::Result::Ok(v) => v,
                ::core::result::Result::Err(e) => return __reply.serialization_error(&#explain),
            };
        }
    };
    let reply = match (&m.ret, raw) {
        (_, true) if m.fast_path == FastPath::Text => {
            quote!(__reply.raw(::std::string::String::into_bytes(__ret)))
        }
        (_, true) => quote!(__reply.raw(__ret)),
        (ReturnKind::Unit, _) => quote!({
            let () = __ret;
            __reply.value(&())
        }),
        (ReturnKind::Value(t), _) if types::is_byte_vec(t) => {
            quote!(__reply.value(&::fidius::__private::AsBin(&__ret)))
        }
        (ReturnKind::Value(_), _) if m.fast_path == FastPath::Scalar => {
            quote!(__reply.scalar(__ret))
        }
        (ReturnKind::Value(_), _) => quote!(__reply.value(&__ret)),
        (ReturnKind::Fallible(t), _) if types::is_byte_vec(t) => {
            quote!(__reply.bytes_result(&__ret))
        }
        (ReturnKind::Fallible(_), _) => quote!(__reply.result(&__ret)),
        (ReturnKind::Stream(s), _) if types::is_byte_vec(&s.1) => {
            quote!(__reply.bytes_stream(__ret))
        }
        (ReturnKind::Stream(_), _) => quote!(__reply.stream(__ret)),
    };
    quote! {
        /// A method slot (or unframed entry) under the `MethodFn` contract.
        ///
        /// # Safety
        /// `__input` must point at `__input_len` readable bytes and `__out` at a valid
        /// `CallOutput` whose `ptr` is null or lends `cap` writable bytes.
        #[doc(hidden)]
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn #shim<__FidiusT: #trait_name + ::fidius::__private::PluginInstance>(
            __input: *const u8,
            __input_len: usize,
            __out: *mut ::fidius::__private::CallOutput,
        ) -> i32 {
            // SAFETY: the host calls this slot under the MethodFn contract, which is
            // exactly what run_method requires.
            unsafe {
                ::fidius::__private::run_method(
                    <dyn #trait_name as ::fidius::__private::Interface>::INFO.buffer,
                    __input,
                    __input_len,
                    __out,
                    |__input: &[u8], __reply: &mut ::fidius::__private::Reply<'_>| {
                        #decode
                        let __ret = <__FidiusT as #trait_name>::#method(
                            <__FidiusT as ::fidius::__private::PluginInstance>::instance(),
                            #(#call_args),*
                        );
                        #reply
                    },
                )
            }
        }
    }
}
