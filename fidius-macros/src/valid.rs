//! The rules of an interface, checked on its model. Every broken rule is reported,
//! spanned at the token that breaks it.

use crate::ast::{InterfaceDef, MethodDef, ReturnKind};
use crate::{types, Errors};
use syn::{FnArg, ReturnType, TraitItem, Type};

/// The most optional methods an interface may have (one capability bit each).
pub const MAX_OPTIONAL: u32 = 64;

/// Checks the interface as a whole and each of its methods.
pub fn check(def: &InterfaceDef, errors: &mut Errors) {
    let item = &def.item;
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &item.generics,
            "plugin interfaces cannot be generic: a vtable needs concrete types",
        ));
    }
    for trait_item in &item.items {
        if !matches!(trait_item, TraitItem::Fn(_)) {
            errors.push(syn::Error::new_spanned(
                trait_item,
                "plugin interfaces may only contain methods",
            ));
        }
    }
    for m in &def.methods {
        check_method(m, def.version, errors);
    }
}

fn check_method(m: &MethodDef, version: u32, errors: &mut Errors) {
    let sig = &m.sig;
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
    for a in &m.args {
        if let Type::Reference(r) = &a.ty {
            errors.push(syn::Error::new_spanned(
                r,
                "plugin method arguments must be owned types (they are decoded on the plugin side)",
            ));
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Some((_, err)) = types::result_parts(ty) {
            if !types::is_plugin_error(err) {
                errors.push(syn::Error::new_spanned(
                    err,
                    "a fallible plugin method returns `Result<T, PluginError>`",
                ));
            }
        }
    }
    if m.raw {
        let ok = m.args.len() == 1
            && types::is_byte_vec(&m.args[0].ty)
            && matches!(&m.ret, ReturnKind::Value(t) if types::is_byte_vec(t));
        if !ok {
            errors.push(syn::Error::new_spanned(
                &sig.ident,
                "#[wire(raw)] methods take one `Vec<u8>` and return `Vec<u8>`",
            ));
        }
    }
    if let Some(opt) = m.optional {
        if opt.since > version {
            errors.push(syn::Error::new(
                opt.span,
                format!(
                    "`since = {}` is later than the interface version {version}",
                    opt.since
                ),
            ));
        }
        if opt.bit >= MAX_OPTIONAL {
            errors.push(syn::Error::new_spanned(
                &sig.ident,
                format!("an interface may have at most {MAX_OPTIONAL} optional methods (one capability bit each)"),
            ));
        }
    }
}
