//! # Francis
//!
//! Distributed virtual actors for Rust. Actors are addressed by type and ID, activated on
//! demand, run one turn at a time, keep durable state, and get durable alarms.
//!
//! ```
//! use std::time::Duration;
//! use francis::prelude::*;
//!
//! #[derive(Default, Clone, Serialize, Deserialize)]
//! struct Count { value: i64 }
//!
//! #[derive(Debug, Serialize, Deserialize, thiserror::Error)]
//! enum CounterError {
//!     #[error("storage: {0}")]
//!     Storage(String),
//! }
//! impl From<francis::Error> for CounterError {
//!     fn from(e: francis::Error) -> Self { CounterError::Storage(e.to_string()) }
//! }
//!
//! struct Counter { count: State<Count> }
//!
//! #[francis::actor]
//! impl Counter {
//!     fn activate(ctx: &ActorContext) -> Self { Counter { count: ctx.state() } }
//!
//!     /// `&mut self`: an exclusive turn.
//!     pub async fn increment(&mut self, by: i64) -> Result<i64, CounterError> {
//!         Ok(self.count.update(|c| { c.value += by; c.value }).await?)
//!     }
//!
//!     /// `&self`: a shared read turn.
//!     pub async fn get(&self) -> Result<i64, CounterError> {
//!         Ok(self.count.get().await?.value)
//!     }
//!
//!     /// Runs when an alarm fires.
//!     #[alarm]
//!     pub async fn tick(&mut self, by: i64) -> Result<(), CounterError> {
//!         self.count.update(|c| c.value += by).await?;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let host = Host::local()
//!     .address("127.0.0.1:7571")
//!     .sqlite(dir.path().join("data.db"))
//!     .runtime_psk("an example cluster key of 32+ bytes!")
//!     .register::<Counter>()
//!     .build()
//!     .await?;
//! let service = host.service();
//!
//! let alice: ActorRef<Counter> = service.actor("alice");
//! assert_eq!(alice.increment(5).await?, 5);
//! assert_eq!(alice.get().await?, 5);
//! alice.alarm_tick(10).after(Duration::from_secs(60)).every(Duration::from_secs(60)).set().await?;
//!
//! // Untyped, as HTTP bridges call it:
//! let out = service.invoke("counter", "alice", "increment", Envelope::json(&1)?).await?;
//! assert_eq!(out.to_json()?, serde_json::json!(6));
//!
//! // Serve until Ctrl-C: host.run(async { tokio::signal::ctrl_c().await.ok(); }).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Module map, from the ground floor up (dependencies point downward only; the repository's
//! `ARCHITECTURE.md` says more):
//! - [`model`]: what every layer shares: actor keys, the payload [`Envelope`], the coordination
//!   records and the coordination contract [`model::Store`].
//! - [`clock`], [`time`]: injected time, and durations as users write them.
//! - [`profile`]: the security profiles, `dev` and `prod`, and the check of what a process is
//!   about to run with.
//! - [`cluster`]: the cluster state view (`GET /api/cluster/state`), a pure function from one
//!   node's observations to a versioned document.
//! - [`store`]: the stores: memory, and SQLite and PostgreSQL (features `sqlite`, `postgres`)
//!   through one SQL implementation.
//! - [`net`]: the cluster CA and TLS ([`net::pki`], [`net::tls`]), and, internal to the crate,
//!   the wire frames, the peer transport and the runtime protocol; the only module that knows
//!   WebTransport.
//! - [`actor`](mod@actor): what users write and call: [`actor::Actor`], [`ActorRef`], [`Service`],
//!   [`State`], alarms.
//! - [`host`]: one process's actor host: activations, turns, placement, forwarding, alarms,
//!   idle deactivation, and its builders ([`Host::local`], [`Host::remote`]).
//! - `runtime` (feature `runtime`): the remote topology's control plane: configuration,
//!   admission and certificate issuance over the runtime protocol.
//! - `http` (feature `http`): the HTTP control API of the docs' curl examples, behind a guard
//!   (JSON content type, same origin, loopback `Host`, optional bearer token).
//! - [`builtin`]: ready-made actors a host registers with `.builtin(..)`: a rate limiter and
//!   one-shot signals.
//! - [`testing`]: an in-process host on a virtual clock for unit-testing actors.

extern crate self as francis;

pub mod actor;
pub mod builtin;
pub mod clock;
pub mod cluster;
pub mod cron;
pub mod error;
pub mod host;
#[cfg(feature = "http")]
pub mod http;
pub mod model;
pub mod net;
pub mod profile;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod time;

pub use actor::{
    ActorContext, ActorRef, AlarmBuilder, AlarmSpec, Disposition, Envelope, HostStatus, JobBuilder,
    JobError, JobFailed, JobFailure, JobId, JobSpec, RawRef, Service, State, Topology,
};
pub use error::{ActorFailure, CallError, Error, MAX_NAME_BYTES};
pub use francis_macros::actor;
pub use host::{ActorOptions, Host};
pub use model::{JobInfo, JobStatus};
pub use profile::Profile;

/// The internals the project's own benches and tests use (the raw peer transport, wire frames,
/// the runtime protocol). Not a public API: no stability is promised.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    /// The PSK bootstrap's proofs.
    pub mod bootstrap {
        pub use crate::net::runtime::bootstrap::*;
    }
    /// The runtime protocol's messages.
    pub mod messages {
        pub use crate::net::runtime::messages::*;
    }
    /// The limits servers apply to connections before they are trusted.
    pub mod gate {
        pub use crate::net::gate::*;
    }
    /// The peer transport.
    pub mod peer {
        pub use crate::net::peer::*;
    }
    /// Wire frames and error codes.
    pub mod wire {
        pub use crate::net::wire::*;
    }
}

/// Re-exports for macro-generated code. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::clock::BoxFuture;
    pub use serde;
}

/// The names an actor file usually needs: `use francis::prelude::*;`.
pub mod prelude {
    pub use crate::actor::{
        Actor, ActorContext, ActorRef, Disposition, Envelope, JobError, JobFailed, JobFailure,
        Service, State,
    };
    pub use crate::error::{CallError, Error};
    pub use crate::host::{ActorOptions, Host};
    pub use serde::{Deserialize, Serialize};
}
