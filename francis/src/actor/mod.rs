//! The model users see: actors and their method table, typed and untyped references, the
//! service handle, activation context, durable state and alarm specifications.

pub mod alarm;
pub mod context;
pub mod dispatch;
pub mod envelope;
pub mod reference;
pub mod service;
pub mod state;

pub use alarm::{AlarmBuilder, AlarmSpec, Due, Ttl};
pub use context::ActorContext;
pub use dispatch::{Actor, DispatchError, MethodInfo, MethodKind, Proxy};
pub use envelope::{CodecError, Envelope, Format};
pub use reference::{ActorRef, RawRef};
pub use service::{HostHandle, HostStatus, InvokeOptions, Service, Topology};
pub use state::{State, StatePage};
