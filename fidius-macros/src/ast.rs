//! The model of a `#[plugin_interface]` trait: what the generators read.
//!
//! The model is built even when the trait has mistakes (`valid` finds them), so the
//! fallback can still emit stubs under the real names.

use crate::attr::{self, Buffer, InterfaceArgs, MetaPair};
use crate::{types, Errors};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{
    parse_quote, FnArg, Ident, ItemTrait, Pat, ReturnType, Signature, TraitItem, TraitItemFn, Type,
};

pub struct InterfaceDef {
    /// The trait as it will be emitted: fidius attributes removed, default bodies added
    /// to optional methods, `Send + Sync` ensured.
    pub item: ItemTrait,
    pub version: u32,
    pub buffer: Buffer,
    pub methods: Vec<MethodDef>,
    pub trait_meta: Vec<MetaPair>,
    /// `crate = "..."`: the path generated code names fidius by, when not `::fidius`.
    pub krate: Option<syn::Path>,
}

pub struct ArgDef {
    /// The parameter name used in the generated client.
    pub ident: Ident,
    pub ty: Type,
}

pub enum ReturnKind {
    Unit,
    Value(Type),
    /// `Result<T, PluginError>`: holds `T`.
    Fallible(Type),
    /// `Stream<T>`: holds the type as written and `T`.
    Stream(Box<(Type, Type)>),
}

impl ReturnKind {
    /// The type a successful call decodes to.
    pub fn ok_type(&self) -> Type {
        match self {
            ReturnKind::Unit => parse_quote!(()),
            ReturnKind::Value(t) | ReturnKind::Fallible(t) => t.clone(),
            ReturnKind::Stream(s) => s.1.clone(),
        }
    }
}

pub struct MethodDef {
    pub ident: Ident,
    pub args: Vec<ArgDef>,
    pub ret: ReturnKind,
    /// Set for `#[optional]` methods.
    pub optional: Option<Optional>,
    pub raw: bool,
    /// The entry the method gets besides its wire slot, if any.
    pub fast_path: FastPath,
    pub meta: Vec<MetaPair>,
    /// Canonical signature, e.g. `process(String)->String`.
    pub signature: String,
    /// The signature as written, for the checks.
    pub sig: Signature,
}

/// What `#[optional(since = N)]` gives a method.
#[derive(Clone, Copy)]
pub struct Optional {
    /// The interface version that added the method.
    pub since: u32,
    /// Its capability bit: the optional methods are numbered in declaration order.
    pub bit: u32,
    /// Where `since` was written (the call site when it was not).
    pub span: Span,
}

/// The entry a method gets besides its wire slot: the same idea as the ABI's
/// `METHOD_DIRECT*` flags and `fidius_core::FastPath`, under the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastPath {
    /// Only the wire slot.
    None,
    /// Every argument and the result are plain scalars: a direct `extern "C"` entry
    /// taking them as they are (`METHOD_DIRECT`).
    Scalar,
    /// Exactly `fn(Vec<u8>) -> Vec<u8>` (not raw): an unframed bytes entry
    /// (`METHOD_DIRECT_BYTES`).
    Bytes,
    /// Exactly `fn(String) -> String`: an unframed UTF-8 entry (`METHOD_DIRECT_TEXT`).
    Text,
}

impl FastPath {
    fn of(raw: bool, args: &[ArgDef], ret: &ReturnKind) -> Self {
        let one_arg = |is: fn(&syn::Type) -> bool| {
            args.len() == 1 && is(&args[0].ty) && matches!(ret, ReturnKind::Value(t) if is(t))
        };
        if raw {
            FastPath::None
        } else if matches!(ret, ReturnKind::Value(t) if types::is_scalar(t))
            && args.iter().all(|a| types::is_scalar(&a.ty))
        {
            FastPath::Scalar
        } else if one_arg(types::is_byte_vec) {
            FastPath::Bytes
        } else if one_arg(types::is_string) {
            FastPath::Text
        } else {
            FastPath::None
        }
    }

    /// The method has an unframed entry (bytes or text) beside its slot.
    pub fn unframed(self) -> bool {
        matches!(self, FastPath::Bytes | FastPath::Text)
    }
}

impl InterfaceDef {
    /// Builds the model of `item`, taking the fidius attributes off it. Errors in
    /// attributes are pushed to `errors`; everything else is checked later, by
    /// `valid::check`, so the model is built even for a trait with mistakes.
    pub fn from_trait(mut item: ItemTrait, args: InterfaceArgs, errors: &mut Errors) -> Self {
        let trait_meta = attr::take_trait_meta(&mut item.attrs, errors);
        ensure_send_sync(&mut item);
        let mut methods = Vec::new();
        for trait_item in &mut item.items {
            if let TraitItem::Fn(f) = trait_item {
                let bit = methods
                    .iter()
                    .filter(|m: &&MethodDef| m.optional.is_some())
                    .count() as u32;
                methods.push(MethodDef::from_trait_fn(f, bit, errors));
            }
        }
        InterfaceDef {
            item,
            version: args.version,
            buffer: args.buffer,
            methods,
            trait_meta,
            krate: args.krate,
        }
    }
}

impl MethodDef {
    /// The signature of the method's direct entry:
    /// `unsafe extern "C" fn(A0, A1, ..., *mut R, *mut CallOutput) -> i32`.
    pub fn direct_fn_type(&self) -> TokenStream {
        let args = self.args.iter().map(|a| &a.ty);
        let ret = self.ret.ok_type();
        quote!(unsafe extern "C" fn(#(#args,)* *mut #ret, *mut ::fidius::__private::CallOutput) -> i32)
    }

    /// The model of one method; an optional one gets capability bit `bit` and, when it
    /// has none, a default body in the emitted trait.
    fn from_trait_fn(f: &mut TraitItemFn, bit: u32, errors: &mut Errors) -> Self {
        let attrs = attr::take_method_attrs(&mut f.attrs, errors);
        let sig = f.sig.clone();
        let args: Vec<ArgDef> = sig
            .inputs
            .iter()
            .skip(1)
            .enumerate()
            .filter_map(|(i, input)| match input {
                FnArg::Typed(pt) => Some(ArgDef {
                    ident: match &*pt.pat {
                        Pat::Ident(p) => p.ident.clone(),
                        _ => Ident::new(&format!("arg{i}"), Span::call_site()),
                    },
                    ty: (*pt.ty).clone(),
                }),
                FnArg::Receiver(_) => None,
            })
            .collect();
        let ret = match &sig.output {
            ReturnType::Default => ReturnKind::Unit,
            ReturnType::Type(_, ty) if types::is_unit(ty) => ReturnKind::Unit,
            ReturnType::Type(_, ty) => {
                if let Some((ok, _)) = types::result_parts(ty) {
                    ReturnKind::Fallible(ok.clone())
                } else if let Some(item) = types::stream_item(ty) {
                    ReturnKind::Stream(Box::new(((**ty).clone(), item.clone())))
                } else {
                    ReturnKind::Value((**ty).clone())
                }
            }
        };
        let optional = attrs
            .optional
            .map(|(since, span)| Optional { since, bit, span });
        if optional.is_some() && f.default.is_none() {
            let name = sig.ident.to_string();
            f.default = Some(parse_quote!({
                ::core::panic!("optional plugin method `{}` is not implemented", #name)
            }));
            f.attrs.push(parse_quote!(#[allow(unused_variables)]));
        }
        MethodDef {
            ident: sig.ident.clone(),
            signature: signature(&sig.ident, attrs.raw, &args, &ret),
            fast_path: FastPath::of(attrs.raw, &args, &ret),
            raw: attrs.raw,
            meta: attrs.meta,
            optional,
            args,
            ret,
            sig,
        }
    }
}

fn signature(name: &Ident, raw: bool, args: &[ArgDef], ret: &ReturnKind) -> String {
    let args: Vec<String> = args.iter().map(|a| types::canonical(&a.ty)).collect();
    let ret = match ret {
        ReturnKind::Unit => "()".to_string(),
        ReturnKind::Value(t) => types::canonical(t),
        ReturnKind::Fallible(t) => format!("Result<{},PluginError>", types::canonical(t)),
        ReturnKind::Stream(s) => types::canonical(&s.0),
    };
    format!(
        "{name}{}({})->{ret}",
        if raw { "[raw]" } else { "" },
        args.join(",")
    )
}

/// Adds `Send + Sync` supertraits when missing: one plugin instance serves every thread.
fn ensure_send_sync(item: &mut ItemTrait) {
    let has = |name: &str| {
        item.supertraits.iter().any(|b| {
            matches!(b, syn::TypeParamBound::Trait(t)
                if t.path.segments.last().is_some_and(|s| s.ident == name))
        })
    };
    let (send, sync) = (has("Send"), has("Sync"));
    if item.colon_token.is_none() {
        item.colon_token = Some(Default::default());
    }
    if !send {
        item.supertraits.push(parse_quote!(::core::marker::Send));
    }
    if !sync {
        item.supertraits.push(parse_quote!(::core::marker::Sync));
    }
}
