//! Questions about the types in an actor's signatures: is this `Result<T, E>`, `&ActorContext`,
//! `Self`, an owned concrete type? And `Self` replacement for signatures copied to the proxy.

use proc_macro2::{TokenStream, TokenTree};
use syn::{GenericArgument, Ident, Pat, PathArguments, Type};

use crate::errors::Errors;

/// `&ActorContext` (any path ending in `ActorContext`).
pub fn is_context_ref(ty: &Type) -> bool {
    let Type::Reference(reference) = ty else {
        return false;
    };
    if reference.mutability.is_some() {
        return false;
    }
    matches!(&*reference.elem, Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "ActorContext"))
}

/// `Self`, or the actor type itself.
pub fn is_self_type(ty: &Type, self_ty: &Type, type_name: &str) -> bool {
    if ty == self_ty {
        return true;
    }
    matches!(ty, Type::Path(p) if p.qself.is_none() && (p.path.is_ident("Self") || p.path.is_ident(type_name)))
}

/// Types crossing the wire must be owned and concrete.
pub fn check_data_type(ty: &Type, what: &str, errors: &mut Errors) {
    if contains_impl_trait(ty) {
        errors.add(
            ty,
            format_args!("the {what} cannot be `impl Trait`: calls arrive as encoded bytes, so it needs one concrete, serializable type"),
        );
    } else if let Type::Reference(reference) = ty {
        let hint = match &*reference.elem {
            Type::Path(p) if p.path.is_ident("str") => " (e.g. `String` instead of `&str`)",
            Type::Slice(_) => " (e.g. `Vec<T>` instead of `&[T]`)",
            _ => "",
        };
        errors.add(
            ty,
            format_args!("the {what} cannot be a reference: calls arrive as encoded bytes, so take an owned type{hint}"),
        );
    }
}

/// Whether `impl` appears anywhere in the type (e.g. `impl Into<String>`, `Vec<impl Trait>`).
pub fn contains_impl_trait(ty: &Type) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tt| match tt {
            TokenTree::Ident(i) => i == "impl",
            TokenTree::Group(g) => scan(g.stream()),
            _ => false,
        })
    }
    scan(quote::quote!(#ty))
}

/// The name of a one-argument `...Result<T>` alias (`anyhow::Result`, `io::Result`, `AppResult`).
pub fn result_alias(ty: &Type) -> Option<String> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return None;
    };
    let name = last.ident.to_string();
    (name.ends_with("Result") && generics.args.len() == 1).then_some(name)
}

/// `(T, E)` of a `Result<T, E>` (any path ending in `Result` with two type arguments).
pub fn result_types(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return None;
    };
    let mut types = generics.args.iter().map(|arg| match arg {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(Some(ok)), Some(Some(err)), None) => Some((ok, err)),
        _ => None,
    }
}

/// `()`.
pub fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// The identifier of a `name` or `mut name` pattern.
pub fn plain_ident(pat: &Pat) -> Option<Ident> {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(p.ident.clone()),
        _ => None,
    }
}

/// The type with every `Self` replaced by the actor type (proxy signatures live elsewhere).
pub fn replace_self(ty: &Type, self_ty: &Type) -> Type {
    fn walk(tokens: TokenStream, self_ty: &Type) -> TokenStream {
        tokens
            .into_iter()
            .map(|tt| match tt {
                TokenTree::Ident(i) if i == "Self" => {
                    let mut replacement = TokenStream::new();
                    quote::ToTokens::to_tokens(self_ty, &mut replacement);
                    TokenTree::Group(proc_macro2::Group::new(
                        proc_macro2::Delimiter::None,
                        replacement,
                    ))
                }
                TokenTree::Group(g) => {
                    let mut group =
                        proc_macro2::Group::new(g.delimiter(), walk(g.stream(), self_ty));
                    group.set_span(g.span());
                    TokenTree::Group(group)
                }
                other => other,
            })
            .collect()
    }
    syn::parse2(walk(quote::quote!(#ty), self_ty)).unwrap_or_else(|_| ty.clone())
}
