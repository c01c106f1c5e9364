//! Procedural macros for Francis: `#[francis::actor]` (re-exported by the `francis` crate) and
//! the inert `#[method]` / `#[alarm]` attributes it reads inside the impl block.
//!
//! The macro works in three steps: [`parse`] checks the impl block (with [`attrs`] for the
//! macro's own attributes and [`types`] for signature checks) and builds a [`model`] with one
//! entry per actor method; [`emit`] generates the `Actor` impl and the typed proxy from it.
//! [`names`] holds the naming rules both sides share, [`errors`] collects diagnostics.

use proc_macro::TokenStream;
use quote::quote;

mod attrs;
mod emit;
mod errors;
mod model;
mod names;
mod parse;
mod types;

/// Turn an inherent impl block into a Francis actor.
///
/// ```ignore
/// use francis::prelude::*;
///
/// struct Counter { state: State<Count> }
///
/// #[francis::actor]                      // wire name "counter"; or #[francis::actor(name = "..")]
/// impl Counter {
///     // Required: build a fresh instance for an activation.
///     fn activate(ctx: &ActorContext) -> Self { Counter { state: ctx.state() } }
///
///     /// `&mut self`: an exclusive turn.
///     pub async fn increment(&mut self, by: i64) -> Result<i64, CounterError> { .. }
///
///     /// `&self`: a shared read turn.
///     pub async fn get(&self) -> Result<i64, CounterError> { .. }
///
///     #[method(name = "reset-all")]      // wire-name override
///     pub async fn reset(&mut self) -> Result<(), CounterError> { .. }
///
///     #[alarm]                           // alarm handler: `&mut self`, one payload argument
///     pub async fn tick(&mut self, data: Tick) -> Result<(), CounterError> { .. }
///
///     // Optional: runs once when the activation ends.
///     async fn deactivate(&mut self) { .. }
///
///     fn helper(&self) -> i64 { 1 }      // non-`pub` functions are plain helpers
/// }
/// ```
///
/// Every `pub async fn` taking `&mut self` or `&self` (and every function marked `#[method]`
/// or `#[alarm]`) becomes an actor method. Its arguments and `Ok` value must be serializable
/// owned types; it returns `Result<T, E>` where `E` is serializable and implements `Display`.
///
/// The macro generates:
/// - `impl francis::actor::Actor for Counter` (`NAME`, method table, dispatch, hooks);
/// - `pub struct CounterProxy`, which `ActorRef<Counter>` dereferences to, with
///   `async fn increment(&self, by: i64) -> Result<i64, CallError<CounterError>>` for each
///   method and `fn alarm_tick(&self, data: Tick) -> AlarmBuilder` for each alarm handler.
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr.into(), item.into()).into()
}

/// The whole expansion. On errors it re-emits the user's item (without our attributes) next to
/// the errors, so the only errors reported are the macro's own.
fn expand(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let mut errors = errors::Errors::default();
    let args = attrs::actor_args(attr).unwrap_or_else(|e| {
        errors.push(e);
        attrs::ActorArgs::default()
    });
    let mut item: syn::Item = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(e) => {
            errors.push(e);
            let errors = errors.to_compile_error();
            return quote!(#item #errors);
        }
    };
    match &mut item {
        syn::Item::Impl(imp) => match parse::actor(args, imp) {
            Ok(model) if errors.is_empty() => return emit::actor(imp, &model),
            Ok(_) => {}
            Err(e) => errors.push(e),
        },
        other => errors.add(
            item_head(other),
            "#[francis::actor] goes on the inherent impl block of the actor type, not on its definition: \
             write the type without it, then `#[francis::actor] impl MyActor { fn activate(ctx: &ActorContext) -> Self { .. } .. }`",
        ),
    }
    let errors = errors.to_compile_error();
    quote!(#item #errors)
}

/// The part of a misplaced item to underline: its keyword and name where there is one.
fn item_head(item: &syn::Item) -> proc_macro2::TokenStream {
    match item {
        syn::Item::Struct(s) => {
            let (token, ident) = (&s.struct_token, &s.ident);
            quote!(#token #ident)
        }
        syn::Item::Enum(e) => {
            let (token, ident) = (&e.enum_token, &e.ident);
            quote!(#token #ident)
        }
        syn::Item::Fn(f) => {
            let (token, ident) = (&f.sig.fn_token, &f.sig.ident);
            quote!(#token #ident)
        }
        syn::Item::Trait(t) => {
            let (token, ident) = (&t.trait_token, &t.ident);
            quote!(#token #ident)
        }
        other => quote!(#other),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    /// The expansion of a typical actor is valid Rust with the expected items.
    #[test]
    fn expansion_parses_as_rust() {
        let item = quote! {
            impl Counter {
                fn activate(ctx: &ActorContext) -> Self { Counter { value: 0 } }
                /// Add.
                pub async fn increment(&mut self, by: i64) -> Result<i64, CounterError> { Ok(by) }
                pub async fn get(&self) -> Result<i64, CounterError> { Ok(0) }
                pub async fn add_two(&mut self, a: i64, (b, c): (String, u8)) -> Result<(), CounterError> { Ok(()) }
                #[alarm(name = "t")]
                pub async fn tick(&mut self, data: Tick) -> Result<(), CounterError> { Ok(()) }
                async fn deactivate(&mut self) {}
            }
        };
        let output = super::expand(quote!(), item);
        let text = output.to_string();
        if std::env::var_os("FRANCIS_MACROS_DUMP").is_some() {
            println!("{text}");
        }
        let file: syn::File = syn::parse2(output).expect("the expansion parses");
        assert_eq!(
            file.items.len(),
            6,
            "impl, Actor impl, proxy struct, Proxy, Deref, proxy impl"
        );
        assert!(!text.contains("compile_error"), "{text}");
        assert!(
            !text.contains("# [alarm"),
            "our attributes are stripped: {text}"
        );
        assert!(
            text.contains("impl :: francis :: actor :: Actor for Counter"),
            "{text}"
        );
        assert!(text.contains("pub struct CounterProxy"), "{text}");
        assert!(
            text.contains("pub fn alarm_tick (& self , data : Tick) -> :: francis :: AlarmBuilder"),
            "{text}"
        );
        assert!(
            text.contains("pub async fn add_two (& self , a : i64 , arg1 : (String , u8))"),
            "{text}"
        );
    }

    /// Misuse yields errors next to the re-emitted impl block, never a panic.
    #[test]
    fn errors_keep_the_item() {
        let item = quote! {
            impl Counter {
                #[alarm(bogus)]
                pub fn tick(self) -> i64 { 0 }
            }
        };
        let text = super::expand(quote!(nme = "x"), item).to_string();
        assert!(text.contains("impl Counter"), "{text}");
        assert!(text.contains("compile_error"), "{text}");
        assert!(!text.contains("# [alarm"), "{text}");
    }
}
