//! Code generation from an [`ActorModel`]: the `francis::actor::Actor` impl (method table and
//! dispatch) and the typed proxy that `ActorRef<YourActor>` dereferences to.
//!
//! Generated code names everything by absolute path (`::francis::...`, `::core::...`), so it
//! works whatever the user has imported, including inside the `francis` crate itself.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemImpl};

use crate::model::{ActorModel, Kind, Method};
use crate::names;

/// A function item that makes a method's non-`Send` future an error at the method's name
/// (instead of at the attribute): calls to it are spanned on the method.
fn send_check() -> TokenStream {
    quote! {
        fn __actor_method_futures_must_be_send<F: ::core::marker::Send>(future: F) -> F {
            future
        }
    }
}

/// The impl block (already stripped of our attributes), the `Actor` impl and the proxy.
pub fn actor(item: &ItemImpl, model: &ActorModel) -> TokenStream {
    let actor_impl = actor_impl(model);
    let proxy = proxy(model);
    quote! {
        #item
        #actor_impl
        #proxy
    }
}

/// `impl ::francis::actor::Actor for Type`.
fn actor_impl(model: &ActorModel) -> TokenStream {
    let self_ty = &model.self_ty;
    let name = &model.name;
    let proxy = names::proxy_ident(&model.type_ident);
    let table = model.methods.iter().enumerate().map(|(index, m)| {
        let wire = &m.wire;
        let index = index_literal(index);
        let kind = match m.kind {
            Kind::Exclusive => quote!(Exclusive),
            Kind::Shared => quote!(Shared),
            Kind::Alarm => quote!(Alarm),
            Kind::Job => quote!(Job),
            Kind::JobFailed => quote!(JobFailed),
            Kind::Bootstrap => quote!(Bootstrap),
        };
        quote! {
            ::francis::actor::MethodInfo {
                name: #wire,
                kind: ::francis::actor::MethodKind::#kind,
                index: #index,
            }
        }
    });
    let (mut_args, mut_body) = dispatch(model, |kind| kind != Kind::Shared);
    let (ref_args, ref_body) = dispatch(model, |kind| kind == Kind::Shared);
    let deactivate = model.deactivate.as_ref().map(|hook| {
        let send_check = send_check();
        let call = quote_spanned!(hook.ident.span()=> <#self_ty>::deactivate(self));
        let call = if hook.is_async {
            let call =
                quote_spanned!(hook.ident.span()=> __actor_method_futures_must_be_send(#call));
            quote!(#call.await)
        } else {
            call
        };
        let statement = if hook.returns_value {
            quote!(let _ = #call;)
        } else {
            quote!(#call;)
        };
        quote! {
            fn deactivate(&mut self) -> ::francis::__private::BoxFuture<'_, ()> {
                #send_check
                ::std::boxed::Box::pin(async move {
                    #statement
                })
            }
        }
    });

    quote! {
        impl ::francis::actor::Actor for #self_ty {
            const NAME: &'static str = #name;

            type Proxy = #proxy;

            fn activate(ctx: &::francis::ActorContext) -> Self {
                <#self_ty>::activate(ctx)
            }

            fn methods() -> &'static [::francis::actor::MethodInfo] {
                const METHODS: &[::francis::actor::MethodInfo] = &[#(#table),*];
                METHODS
            }

            fn call_mut<'a>(
                &'a mut self,
                index: u16,
                #mut_args: ::francis::actor::Envelope,
            ) -> ::francis::__private::BoxFuture<
                'a,
                ::core::result::Result<::francis::actor::Envelope, ::francis::actor::DispatchError>,
            > {
                #mut_body
            }

            fn call_ref<'a>(
                &'a self,
                index: u16,
                #ref_args: ::francis::actor::Envelope,
            ) -> ::francis::__private::BoxFuture<
                'a,
                ::core::result::Result<::francis::actor::Envelope, ::francis::actor::DispatchError>,
            > {
                #ref_body
            }

            #deactivate
        }
    }
}

/// The envelope parameter's name and the body of `call_mut` or `call_ref`: a `match index`
/// over the methods whose kind `include` accepts.
fn dispatch(model: &ActorModel, include: impl Fn(Kind) -> bool) -> (Ident, TokenStream) {
    let self_ty = &model.self_ty;
    let args = Ident::new("args", Span::call_site());
    let mut uses_args = false;
    let arms: Vec<TokenStream> = model
        .methods
        .iter()
        .enumerate()
        .filter(|(_, m)| include(m.kind))
        .map(|(index, m)| {
            uses_args |= !m.args.is_empty();
            let index = index_literal(index);
            let arm = dispatch_arm(self_ty, m, &args);
            quote!(#index => { #arm })
        })
        .collect();
    let param = if uses_args {
        args
    } else {
        Ident::new("_args", Span::call_site())
    };
    let body = if arms.is_empty() {
        quote! {
            let _ = index;
            ::std::boxed::Box::pin(::core::future::ready(::core::result::Result::Err(
                ::francis::actor::DispatchError::NoSuchMethod,
            )))
        }
    } else {
        let send_check = send_check();
        quote! {
            #send_check
            ::std::boxed::Box::pin(async move {
                match index {
                    #(#arms)*
                    _ => ::core::result::Result::Err(::francis::actor::DispatchError::NoSuchMethod),
                }
            })
        }
    };
    (param, body)
}

/// Decode the arguments, run the method, encode its result or error.
fn dispatch_arm(self_ty: &syn::Type, m: &Method, args: &Ident) -> TokenStream {
    let names: Vec<Ident> = (0..m.args.len())
        .map(|i| format_ident!("__francis_arg{}", i))
        .collect();
    let types: Vec<&syn::Type> = m.args.iter().map(|a| &a.ty).collect();
    let decode = |pattern: TokenStream, ty: TokenStream| {
        quote! {
            let #pattern: #ty = match #args.decode::<#ty>() {
                ::core::result::Result::Ok(decoded) => decoded,
                ::core::result::Result::Err(error) => {
                    return ::core::result::Result::Err(::francis::actor::DispatchError::BadArguments(error));
                }
            };
        }
    };
    let decode = match (names.as_slice(), types.as_slice()) {
        ([], []) => TokenStream::new(),
        ([name], [ty]) => decode(quote!(#name), quote!(#ty)),
        _ => decode(quote!((#(#names),*)), quote!((#(#types),*))),
    };
    let ident = &m.ident;
    let ok = quote_spanned!(m.ok_ty.span()=> ::francis::actor::DispatchError::encode_ok(&value));
    let err = if m.kind == Kind::Job {
        // Spanned on the error type, so "E: JobError is not satisfied" points at it.
        quote_spanned!(m.err_ty.span()=> ::francis::actor::DispatchError::job(&error))
    } else {
        quote_spanned!(m.err_ty.span()=> ::francis::actor::DispatchError::actor(&error))
    };
    // Checking `Send` on the method's own future makes a non-`Send` future an error pointing
    // at the method's name, rather than at the attribute.
    let call = quote_spanned!(ident.span()=> __actor_method_futures_must_be_send(<#self_ty>::#ident(self, #(#names),*)));
    quote! {
        #decode
        match #call.await {
            ::core::result::Result::Ok(value) => #ok,
            ::core::result::Result::Err(error) => ::core::result::Result::Err(#err),
        }
    }
}

/// The proxy struct, its `Proxy` and `Deref` impls, and one method per actor method.
fn proxy(model: &ActorModel) -> TokenStream {
    let proxy = names::proxy_ident(&model.type_ident);
    let type_name = model.type_ident.to_string();
    let struct_doc = format!(
        "Typed proxy for the `{type_name}` actor: what `ActorRef<{type_name}>` dereferences to, \
         with one method per actor method. Generated by `#[francis::actor]`."
    );
    let methods = model.methods.iter().map(proxy_method);
    quote! {
        #[doc = #struct_doc]
        #[derive(::core::clone::Clone)]
        pub struct #proxy {
            raw: ::francis::RawRef,
        }

        impl ::francis::actor::Proxy for #proxy {
            fn from_raw(raw: ::francis::RawRef) -> Self {
                #proxy { raw }
            }

            fn raw(&self) -> &::francis::RawRef {
                &self.raw
            }
        }

        impl ::core::ops::Deref for #proxy {
            type Target = ::francis::RawRef;

            fn deref(&self) -> &::francis::RawRef {
                &self.raw
            }
        }

        #[allow(private_interfaces, private_bounds, dead_code)]
        impl #proxy {
            #(#methods)*
        }
    }
}

/// `pub async fn name(&self, ..) -> Result<T, CallError<E>>`, or `pub fn alarm_name(&self, data)`.
fn proxy_method(m: &Method) -> TokenStream {
    let wire = &m.wire;
    let ident = &m.ident;
    let params = m.args.iter().map(|a| {
        let (name, ty) = (&a.ident, &a.ty);
        quote!(#name: #ty)
    });
    let docs = &m.docs;
    if matches!(m.kind, Kind::JobFailed | Kind::Bootstrap) {
        return TokenStream::new();
    }
    if m.kind == Kind::Job {
        let dispatcher = names::job_dispatcher_ident(ident);
        let data = m.args.first().map(|a| &a.ident);
        let doc = format!(
            "Prepare job `{wire}` with this payload; nothing is stored until `.dispatch().await`, \
             which returns its ID (chain `.after(..)`, `.at(..)`, `.every(..)`, `.cron(..)`, \
             `.ttl(..)`, `.key(..)` before it)."
        );
        let separator = (!docs.is_empty()).then(|| quote!(#[doc = ""]));
        return quote! {
            #(#docs)*
            #separator
            #[doc = #doc]
            pub fn #dispatcher(&self, #(#params),*) -> ::francis::JobBuilder {
                self.raw.job(#wire, &#data)
            }
        };
    }
    if m.kind == Kind::Alarm {
        let setter = names::alarm_setter_ident(ident);
        let data = m.args.first().map(|a| &a.ident);
        let doc = format!(
            "Prepare the alarm that runs handler `{wire}` with this payload; nothing is stored until \
             `.set().await` (chain `.after(..)`, `.at(..)`, `.every(..)`, `.name(..)` before it)."
        );
        let separator = (!docs.is_empty()).then(|| quote!(#[doc = ""]));
        return quote! {
            #(#docs)*
            #separator
            #[doc = #doc]
            pub fn #setter(&self, #(#params),*) -> ::francis::AlarmBuilder {
                self.raw.alarm(#wire, &#data)
            }
        };
    }
    let names: Vec<&Ident> = m.args.iter().map(|a| &a.ident).collect();
    let payload = match names.as_slice() {
        [] => quote!(&()),
        [one] => quote!(&#one),
        many => quote!(&(#(#many),*)),
    };
    let (ok, err) = (&m.ok_ty, &m.err_ty);
    let doc = docs.is_empty().then(|| {
        let text = format!("Call the actor method `{wire}`.");
        quote!(#[doc = #text])
    });
    // Spanned on the error type, so "E: DeserializeOwned is not satisfied" points at it.
    let call = quote_spanned!(err.span()=> self.raw.call::<_, #ok, #err>(#wire, #payload).await);
    quote! {
        #(#docs)*
        #doc
        pub async fn #ident(&self, #(#params),*)
            -> ::core::result::Result<#ok, ::francis::CallError<#err>>
        {
            #call
        }
    }
}

/// A method's index as a `u16` literal (the parser rejects more than `u16::MAX` methods).
fn index_literal(index: usize) -> syn::LitInt {
    syn::LitInt::new(&format!("{index}u16"), Span::call_site())
}
