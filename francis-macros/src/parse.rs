//! Parsing and validation: turns `#[francis::actor(..)] impl Type { .. }` into an [`ActorModel`]
//! (one [`Method`] per actor method), stripping the inert `#[method]` / `#[alarm]` attributes
//! from the impl block as it goes.
//!
//! Every misuse becomes a `syn::Error` spanned on the user's code that says what to write
//! instead; errors are collected so one compile run reports all of them.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{
    FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, PathArguments, ReturnType, Type, Visibility,
};

use crate::attrs::{self, ActorArgs, Mark, Marks};
use crate::errors::Errors;
use crate::model::{ActorModel, Arg, Hook, Kind, Method};
use crate::names;
use crate::types;

const GENERIC_ACTOR: &str = "actor types cannot be generic: each actor type is registered under one wire name, so write a concrete type (e.g. one type per variant, or a field holding the varying part)";
const RESULT_WHERE: &str = "where `T` is the serializable result (use `()` for none) and `YourError` is your error type, deriving Serialize and Deserialize and implementing Display (e.g. with thiserror)";

/// Check an impl block, strip its `#[method]` / `#[alarm]` attributes, and build the model.
pub fn actor(args: ActorArgs, item: &mut ItemImpl) -> syn::Result<ActorModel> {
    let mut errors = Errors::default();

    if let Some((_, trait_path, _)) = &item.trait_ {
        let error = syn::Error::new_spanned(
            trait_path,
            "#[francis::actor] goes on the inherent impl block of the actor type (`impl MyActor { .. }`), not on a trait impl; the macro implements the `Actor` trait for you",
        );
        // Nothing else is checked, but our attributes must not reach the compiler.
        for impl_item in &mut item.items {
            if let ImplItem::Fn(func) = impl_item {
                let _ = attrs::take_marks(&mut func.attrs);
            }
        }
        return Err(error);
    }
    let generic_impl = !item.generics.params.is_empty() || item.generics.where_clause.is_some();
    if generic_impl {
        errors.add(&item.generics, GENERIC_ACTOR);
    }
    let type_ident = match actor_type_ident(&item.self_ty, generic_impl) {
        Ok(ident) => Some(ident),
        Err(e) => {
            errors.push(e);
            None
        }
    };

    let name = match (&args.name, &type_ident) {
        (Some(lit), _) => {
            let value = lit.value();
            if let Some(problem) = names::wire_name_problem(&value) {
                errors.add(lit, format_args!("actor name {value:?} {problem}: wire names must be non-empty and must not contain '/'"));
            }
            value
        }
        (None, Some(ident)) => names::snake_case(&ident.to_string()),
        (None, None) => String::new(),
    };

    let type_name = type_ident
        .as_ref()
        .map(Ident::to_string)
        .unwrap_or_default();
    let mut methods = Vec::new();
    let mut deactivate = None;
    let mut has_activate = false;

    for impl_item in &mut item.items {
        let ImplItem::Fn(func) = impl_item else {
            attrs::strip_misplaced_attrs(impl_item, &mut errors);
            continue;
        };
        let marks = match attrs::take_marks(&mut func.attrs) {
            Ok(marks) => marks,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let fn_name = func.sig.ident.to_string();
        if fn_name == "activate" {
            has_activate = true;
            attrs::forbid_marks(&marks, "`activate`", &mut errors);
            check_activate(func, &item.self_ty, &type_name, &mut errors);
        } else if fn_name == "deactivate" {
            attrs::forbid_marks(&marks, "the `deactivate` hook", &mut errors);
            deactivate = check_deactivate(func, &mut errors);
        } else if (marks.any() || matches!(func.vis, Visibility::Public(_)))
            && let Some(method) = method(func, marks, &item.self_ty, &mut errors)
        {
            methods.push(method);
        }
    }

    if !has_activate {
        errors.add(
            &item.self_ty,
            format_args!(
                "actor `{type_name}` has no `activate` function: add `fn activate(ctx: &ActorContext) -> Self {{ .. }}` to this impl block; it builds a fresh instance for each activation (e.g. `{type_name} {{ state: ctx.state() }}`)"
            ),
        );
    }
    link_hooks(&mut methods, &mut errors);
    check_names(&methods, &mut errors);
    if methods.len() > usize::from(u16::MAX) {
        errors.add(
            &item.self_ty,
            "an actor cannot have more than 65535 methods",
        );
    }

    match (errors.0, type_ident) {
        (Some(e), _) => Err(e),
        (None, Some(type_ident)) => Ok(ActorModel {
            self_ty: (*item.self_ty).clone(),
            type_ident,
            name,
            methods,
            deactivate,
        }),
        (None, None) => Err(syn::Error::new_spanned(
            &item.self_ty,
            "expected the actor type's name",
        )),
    }
}

/// The identifier naming the actor type: the last segment of a plain, non-generic path
/// (generic arguments are let through when the impl's generics were already reported).
fn actor_type_ident(ty: &Type, generics_reported: bool) -> syn::Result<Ident> {
    let Type::Path(path) = ty else {
        return Err(syn::Error::new_spanned(
            ty,
            "#[francis::actor] goes on the impl block of a named struct or enum: `impl MyActor { .. }`",
        ));
    };
    let Some(last) = path.path.segments.last() else {
        return Err(syn::Error::new_spanned(
            ty,
            "expected the actor type's name",
        ));
    };
    if path.qself.is_some()
        || (!generics_reported && !matches!(last.arguments, PathArguments::None))
    {
        return Err(syn::Error::new_spanned(ty, GENERIC_ACTOR));
    }
    Ok(last.ident.clone())
}

/// `fn activate(ctx: &ActorContext) -> Self`.
fn check_activate(func: &ImplItemFn, self_ty: &Type, type_name: &str, errors: &mut Errors) {
    const SHAPE: &str = "write it as `fn activate(ctx: &ActorContext) -> Self { .. }`";
    let sig = &func.sig;
    if let Some(asyncness) = &sig.asyncness {
        errors.add(
            asyncness,
            format_args!("`activate` must not be async: {SHAPE}; it only builds the actor value (state handles such as `ctx.state()` load lazily), so do async setup in the methods"),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.add(
            &sig.generics,
            format_args!("`activate` cannot be generic: {SHAPE}"),
        );
    }
    let mut inputs = sig.inputs.iter();
    match (inputs.next(), inputs.next()) {
        (Some(FnArg::Receiver(receiver)), _) => errors.add(
            receiver,
            format_args!("`activate` creates the actor, so it takes no `self`: {SHAPE}"),
        ),
        (Some(FnArg::Typed(arg)), None) if types::is_context_ref(&arg.ty) => {}
        (Some(FnArg::Typed(arg)), None) => errors.add(
            &arg.ty,
            format_args!("`activate` takes the activation context by reference: {SHAPE}"),
        ),
        (None, _) => errors.add(
            &sig.ident,
            format_args!("`activate` takes the activation context: {SHAPE}"),
        ),
        (Some(_), Some(extra)) => errors.add(
            extra,
            format_args!("`activate` takes exactly one argument, the context: {SHAPE}"),
        ),
    }
    let returns_self = match &sig.output {
        ReturnType::Type(_, ty) => types::is_self_type(ty, self_ty, type_name),
        ReturnType::Default => false,
    };
    if !returns_self {
        let span = match &sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => sig.paren_token.span.join(),
        };
        errors.push(syn::Error::new(
            span,
            format_args!("`activate` returns the new actor value and cannot fail: {SHAPE} (report problems from the methods instead)"),
        ));
    }
}

/// `[async] fn deactivate(&mut self)` (or `&self`), returning anything.
fn check_deactivate(func: &ImplItemFn, errors: &mut Errors) -> Option<Hook> {
    const SHAPE: &str = "write it as `async fn deactivate(&mut self) { .. }`";
    let sig = &func.sig;
    let mut ok = true;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.add(
            &sig.generics,
            format_args!("the `deactivate` hook cannot be generic: {SHAPE}"),
        );
        ok = false;
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) => {
            errors.add(
                r,
                format_args!("the `deactivate` hook borrows the actor: {SHAPE}"),
            );
            ok = false;
        }
        _ => {
            errors.add(
                &sig.ident,
                format_args!(
                    "the `deactivate` hook runs on the actor, so it takes `&mut self`: {SHAPE}"
                ),
            );
            ok = false;
        }
    }
    for extra in inputs {
        errors.add(
            extra,
            format_args!("the `deactivate` hook takes no arguments: {SHAPE}"),
        );
        ok = false;
    }
    let returns_value = match &sig.output {
        ReturnType::Default => false,
        ReturnType::Type(_, ty) => !matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()),
    };
    ok.then(|| Hook {
        ident: sig.ident.clone(),
        is_async: sig.asyncness.is_some(),
        returns_value,
    })
}

/// Check an actor method and build its model (`None` if it has errors, which are recorded).
fn method(func: &ImplItemFn, marks: Marks, self_ty: &Type, outer: &mut Errors) -> Option<Method> {
    let sig = &func.sig;
    let ident = &sig.ident;
    let special = match marks.mark.as_ref().map(|(m, _)| m) {
        Some(Mark::Alarm) => Some(Kind::Alarm),
        Some(Mark::Job) => Some(Kind::Job),
        Some(Mark::JobFailed(_)) => Some(Kind::JobFailed),
        Some(Mark::Bootstrap) => Some(Kind::Bootstrap),
        Some(Mark::Method) | None => None,
    };
    let failed_job = match marks.mark.as_ref().map(|(m, _)| m) {
        Some(Mark::JobFailed(job)) => Some(job.clone()),
        _ => None,
    };
    let is_alarm = special.is_some();
    let what = special.map_or("actor method", Kind::what);
    // Errors of this method go to `local` first, so we know whether it is usable.
    let mut local = Errors::default();
    let errors = &mut local;

    let marked = marks.any();
    let has_receiver = matches!(sig.inputs.first(), Some(FnArg::Receiver(_)));
    if !has_receiver {
        // Most likely a constructor or other associated function: one error says it all.
        let hint = if marked {
            "remove the attribute"
        } else {
            "make it non-`pub` or move it to a separate `impl` block (actors are created by `activate`)"
        };
        outer.add(
            ident,
            format_args!("`{ident}` has no `self` receiver, so it cannot be an {what}: actor methods run on an activation and take `&mut self` (exclusive turn) or `&self` (shared read turn); to keep `{ident}` as an associated function, {hint}"),
        );
        return None;
    }
    if sig.asyncness.is_none() {
        let message = format!("{what} `{ident}` must be async: write `pub async fn {ident}(..)`");
        if !marked {
            // Most likely a plain helper that happens to be `pub`.
            outer.add(
                fn_header(func),
                format_args!("{message}; to keep it as a plain helper, make it non-`pub` or move it to a separate `impl` block"),
            );
            return None;
        }
        errors.add(fn_header(func), message);
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.add(
            &sig.generics,
            format_args!("{what} `{ident}` cannot be generic: calls arrive as encoded bytes, so every argument and the result need one concrete, serializable type (lifetimes included: take owned values)"),
        );
    }

    // The receiver decides the kind.
    let mut kind = None;
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.colon_token.is_none() => {
            kind = Some(match (special, r.mutability.is_some()) {
                (Some(kind), true) => kind,
                (Some(kind), false) => {
                    errors.add(
                        r,
                        format_args!("{what} `{ident}` must take `&mut self`: it runs in an exclusive turn"),
                    );
                    kind
                }
                (None, true) => Kind::Exclusive,
                (None, false) => Kind::Shared,
            });
        }
        Some(receiver) => errors.add(
            receiver,
            format_args!("{what} `{ident}` cannot take `self` by value (the actor lives on between calls): take `&mut self` for an exclusive turn or `&self` for a shared read turn"),
        ),
        None => {}
    }

    // Arguments.
    let typed: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let user_names: Vec<Option<Ident>> = typed.iter().map(|t| types::plain_ident(&t.pat)).collect();
    let proxy_names = names::proxy_arg_idents(&user_names);
    let mut args = Vec::with_capacity(typed.len());
    for (arg, name) in typed.iter().zip(proxy_names) {
        types::check_data_type(&arg.ty, &format!("argument of `{ident}`"), errors);
        args.push(Arg {
            ident: name,
            ty: types::replace_self(&arg.ty, self_ty),
        });
    }
    if is_alarm && args.len() != 1 {
        let payload = if special == Some(Kind::JobFailed) {
            "failed: JobFailed<TheJobsPayload>"
        } else {
            "data: YourPayload"
        };
        let message = format!(
            "{what} `{ident}` takes exactly one payload argument after `&mut self` (it has {}): write `pub async fn {ident}(&mut self, {payload})`; use `data: ()` for none, or a struct for several values",
            args.len()
        );
        if typed.len() > 1 {
            let extra: Vec<&syn::PatType> = typed[1..].to_vec();
            errors.add(quote::quote!(#(#extra),*), message);
        } else if sig.inputs.is_empty() {
            errors.add(ident, message);
        } else {
            errors.add(&sig.inputs, message);
        }
    }

    // Result<T, E>.
    let result = match &sig.output {
        ReturnType::Type(_, ty) => match types::result_types(ty) {
            Some((ok, err)) => Some((ok, err)),
            None => {
                let message = match types::result_alias(ty) {
                    Some(alias) => format!(
                        "{what} `{ident}` returns `{alias}<..>`, which hides the error type from the macro: spell it out as `Result<T, YourError>`, {RESULT_WHERE}"
                    ),
                    None => format!(
                        "{what} `{ident}` must return `Result<T, YourError>`, {RESULT_WHERE}"
                    ),
                };
                errors.add(ty, message);
                None
            }
        },
        ReturnType::Default => {
            errors.add(ident, format_args!("{what} `{ident}` returns nothing: return `Result<T, YourError>`, {RESULT_WHERE}"));
            None
        }
    };
    if let Some((ok, err)) = &result {
        if is_alarm && !types::is_unit(ok) {
            errors.add(
                ok,
                format_args!("{what} `{ident}` has no caller to return a value to: return `Result<(), YourError>`"),
            );
        }
        types::check_data_type(ok, &format!("result type of `{ident}`"), errors);
        types::check_data_type(err, &format!("error type of `{ident}`"), errors);
    }

    let wire = match &marks.name {
        Some(lit) => {
            let value = lit.value();
            if let Some(problem) = names::wire_name_problem(&value) {
                errors.add(lit, format_args!("wire name {value:?} {problem}: wire names must be non-empty and must not contain '/'"));
            }
            value
        }
        None => ident.to_string().trim_start_matches("r#").to_owned(),
    };
    if let (Some(lit), Some(Kind::JobFailed | Kind::Bootstrap)) = (&marks.name, special) {
        errors.add(lit, format_args!("a {what} has no wire name of its own"));
    }
    let wire = match special {
        Some(Kind::Bootstrap) => "francis/bootstrap".to_owned(),
        _ => wire,
    };

    let usable = local.0.is_none();
    if let Some(e) = local.0 {
        outer.push(e);
    }
    let (ok_ty, err_ty) = result?;
    let kind = kind?;
    usable.then(|| Method {
        ident: ident.clone(),
        wire,
        kind,
        args,
        ok_ty: types::replace_self(&ok_ty, self_ty),
        err_ty: types::replace_self(&err_ty, self_ty),
        docs: func
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect(),
        failed_job,
    })
}

/// Give each `#[job_failed(job)]` hook the wire name derived from its job's, and check that
/// it names a `#[job]` method; at most one `#[bootstrap]` hook.
fn link_hooks(methods: &mut [Method], errors: &mut Errors) {
    let jobs: Vec<(Ident, String)> = methods
        .iter()
        .filter(|m| m.kind == Kind::Job)
        .map(|m| (m.ident.clone(), m.wire.clone()))
        .collect();
    for m in methods.iter_mut() {
        let Some(target) = &m.failed_job else {
            continue;
        };
        match jobs.iter().find(|(ident, _)| ident == target) {
            Some((_, wire)) => m.wire = format!("francis/job_failed/{wire}"),
            None => {
                let known: Vec<String> = jobs.iter().map(|(i, _)| i.to_string()).collect();
                let known = if known.is_empty() {
                    "(none)".to_owned()
                } else {
                    known.join(", ")
                };
                errors.add(
                    target,
                    format_args!("#[job_failed({target})] names no #[job] method of this actor; its #[job] methods are: {known}"),
                );
            }
        }
    }
    let mut bootstraps = methods.iter().filter(|m| m.kind == Kind::Bootstrap);
    if let (Some(_), Some(second)) = (bootstraps.next(), bootstraps.next()) {
        errors.add(&second.ident, "an actor has at most one #[bootstrap] hook");
    }
}

/// The span of `pub fn name` (visibility to name) for "must be async" errors.
fn fn_header(func: &ImplItemFn) -> TokenStream {
    let vis = &func.vis;
    let constness = &func.sig.constness;
    let fn_token = &func.sig.fn_token;
    let ident = &func.sig.ident;
    quote::quote!(#vis #constness #fn_token #ident)
}

/// Wire names must be unique; generated proxy names must not collide with each other or with
/// what `ActorRef` already provides.
fn check_names(methods: &[Method], errors: &mut Errors) {
    const RESERVED: &[(&str, &str)] = &[
        ("raw", "`ActorRef::raw`"),
        ("active_only", "`ActorRef::active_only`"),
        ("clone", "`ActorRef`'s `Clone::clone`"),
    ];
    // `RESERVED` names cannot start with `alarm_`, so only plain methods can hit them.
    let origin = |m: &Method| match m.kind {
        Kind::Alarm => format!("the alarm setter of alarm handler `{}`", m.ident),
        Kind::Job => format!("the job dispatcher of job method `{}`", m.ident),
        _ => format!("the proxy method of `{}`", m.ident),
    };
    let mut wires: Vec<(&str, &Ident)> = Vec::new();
    let mut proxies: Vec<(String, &Method)> = Vec::new();
    for m in methods {
        if let Some((_, first)) = wires.iter().find(|(w, _)| *w == m.wire) {
            errors.add(
                &m.ident,
                format_args!(
                    "duplicate wire name {:?}: `{}` and `{}` would both be called {:?}; give one of them another name with #[method(name = \"...\")] (or #[alarm(name = \"...\")])",
                    m.wire, first, m.ident, m.wire
                ),
            );
        } else {
            wires.push((&m.wire, &m.ident));
        }
        let proxy = match m.kind {
            Kind::Alarm => names::alarm_setter_ident(&m.ident).to_string(),
            Kind::Job => names::job_dispatcher_ident(&m.ident).to_string(),
            // Hooks have no proxy method.
            Kind::JobFailed | Kind::Bootstrap => continue,
            _ => m.ident.to_string(),
        };
        if let Some((_, what)) = RESERVED.iter().find(|(name, _)| *name == proxy) {
            errors.add(
                &m.ident,
                format_args!("{what} would hide the proxy method for `{proxy}`, so callers could not reach it through `ActorRef`: rename the Rust method (add #[method(name = {proxy:?})] to keep its wire name)"),
            );
        }
        if let Some((_, first)) = proxies.iter().find(|(p, _)| *p == proxy) {
            errors.add(
                &m.ident,
                format_args!("{} and {} would both be named `{proxy}`: rename one of them (alarm handler `x` gets the setter `alarm_x`, job method `x` the dispatcher `job_x`)", origin(m), origin(first)),
            );
        } else {
            proxies.push((proxy, m));
        }
    }
}
