//! The model the macro builds from an actor's impl block: what [`crate::parse`] produces
//! after validation and [`crate::emit`] generates code from. Plain data, no logic.

use syn::{Attribute, Ident, Type};

/// Everything emission needs to know about one actor.
pub struct ActorModel {
    /// The actor type as written after `impl`.
    pub self_ty: Type,
    /// The last identifier of the type's path (`Counter`).
    pub type_ident: Ident,
    /// The wire name of the actor type.
    pub name: String,
    /// The actor methods, in declaration order (their index is their position).
    pub methods: Vec<Method>,
    /// The user's `deactivate` hook, if any.
    pub deactivate: Option<Hook>,
}

/// How a method runs; mirrors `francis::actor::MethodKind`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `&mut self`.
    Exclusive,
    /// `&self`.
    Shared,
    /// `#[alarm]` with `&mut self`.
    Alarm,
    /// `#[job]` with `&mut self`.
    Job,
    /// `#[job_failed(job)]` with `&mut self`.
    JobFailed,
    /// `#[bootstrap]` with `&mut self`.
    Bootstrap,
}

impl Kind {
    /// What the kind is called in messages.
    pub fn what(self) -> &'static str {
        match self {
            Kind::Exclusive | Kind::Shared => "actor method",
            Kind::Alarm => "alarm handler",
            Kind::Job => "job method",
            Kind::JobFailed => "job_failed hook",
            Kind::Bootstrap => "bootstrap hook",
        }
    }
}

/// One actor method (callable or alarm handler).
pub struct Method {
    /// The Rust name.
    pub ident: Ident,
    /// The wire name (the override, or the Rust name).
    pub wire: String,
    /// How it runs.
    pub kind: Kind,
    /// Its parameters after the receiver.
    pub args: Vec<Arg>,
    /// `T` of `Result<T, E>`.
    pub ok_ty: Type,
    /// `E` of `Result<T, E>`.
    pub err_ty: Type,
    /// The `///` doc attributes, copied onto the proxy method.
    pub docs: Vec<Attribute>,
    /// For a `#[job_failed(job)]` hook: the job method's Rust name (its wire name is then
    /// derived from the job's once all methods are known).
    pub failed_job: Option<Ident>,
}

/// One method parameter.
pub struct Arg {
    /// The parameter name used by the proxy (the user's, or a generated one).
    pub ident: Ident,
    /// Its type, with `Self` already replaced by the actor type.
    pub ty: Type,
}

/// The user's `deactivate` hook.
pub struct Hook {
    /// The function's name (`deactivate`), for spans.
    pub ident: Ident,
    /// Whether it is an `async fn` (its result is awaited).
    pub is_async: bool,
    /// Whether it returns something other than `()` (the result is discarded).
    pub returns_value: bool,
}
