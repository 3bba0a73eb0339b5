//! A checked model of a `#[plugin_interface]` trait.
//!
//! Parsing collects every error it can (each spanned at the offending token) and still
//! returns the cleaned trait, so one mistake does not cascade into many.

use crate::attr::{self, Buffer, MetaPair};
use crate::types;
use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::{parse_quote, FnArg, Ident, ItemTrait, Pat, ReturnType, TraitItem, Type};

/// The most optional methods an interface may have (one capability bit each).
pub const MAX_OPTIONAL: usize = 64;

pub struct InterfaceDef {
    /// The trait as it will be emitted: fidius attributes removed, default bodies added
    /// to optional methods, `Send + Sync` ensured.
    pub item: ItemTrait,
    pub version: u32,
    pub buffer: Buffer,
    pub methods: Vec<MethodDef>,
    pub trait_meta: Vec<MetaPair>,
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
    /// `(since, capability bit)` for optional methods.
    pub optional: Option<(u32, u32)>,
    pub raw: bool,
    /// The entry the method gets besides its wire slot, if any.
    pub fast_path: FastPath,
    pub meta: Vec<MetaPair>,
    /// Canonical signature, e.g. `process(String)->String`.
    pub signature: String,
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

/// Errors collected while parsing.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
    pub fn into_result(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}

pub fn parse(args: TokenStream, item: TokenStream) -> (Option<InterfaceDef>, ItemTrait, Errors) {
    let mut errors = Errors::default();
    let mut item: ItemTrait = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(e) => {
            let mut e = e;
            e.combine(syn::Error::new(
                Span::call_site(),
                "#[plugin_interface] applies to a trait",
            ));
            errors.push(e);
            // Nothing sensible to emit; the caller emits only the errors.
            return (
                None,
                parse_quote!(
                    trait __FidiusInvalid {}
                ),
                errors,
            );
        }
    };

    // Interface arguments.
    let mut version = None;
    // A version given but malformed has its own error; "needs a version" would only
    // repeat it.
    let mut version_given = false;
    let mut buffer = Buffer::PluginAllocated;
    match attr::parse_key_values.parse2(args) {
        Ok(kvs) => {
            for kv in &kvs {
                match kv.key.to_string().as_str() {
                    "version" => {
                        version_given = true;
                        match attr::parse_u32(kv) {
                            Ok(v) => version = Some(v),
                            Err(e) => errors.push(e),
                        }
                    }
                    "buffer" => match attr::parse_buffer(kv) {
                        Ok(b) => buffer = b,
                        Err(e) => errors.push(e),
                    },
                    other => errors.push(syn::Error::new_spanned(
                        &kv.key,
                        format!("unknown key `{other}` in #[plugin_interface]; expected `version` or `buffer`"),
                    )),
                }
            }
        }
        Err(e) => errors.push(e),
    }
    if version.is_none() && !version_given {
        errors.push(syn::Error::new(
            Span::call_site(),
            "#[plugin_interface] needs an interface version: `#[plugin_interface(version = 1)]`",
        ));
    }
    let version = version.unwrap_or(1);

    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &item.generics,
            "plugin interfaces cannot be generic: a vtable needs concrete types",
        ));
    }

    // Trait attributes.
    let mut trait_meta = Vec::new();
    item.attrs.retain(|a| {
        if a.path().is_ident("trait_meta") {
            if let Err(e) = attr::push_meta(&mut trait_meta, a) {
                errors.push(e);
            }
            false
        } else {
            true
        }
    });
    ensure_send_sync(&mut item);

    let mut methods = Vec::new();
    let mut optional_count = 0usize;
    for trait_item in &mut item.items {
        let TraitItem::Fn(f) = trait_item else {
            errors.push(syn::Error::new_spanned(
                &*trait_item,
                "plugin interfaces may only contain methods",
            ));
            continue;
        };
        let mut optional = None;
        let mut raw = false;
        let mut meta = Vec::new();
        let mut attr_errors = Vec::new();
        f.attrs.retain(|a| {
            let p = a.path();
            if p.is_ident("optional") {
                match attr::parse_optional(a) {
                    Ok(since) => optional = Some(since),
                    Err(e) => attr_errors.push(e),
                }
            } else if p.is_ident("method_meta") {
                if let Err(e) = attr::push_meta(&mut meta, a) {
                    attr_errors.push(e);
                }
            } else if p.is_ident("wire") {
                match attr::parse_wire(a) {
                    Ok(()) => raw = true,
                    Err(e) => attr_errors.push(e),
                }
            } else {
                return true;
            }
            false
        });
        attr_errors.into_iter().for_each(|e| errors.push(e));

        let sig = &f.sig;
        if let Some(a) = &sig.asyncness {
            errors.push(syn::Error::new_spanned(
                a,
                "plugin methods cannot be `async`",
            ));
        }
        if !sig.generics.params.is_empty() {
            errors.push(syn::Error::new_spanned(
                &sig.generics,
                "plugin methods cannot be generic: every slot needs concrete types",
            ));
        }
        if let Some(w) = &sig.generics.where_clause {
            errors.push(syn::Error::new_spanned(
                w,
                "plugin methods cannot have where clauses",
            ));
        }
        match sig.inputs.first() {
            Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
            Some(FnArg::Receiver(r)) if r.mutability.is_some() && r.reference.is_some() => {
                errors.push(syn::Error::new_spanned(
                    r.mutability,
                    "plugin methods take `&self`, not `&mut self`: one plugin instance serves every thread; use interior mutability for state",
                ))
            }
            Some(other) => errors.push(syn::Error::new_spanned(
                other,
                "plugin methods take `&self` as their first argument",
            )),
            None => errors.push(syn::Error::new_spanned(
                &sig.ident,
                "plugin methods take `&self` as their first argument",
            )),
        }

        let mut args = Vec::new();
        for (i, input) in sig.inputs.iter().skip(1).enumerate() {
            let FnArg::Typed(pt) = input else { continue };
            let ident = match &*pt.pat {
                Pat::Ident(p) => p.ident.clone(),
                _ => Ident::new(&format!("arg{i}"), Span::call_site()),
            };
            if let Type::Reference(r) = &*pt.ty {
                errors.push(syn::Error::new_spanned(
                    r,
                    "plugin method arguments must be owned types (they are decoded on the plugin side)",
                ));
            }
            args.push(ArgDef {
                ident,
                ty: (*pt.ty).clone(),
            });
        }

        let ret = match &sig.output {
            ReturnType::Default => ReturnKind::Unit,
            ReturnType::Type(_, ty) if types::is_unit(ty) => ReturnKind::Unit,
            ReturnType::Type(_, ty) => {
                if let Some((ok, err)) = types::result_parts(ty) {
                    if !types::is_plugin_error(err) {
                        errors.push(syn::Error::new_spanned(
                            err,
                            "a fallible plugin method returns `Result<T, PluginError>`",
                        ));
                    }
                    ReturnKind::Fallible(ok.clone())
                } else if let Some(item) = types::stream_item(ty) {
                    ReturnKind::Stream(Box::new(((**ty).clone(), item.clone())))
                } else {
                    ReturnKind::Value((**ty).clone())
                }
            }
        };

        if raw {
            let ok = args.len() == 1
                && types::is_byte_vec(&args[0].ty)
                && matches!(&ret, ReturnKind::Value(t) if types::is_byte_vec(t));
            if !ok {
                errors.push(syn::Error::new_spanned(
                    &sig.ident,
                    "#[wire(raw)] methods take one `Vec<u8>` and return `Vec<u8>`",
                ));
            }
        }

        let optional = match optional {
            Some((since, span)) => {
                if since > version {
                    errors.push(syn::Error::new(
                        span,
                        format!("`since = {since}` is later than the interface version {version}"),
                    ));
                }
                optional_count += 1;
                if optional_count > MAX_OPTIONAL {
                    errors.push(syn::Error::new_spanned(
                        &sig.ident,
                        format!("an interface may have at most {MAX_OPTIONAL} optional methods (one capability bit each)"),
                    ));
                }
                if f.default.is_none() {
                    let name = sig.ident.to_string();
                    f.default = Some(parse_quote!({
                        ::core::panic!("optional plugin method `{}` is not implemented", #name)
                    }));
                    f.attrs.push(parse_quote!(#[allow(unused_variables)]));
                }
                Some((since, (optional_count - 1) as u32))
            }
            None => None,
        };

        let signature = signature(&sig.ident, raw, &args, &ret);
        let fast_path = FastPath::of(raw, &args, &ret);
        methods.push(MethodDef {
            fast_path,
            ident: sig.ident.clone(),
            args,
            ret,
            optional,
            raw,
            meta,
            signature,
        });
    }

    let def = InterfaceDef {
        item: item.clone(),
        version,
        buffer,
        methods,
        trait_meta,
    };
    (Some(def), item, errors)
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
