//! The macro's own attributes: the arguments of `#[francis::actor(..)]`, and the inert
//! `#[method]` / `#[alarm]` markers on functions, which are parsed and stripped here so they
//! never reach the compiler.

use proc_macro2::TokenStream;
use syn::{Attribute, ImplItem, LitStr};

use crate::errors::Errors;

const ACTOR_ARGS_HELP: &str = "the only argument of #[francis::actor] is `name = \"...\"`, e.g. #[francis::actor(name = \"counter\")]";
const METHOD_ARGS_HELP: &str =
    "the only argument of #[method] is `name = \"...\"`, e.g. #[method(name = \"reset-all\")]";
const ALARM_ARGS_HELP: &str =
    "the only argument of #[alarm] is `name = \"...\"`, e.g. #[alarm(name = \"nightly\")]";

/// The arguments of `#[francis::actor(..)]`.
#[derive(Default)]
pub struct ActorArgs {
    /// `name = "..."`.
    pub name: Option<LitStr>,
}

/// Parse the arguments of `#[francis::actor(..)]`.
pub fn actor_args(attr: TokenStream) -> syn::Result<ActorArgs> {
    let mut args = ActorArgs::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            if args.name.is_some() {
                return Err(meta.error("`name` is given twice"));
            }
            args.name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error(format_args!(
                "unknown argument `{}`: {ACTOR_ARGS_HELP}",
                path_text(&meta.path)
            )))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(args)
}

/// Which of our attributes a function carries.
#[derive(Default)]
pub struct Marks {
    /// `#[method]` was present (possibly with a name).
    pub method: Option<Attribute>,
    /// `#[alarm]` was present (possibly with a name).
    pub alarm: Option<Attribute>,
    /// The wire-name override from either attribute.
    pub name: Option<LitStr>,
}

impl Marks {
    /// Whether `#[method]` or `#[alarm]` is present.
    pub fn any(&self) -> bool {
        self.method.is_some() || self.alarm.is_some()
    }
}

/// Remove `#[method]` / `#[alarm]` from `attrs` and parse them.
pub fn take_marks(attrs: &mut Vec<Attribute>) -> syn::Result<Marks> {
    let mut marks = Marks::default();
    let mut errors = Errors::default();
    let mut kept = Vec::with_capacity(attrs.len());
    for attr in attrs.drain(..) {
        let (is_alarm, help) = if attr.path().is_ident("alarm") {
            (true, ALARM_ARGS_HELP)
        } else if attr.path().is_ident("method") {
            (false, METHOD_ARGS_HELP)
        } else {
            kept.push(attr);
            continue;
        };
        let which = if is_alarm { "#[alarm]" } else { "#[method]" };
        if marks.method.is_some() || marks.alarm.is_some() {
            errors.add(
                &attr,
                format_args!("{which} repeats or conflicts with another #[method]/#[alarm] on this function: use #[alarm] for an alarm handler or #[method] for a callable method, once"),
            );
            continue;
        }
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    if marks.name.is_some() {
                        return Err(meta.error("`name` is given twice"));
                    }
                    marks.name = Some(meta.value()?.parse()?);
                    Ok(())
                } else {
                    Err(meta.error(format_args!(
                        "unknown argument `{}` in {which}: {help}",
                        path_text(&meta.path)
                    )))
                }
            });
            if let Err(e) = result {
                errors.push(e);
            }
        }
        if is_alarm {
            marks.alarm = Some(attr);
        } else {
            marks.method = Some(attr);
        }
    }
    *attrs = kept;
    errors.finish(marks)
}

/// `#[method]` / `#[alarm]` make no sense on `activate` / `deactivate`.
pub fn forbid_marks(marks: &Marks, what: &str, errors: &mut Errors) {
    for attr in marks.method.iter().chain(&marks.alarm) {
        errors.add(attr, format_args!("{what} is a lifecycle hook, not an actor method: remove this attribute (or rename the function)"));
    }
}

/// `#[method]` / `#[alarm]` on consts, types or macros inside the impl block.
pub fn strip_misplaced_attrs(item: &mut ImplItem, errors: &mut Errors) {
    let attrs = match item {
        ImplItem::Const(c) => &mut c.attrs,
        ImplItem::Type(t) => &mut t.attrs,
        ImplItem::Macro(m) => &mut m.attrs,
        _ => return,
    };
    attrs.retain(|attr| {
        let ours = attr.path().is_ident("alarm") || attr.path().is_ident("method");
        if ours {
            errors.add(
                attr,
                "#[method] and #[alarm] go on `async fn` methods of the actor",
            );
        }
        !ours
    });
}

/// A path as the user wrote it, for messages.
fn path_text(path: &syn::Path) -> String {
    let tokens = quote::quote!(#path);
    tokens.to_string().replace(' ', "")
}
