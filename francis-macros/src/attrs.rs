//! The macro's own attributes: the arguments of `#[francis::actor(..)]`, and the inert
//! `#[method]`, `#[alarm]`, `#[job]`, `#[job_failed(job)]` and `#[bootstrap]` markers on
//! functions, which are parsed and stripped here so they never reach the compiler.

use proc_macro2::TokenStream;
use syn::{Attribute, Ident, ImplItem, LitStr};

use crate::errors::Errors;

const ACTOR_ARGS_HELP: &str = "the only argument of #[francis::actor] is `name = \"...\"`, e.g. #[francis::actor(name = \"counter\")]";
const METHOD_ARGS_HELP: &str =
    "the only argument of #[method] is `name = \"...\"`, e.g. #[method(name = \"reset-all\")]";
const ALARM_ARGS_HELP: &str =
    "the only argument of #[alarm] is `name = \"...\"`, e.g. #[alarm(name = \"nightly\")]";
const JOB_ARGS_HELP: &str =
    "the only argument of #[job] is `name = \"...\"`, e.g. #[job(name = \"ship-order\")]";
const JOB_FAILED_HELP: &str = "#[job_failed] names the #[job] method whose dead letters it hears about, e.g. #[job_failed(ship)] on `async fn ship_failed(&mut self, failed: JobFailed<Ship>) -> Result<(), E>`";
const BOOTSTRAP_HELP: &str = "#[bootstrap] takes no arguments: put it on `async fn bootstrap(&mut self, data: YourData) -> Result<(), E>`";

/// Which of our function attributes a function carries.
#[derive(Clone, PartialEq, Eq)]
pub enum Mark {
    /// `#[method]`.
    Method,
    /// `#[alarm]`.
    Alarm,
    /// `#[job]`.
    Job,
    /// `#[job_failed(job)]`, with the job method's Rust name.
    JobFailed(Ident),
    /// `#[bootstrap]`.
    Bootstrap,
}

impl Mark {
    fn of(attr: &Attribute) -> Option<(&'static str, &'static str)> {
        let path = attr.path();
        [
            ("method", METHOD_ARGS_HELP),
            ("alarm", ALARM_ARGS_HELP),
            ("job", JOB_ARGS_HELP),
            ("job_failed", JOB_FAILED_HELP),
            ("bootstrap", BOOTSTRAP_HELP),
        ]
        .into_iter()
        .find(|(name, _)| path.is_ident(name))
    }
}

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
    /// The attribute present, if any, and what it says.
    pub mark: Option<(Mark, Attribute)>,
    /// The wire-name override (`#[method]`, `#[alarm]`, `#[job]`).
    pub name: Option<LitStr>,
}

impl Marks {
    /// Whether one of our attributes is present.
    pub fn any(&self) -> bool {
        self.mark.is_some()
    }
}

/// Remove our attributes from `attrs` and parse them.
pub fn take_marks(attrs: &mut Vec<Attribute>) -> syn::Result<Marks> {
    let mut marks = Marks::default();
    let mut errors = Errors::default();
    let mut kept = Vec::with_capacity(attrs.len());
    for attr in attrs.drain(..) {
        let Some((which, help)) = Mark::of(&attr) else {
            kept.push(attr);
            continue;
        };
        if marks.mark.is_some() {
            errors.add(
                &attr,
                format_args!("#[{which}] repeats or conflicts with another of #[method], #[alarm], #[job], #[job_failed] and #[bootstrap] on this function: give it one"),
            );
            continue;
        }
        let mark = match which {
            "job_failed" => match attr.parse_args::<Ident>() {
                Ok(job) => Mark::JobFailed(job),
                Err(_) => {
                    errors.add(&attr, JOB_FAILED_HELP);
                    continue;
                }
            },
            "bootstrap" => {
                if !matches!(attr.meta, syn::Meta::Path(_)) {
                    errors.add(&attr, BOOTSTRAP_HELP);
                }
                Mark::Bootstrap
            }
            _ => {
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
                                "unknown argument `{}` in #[{which}]: {help}",
                                path_text(&meta.path)
                            )))
                        }
                    });
                    if let Err(e) = result {
                        errors.push(e);
                    }
                }
                match which {
                    "alarm" => Mark::Alarm,
                    "job" => Mark::Job,
                    _ => Mark::Method,
                }
            }
        };
        marks.mark = Some((mark, attr));
    }
    *attrs = kept;
    errors.finish(marks)
}

/// Our attributes make no sense on `activate` / `deactivate`.
pub fn forbid_marks(marks: &Marks, what: &str, errors: &mut Errors) {
    if let Some((_, attr)) = &marks.mark {
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
        let ours = Mark::of(attr).is_some();
        if ours {
            errors.add(
                attr,
                "#[method], #[alarm], #[job], #[job_failed] and #[bootstrap] go on `async fn` methods of the actor",
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
