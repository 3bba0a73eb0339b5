//! Classifying argument and return types, and their canonical spelling.

use quote::ToTokens;
use syn::{GenericArgument, PathArguments, Type};

/// The tokens of `ty` with all whitespace removed: the canonical spelling used in
/// signatures and the interface hash.
pub fn canonical(ty: &Type) -> String {
    ty.to_token_stream()
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// The single generic argument types of the last path segment, e.g. `[T]` for `Vec<T>`.
fn last_segment_args<'a>(ty: &'a Type, name: &str) -> Option<Vec<&'a Type>> {
    let Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let seg = p.path.segments.last()?;
    if seg.ident != name {
        return None;
    }
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .map(|arg| match arg {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// True for `Vec<u8>` (by any path to `Vec`).
pub fn is_byte_vec(ty: &Type) -> bool {
    matches!(last_segment_args(ty, "Vec").as_deref(), Some([t]) if is_ident(t, "u8"))
}

/// True for `String` (by any path to it).
pub fn is_string(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "String" && s.arguments.is_none()))
}

fn is_ident(ty: &Type, name: &str) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident(name))
}

/// `Result<T, E>` → `(T, E)`.
pub fn result_parts(ty: &Type) -> Option<(&Type, &Type)> {
    match last_segment_args(ty, "Result").as_deref() {
        Some([ok, err]) => Some((ok, err)),
        _ => None,
    }
}

/// True when the type's last path segment is `PluginError`.
pub fn is_plugin_error(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "PluginError"))
}

/// `Stream<T>` → `T`.
pub fn stream_item(ty: &Type) -> Option<&Type> {
    match last_segment_args(ty, "Stream").as_deref() {
        Some([item]) => Some(item),
        _ => None,
    }
}

/// True for the plain scalars that may cross the boundary without serialization:
/// integers (not 128-bit), floats and `bool`.
pub fn is_scalar(ty: &Type) -> bool {
    const SCALARS: &[&str] = &[
        "i8", "i16", "i32", "i64", "isize", "u8", "u16", "u32", "u64", "usize", "f32", "f64",
        "bool",
    ];
    SCALARS.iter().any(|s| is_ident(ty, s))
}

/// True for `()`.
pub fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn classifies() {
        assert!(is_byte_vec(&parse_quote!(Vec<u8>)));
        assert!(is_byte_vec(&parse_quote!(std::vec::Vec<u8>)));
        assert!(!is_byte_vec(&parse_quote!(Vec<u16>)));
        assert!(is_string(&parse_quote!(String)) && is_string(&parse_quote!(std::string::String)));
        assert!(!is_string(&parse_quote!(str)) && !is_string(&parse_quote!(Vec<String>)));
        assert!(result_parts(&parse_quote!(Result<String, PluginError>)).is_some());
        assert!(is_plugin_error(&parse_quote!(fidius::PluginError)));
        assert!(stream_item(&parse_quote!(fidius::Stream<u8>)).is_some());
        assert!(is_unit(&parse_quote!(())));
        assert!(is_scalar(&parse_quote!(i64)) && is_scalar(&parse_quote!(bool)));
        assert!(!is_scalar(&parse_quote!(char)) && !is_scalar(&parse_quote!(String)));
        assert_eq!(canonical(&parse_quote!(Vec<u8>)), "Vec<u8>");
        assert_eq!(
            canonical(&parse_quote!(Result<Vec<u8>, PluginError>)),
            "Result<Vec<u8>,PluginError>"
        );
    }
}
