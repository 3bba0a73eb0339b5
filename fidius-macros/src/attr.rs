//! Reading attributes: the arguments of `#[plugin_interface(...)]`, the fidius
//! attributes taken off the trait and its methods (`#[trait_meta]`, `#[optional]`,
//! `#[method_meta]`, `#[wire]`), and the pieces they are made of (`key = value`
//! lists, `("k", "v")` metadata pairs).
//!
//! Errors are collected, not returned: a malformed attribute is reported and the
//! rest is still read.

use crate::Errors;
use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitStr, Token};

/// The arguments of `#[plugin_interface(version = N, buffer = ..., crate = "...")]`.
pub struct InterfaceArgs {
    /// 1 when missing or malformed (the error is reported).
    pub version: u32,
    pub buffer: Buffer,
    /// `crate = "path"`: where the generated code finds fidius, when not at `::fidius`.
    pub krate: Option<syn::Path>,
}

/// Reads the arguments of `#[plugin_interface(...)]`.
pub fn interface_args(args: TokenStream, errors: &mut Errors) -> InterfaceArgs {
    let mut version = None;
    // A version given but malformed has its own error; "needs a version" would only
    // repeat it.
    let mut version_given = false;
    let mut buffer = Buffer::PluginAllocated;
    let mut krate = None;
    match parse_key_values.parse2(args) {
        Ok(kvs) => {
            for kv in &kvs {
                match kv.key.to_string().as_str() {
                    "version" => {
                        version_given = true;
                        match parse_u32(kv) {
                            Ok(v) => version = Some(v),
                            Err(e) => errors.push(e),
                        }
                    }
                    "buffer" => match parse_buffer(kv) {
                        Ok(b) => buffer = b,
                        Err(e) => errors.push(e),
                    },
                    "crate" => match parse_crate(kv) {
                        Ok(path) => krate = Some(path),
                        Err(e) => errors.push(e),
                    },
                    other => errors.push(syn::Error::new_spanned(
                        &kv.key,
                        format!("unknown key `{other}` in #[plugin_interface]; expected `version`, `buffer` or `crate`"),
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
    InterfaceArgs {
        version: version.unwrap_or(1),
        buffer,
        krate,
    }
}

/// Reads `crate = "path::to::fidius"`: the path under which the generated code finds
/// fidius, for crates that re-export it under another name.
pub fn parse_crate(kv: &KeyValue) -> syn::Result<syn::Path> {
    let value = require_value(kv)?;
    let wrong = || {
        syn::Error::new_spanned(
            value,
            "`crate` takes the path to fidius as a string, e.g. `crate = \"my_sdk::fidius\"`",
        )
    };
    let syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Str(text),
        ..
    }) = value
    else {
        return Err(wrong());
    };
    text.parse::<syn::Path>().map_err(|_| wrong())
}

/// Takes the `#[trait_meta("k", "v")]` attributes off a trait.
pub fn take_trait_meta(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> Vec<MetaPair> {
    let mut meta = Vec::new();
    attrs.retain(|a| {
        if !a.path().is_ident("trait_meta") {
            return true;
        }
        if let Err(e) = push_meta(&mut meta, a) {
            errors.push(e);
        }
        false
    });
    meta
}

/// The fidius attributes of one method.
pub struct MethodAttrs {
    /// `#[optional(since = N)]`: `N` (1 when absent) and where it was written.
    pub optional: Option<(u32, Span)>,
    /// `#[wire(raw)]`.
    pub raw: bool,
    /// `#[method_meta("k", "v")]` pairs.
    pub meta: Vec<MetaPair>,
}

/// Takes the fidius attributes off a method, leaving the others.
pub fn take_method_attrs(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> MethodAttrs {
    let mut found = MethodAttrs {
        optional: None,
        raw: false,
        meta: Vec::new(),
    };
    attrs.retain(|a| {
        let p = a.path();
        let read = if p.is_ident("optional") {
            parse_optional(a).map(|since| found.optional = Some(since))
        } else if p.is_ident("method_meta") {
            push_meta(&mut found.meta, a)
        } else if p.is_ident("wire") {
            parse_wire(a).map(|()| found.raw = true)
        } else {
            return true;
        };
        if let Err(e) = read {
            errors.push(e);
        }
        false
    });
    found
}

/// One `key = value` (or bare `key`) argument.
pub struct KeyValue {
    pub key: Ident,
    pub value: Option<syn::Expr>,
}

impl Parse for KeyValue {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // Any identifier, keywords included: `crate = "..."` is a key.
        let key = Ident::parse_any(input)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(Self { key, value })
    }
}

/// Parses `a = 1, b = X` into its parts.
pub fn parse_key_values(input: ParseStream) -> syn::Result<Vec<KeyValue>> {
    Ok(Punctuated::<KeyValue, Token![,]>::parse_terminated(input)?
        .into_iter()
        .collect())
}

/// The buffer strategies as written in attributes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Buffer {
    PluginAllocated,
    Arena,
}

impl Buffer {
    pub fn ident(self) -> Ident {
        Ident::new(
            match self {
                Buffer::PluginAllocated => "PluginAllocated",
                Buffer::Arena => "Arena",
            },
            Span::call_site(),
        )
    }
}

/// Reads `buffer = PluginAllocated | Arena`.
pub fn parse_buffer(kv: &KeyValue) -> syn::Result<Buffer> {
    let value = require_value(kv)?;
    if let syn::Expr::Path(p) = value {
        if let Some(ident) = p.path.get_ident() {
            match ident.to_string().as_str() {
                "PluginAllocated" => return Ok(Buffer::PluginAllocated),
                "Arena" => return Ok(Buffer::Arena),
                _ => {}
            }
        }
    }
    Err(syn::Error::new_spanned(
        value,
        "expected a buffer strategy: `PluginAllocated` or `Arena`",
    ))
}

/// Reads an integer value such as `version = 1`.
fn parse_u32(kv: &KeyValue) -> syn::Result<u32> {
    let value = require_value(kv)?;
    if let syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Int(i),
        ..
    }) = value
    {
        return i.base10_parse::<u32>();
    }
    Err(syn::Error::new_spanned(
        value,
        format!("`{}` expects an integer", kv.key),
    ))
}

fn require_value(kv: &KeyValue) -> syn::Result<&syn::Expr> {
    kv.value.as_ref().ok_or_else(|| {
        syn::Error::new_spanned(
            &kv.key,
            format!("`{}` needs a value: `{} = ...`", kv.key, kv.key),
        )
    })
}

/// A `("key", "value")` metadata pair.
pub struct MetaPair {
    pub key: LitStr,
    pub value: LitStr,
}

impl Parse for MetaPair {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key: LitStr = input.parse()?;
        input.parse::<Token![,]>()?;
        let value: LitStr = input.parse()?;
        let _ = input.parse::<Option<Token![,]>>()?;
        Ok(Self { key, value })
    }
}

/// Adds a metadata pair, rejecting a key already present (spanned at the new key).
pub fn push_meta(list: &mut Vec<MetaPair>, attr: &Attribute) -> syn::Result<()> {
    let pair: MetaPair = attr.parse_args()?;
    if pair.key.value().contains('\0') || pair.value.value().contains('\0') {
        return Err(syn::Error::new_spanned(
            &pair.key,
            "metadata may not contain NUL characters",
        ));
    }
    if list.iter().any(|p| p.key.value() == pair.key.value()) {
        return Err(syn::Error::new_spanned(
            &pair.key,
            format!("duplicate metadata key `{}`", pair.key.value()),
        ));
    }
    list.push(pair);
    Ok(())
}

/// `#[optional]` or `#[optional(since = N)]`: returns `since` (1 when absent).
pub fn parse_optional(attr: &Attribute) -> syn::Result<(u32, Span)> {
    match &attr.meta {
        syn::Meta::Path(_) => Ok((1, Span::call_site())),
        syn::Meta::List(_) => {
            let kvs = attr.parse_args_with(parse_key_values)?;
            let mut since = None;
            for kv in &kvs {
                if kv.key == "since" {
                    since = Some((parse_u32(kv)?, kv.key.span()));
                } else {
                    return Err(syn::Error::new_spanned(
                        &kv.key,
                        format!("unknown key `{}` in #[optional]; expected `since`", kv.key),
                    ));
                }
            }
            Ok(since.unwrap_or((1, Span::call_site())))
        }
        syn::Meta::NameValue(nv) => Err(syn::Error::new_spanned(
            nv,
            "expected `#[optional]` or `#[optional(since = N)]`",
        )),
    }
}

/// `#[wire(raw)]`.
pub fn parse_wire(attr: &Attribute) -> syn::Result<()> {
    let mode: Ident = attr.parse_args()?;
    if mode == "raw" {
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            mode,
            "unknown wire mode; the only mode is `#[wire(raw)]`",
        ))
    }
}
