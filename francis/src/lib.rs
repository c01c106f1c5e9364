//! # Francis
//!
//! Distributed virtual actors for Rust. Actors are addressed by type and ID, activated on
//! demand, run one turn at a time, keep durable state, and get durable alarms.
//!
//! ```ignore
//! use francis::prelude::*;
//!
//! #[derive(Default, Clone, Serialize, Deserialize)]
//! struct Count { value: i64 }
//!
//! struct Counter { state: State<Count> }
//!
//! #[francis::actor]
//! impl Counter {
//!     fn activate(ctx: &ActorContext) -> Self { Counter { state: ctx.state() } }
//!
//!     pub async fn increment(&mut self, by: i64) -> Result<i64, CounterError> {
//!         Ok(self.state.update(|c| { c.value += by; c.value }).await?)
//!     }
//! }
//! ```
//!
//! Module map (dependencies point downward only):
//! - [`actor`]: what users write and call: [`Actor`], [`ActorRef`], [`Service`], [`State`], alarms.
//! - [`host`]: one process's actor host: activations, turn locks, idle deactivation, alarms.
//! - [`store`]: the durable store trait and its memory / SQLite implementations.
//! - [`time`], [`clock`]: durations as users write them, and injected time.
//! - [`testing`]: an in-process host on a virtual clock for unit-testing actors.

extern crate self as francis;

pub mod actor;
pub mod clock;
pub mod error;
pub mod host;
#[cfg(feature = "http")]
pub mod http;
pub mod store;
pub mod testing;
pub mod time;

pub use actor::{
    ActorContext, ActorRef, AlarmBuilder, AlarmSpec, Envelope, RawRef, Service, State,
};
pub use error::{ActorFailure, CallError, Error};
pub use francis_macros::actor;
pub use host::{ActorOptions, Host};

/// Re-exports for macro-generated code. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::clock::BoxFuture;
    pub use serde;
}

/// The names an actor file usually needs: `use francis::prelude::*;`.
pub mod prelude {
    pub use crate::actor::{Actor, ActorContext, ActorRef, Envelope, Service, State};
    pub use crate::error::{CallError, Error};
    pub use crate::host::{ActorOptions, Host};
    pub use serde::{Deserialize, Serialize};
}
