//! The ground floor: the values and the one contract that every other layer shares.
//!
//! - [`key`]: how actors and hosts are addressed ([`ActorKey`], [`HostId`]).
//! - [`payload`]: an encoded payload ([`Envelope`]): method arguments, results, alarm data and
//!   actors' errors, in MessagePack or JSON.
//! - [`records`]: what coordination keeps and exchanges (registrations, placements, state pages,
//!   alarms and their leases).
//! - [`operations`]: what the operations plane keeps (audit trail, dead letters, draining hosts)
//!   and the [`OperationsStore`] trait of stores a process owns.
//! - [`coordination`]: the [`Store`] trait that stores implement and hosts, the runtime and its
//!   protocol call, with [`StoreOptions`] and [`StoreError`].
//!
//! This module depends on nothing above it (only [`crate::clock`] for the store's clock).

pub mod coordination;
pub mod jobs;
pub mod key;
pub mod operations;
pub mod payload;
pub mod records;

pub use coordination::{Store, StoreError, StoreOptions};
pub use jobs::{JobInfo, JobRecord, JobStatus};
pub use key::{ActorKey, HostId};
pub use operations::{
    AuditQuery, AuditRecord, AuditResult, DeadLetter, DeadLetterQuery, OperationsStore,
};
pub use payload::{CodecError, Envelope, Format};
pub use records::{
    ActorTypeRegistration, AlarmCompletion, AlarmLease, AlarmRecord, CleanupStats, ClusterIdentity,
    ClusterObservation, DueAlarmCount, FetchAlarms, HostInfo, HostRegistration, ListStatesOptions,
    LookupOptions, ObservedHost, Placement, PlacementCount, StateEntry, StateList,
};
