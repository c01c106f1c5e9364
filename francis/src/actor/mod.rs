//! What users write and call: actors and their method table, typed and untyped references, the
//! service handle, activation context, durable state and alarm specifications.

pub mod alarm;
pub mod context;
pub mod dispatch;
pub mod job;
pub mod reference;
pub mod service;
pub mod state;

pub use crate::model::{CodecError, Envelope, Format};
pub use alarm::{AlarmBuilder, AlarmSpec, Due, Ttl};
pub use context::ActorContext;
pub use dispatch::{Actor, DispatchError, MethodInfo, MethodKind, Proxy};
pub use job::{Disposition, JobBuilder, JobError, JobFailed, JobFailure, JobId, JobSpec};
pub use reference::{ActorRef, RawRef};
pub use service::{HostHandle, HostStatus, InvokeOptions, Service, Topology};
pub use state::{State, StatePage};
