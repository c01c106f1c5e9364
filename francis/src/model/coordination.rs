//! The coordination contract: the [`Store`] trait, what every store is opened with
//! ([`StoreOptions`]) and its errors ([`StoreError`]).
//!
//! [`Store`] is the one coordination trait of Francis. In the local topology a host talks to a
//! store directly (memory, SQLite or PostgreSQL, in [`crate::store`]); in the remote topology the
//! runtime owns a store and hosts reach it through a client that implements this same trait.
//!
//! Invariants every implementation keeps (checked by the store conformance suite):
//! - an actor has at most one placement row, and only on a healthy host;
//! - a host is healthy while its last heartbeat is newer than `now - health_check_deadline`;
//! - an alarm is leased by at most one holder at a time, and leased operations fail once the
//!   lease expired or the alarm was replaced;
//! - expired state is invisible at once and removed by [`Store::cleanup`].

use std::time::Duration;

use async_trait::async_trait;

use super::jobs::{JobInfo, JobRecord};
use super::key::{ActorKey, HostId, new_host_id};
use super::operations::{DeadLetter, DeadLetterQuery};
use super::records::{
    AlarmCompletion, AlarmLease, AlarmRecord, CleanupStats, ClusterIdentity, ClusterObservation,
    FetchAlarms, HostInfo, HostRegistration, ListStatesOptions, LookupOptions, Placement,
    StateList,
};
use crate::clock::SharedClock;

/// Settings every store needs to judge time-based facts.
#[derive(Clone)]
pub struct StoreOptions {
    /// Where the store reads "now" from.
    pub clock: SharedClock,
    /// A host whose last heartbeat is older than this is treated as dead everywhere.
    pub health_check_deadline: Duration,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("health_check_deadline", &self.health_check_deadline)
            .finish_non_exhaustive()
    }
}

/// Errors from a [`Store`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A healthy host already holds this address.
    #[error(
        "a healthy host is already registered at address {address}; stop it or use another address"
    )]
    HostAlreadyRegistered {
        /// The contested address.
        address: String,
    },
    /// The host is unknown or its heartbeat expired; it must stop serving and register again.
    #[error(
        "host {host_id} is not registered (unknown, or its heartbeat expired); it must register again"
    )]
    HostUnregistered {
        /// The host.
        host_id: HostId,
    },
    /// No healthy host can take this actor (type unsupported, or every host at its limit).
    #[error(
        "no healthy host can run actor type {actor_type:?}: none registers it, or all are at their concurrency limit"
    )]
    NoHost {
        /// The actor type.
        actor_type: String,
    },
    /// The actor has no placement and the lookup was active-only.
    #[error("actor {key} is not active")]
    NotActive {
        /// The actor.
        key: ActorKey,
    },
    /// The cluster already holds as many healthy hosts as its `maxHosts` admits.
    #[error(
        "the cluster is full: it admits {max_hosts} healthy hosts (maxHosts) and has that many; \
         stop a host to free a place, or raise maxHosts (the value is fixed while any host is \
         healthy: change it on every host and runtime, then restart them all)"
    )]
    ClusterFull {
        /// The cluster's `maxHosts`.
        max_hosts: u32,
    },
    /// The registering process's `maxHosts` is not the one the cluster's healthy hosts joined
    /// with.
    #[error(
        "this process is configured with maxHosts {configured}, but the cluster's healthy hosts \
         joined with maxHosts {stored} (0 = unlimited); give every host and runtime of the \
         cluster the same maxHosts (a new value takes effect once no host is healthy)"
    )]
    MaxHostsMismatch {
        /// The value the cluster recorded.
        stored: u32,
        /// The value this registration carried.
        configured: u32,
    },
    /// The stored data or a request is invalid (e.g. a malformed interval).
    #[error("invalid store data: {0}")]
    Invalid(String),
    /// The database failed.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying schema migrations failed.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[error("schema migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A store that is reached over the network could not be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// The durable store and coordination API shared by every topology.
///
/// All methods are safe to call concurrently from many hosts (processes) sharing one store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The options this store was opened with.
    fn options(&self) -> &StoreOptions;

    // ---- hosts -------------------------------------------------------------------------------

    /// Register a host. Expired hosts are pruned first (with their placements), so a crashed
    /// host can re-register at its address once its heartbeat expired; a healthy host at the
    /// same address gives [`StoreError::HostAlreadyRegistered`].
    ///
    /// Cluster admission runs in the same transaction, after the pruning: with no healthy host
    /// the registration's `max_hosts` becomes the cluster's; otherwise a different value gives
    /// [`StoreError::MaxHostsMismatch`], and a cluster holding `max_hosts` (> 0) healthy hosts
    /// gives [`StoreError::ClusterFull`]. Concurrent registrations are admitted one at a time.
    ///
    /// The provided implementation registers the host under a fresh ID with
    /// [`Store::reattach_host`].
    async fn register_host(&self, registration: &HostRegistration) -> Result<HostId, StoreError> {
        let host_id = new_host_id();
        self.reattach_host(&host_id, registration).await?;
        Ok(host_id)
    }

    /// Register a host under an ID it already had (a remote host reconnecting to the runtime).
    /// If the ID's registration is still healthy it is refreshed in place (new address, actor
    /// types and heartbeat) and `true` is returned: the host keeps its actors. Otherwise the
    /// host is registered anew under the same ID and `false` is returned: whatever it ran
    /// before may have moved, and it must have dropped it. Expired hosts are pruned first; a
    /// healthy *other* host at the address gives [`StoreError::HostAlreadyRegistered`].
    /// Registering anew goes through cluster admission as [`Store::register_host`] does; a
    /// refreshed registration does not (it already holds its place).
    async fn reattach_host(
        &self,
        host_id: &str,
        registration: &HostRegistration,
    ) -> Result<bool, StoreError>;

    /// Record a heartbeat. Fails with [`StoreError::HostUnregistered`] if the host is unknown or
    /// already expired: an expired host can never revive itself.
    async fn heartbeat(&self, host_id: &str) -> Result<(), StoreError>;

    /// Remove a host and, with it, its placements (which releases their alarms' leases).
    /// Returns [`StoreError::HostUnregistered`] if it was unknown or already expired (the rows
    /// are deleted anyway).
    async fn unregister_host(&self, host_id: &str) -> Result<(), StoreError>;

    /// The healthy hosts.
    async fn list_hosts(&self) -> Result<Vec<HostInfo>, StoreError>;

    // ---- placement ---------------------------------------------------------------------------

    /// Find the host of an actor, placing it on a random healthy host that supports its type and
    /// has capacity when it has no live placement (unless `active_only`). Atomic: concurrent
    /// lookups of one actor from many hosts all get the same answer.
    async fn lookup_actor(
        &self,
        key: &ActorKey,
        options: &LookupOptions,
    ) -> Result<Placement, StoreError>;

    /// Delete an actor's placement, but only if `host_id` holds it (a host never removes another
    /// host's placement). Releases the leases of the actor's alarms. Returns whether a row was
    /// deleted.
    async fn remove_actor(&self, key: &ActorKey, host_id: &str) -> Result<bool, StoreError>;

    // ---- state -------------------------------------------------------------------------------

    /// An actor's state, or `None` if it has none or it expired.
    async fn get_state(&self, key: &ActorKey) -> Result<Option<Vec<u8>>, StoreError>;

    /// Write an actor's state. With a TTL the state expires after it; without one any previous
    /// expiry is cleared.
    async fn set_state(
        &self,
        key: &ActorKey,
        data: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;

    /// Delete an actor's state. Returns whether live state existed.
    async fn delete_state(&self, key: &ActorKey) -> Result<bool, StoreError>;

    /// List the live states of one actor type, ordered by actor ID.
    async fn list_states(
        &self,
        actor_type: &str,
        options: &ListStatesOptions,
    ) -> Result<StateList, StoreError>;

    // ---- alarms ------------------------------------------------------------------------------

    /// Create or replace an alarm. Re-setting identical properties (handler, due, interval,
    /// TTL, data) is a no-op that keeps the alarm's ID and any live lease; any change gives the
    /// alarm a new ID, resets its attempts and drops its lease.
    async fn set_alarm(
        &self,
        key: &ActorKey,
        name: &str,
        alarm: &AlarmRecord,
    ) -> Result<(), StoreError>;

    /// An alarm, or `None`.
    async fn get_alarm(
        &self,
        key: &ActorKey,
        name: &str,
    ) -> Result<Option<AlarmRecord>, StoreError>;

    /// Delete an alarm (and so invalidate any lease on it). Returns whether it existed.
    async fn delete_alarm(&self, key: &ActorKey, name: &str) -> Result<bool, StoreError>;

    /// Lease alarms due by `request.horizon_ms` whose lease is free or expired and whose actor is
    /// unplaced, placed on an unhealthy host, or placed on one of `request.hosts`. Unplaced
    /// actors are placed on a requested host with capacity. Concurrent fetches from many hosts
    /// lease each alarm exactly once. Ordered by due time.
    async fn fetch_and_lease_alarms(
        &self,
        request: &FetchAlarms,
    ) -> Result<Vec<AlarmLease>, StoreError>;

    /// The alarm behind a lease, if the lease is still valid (same alarm ID and lease ID, not
    /// expired); `None` otherwise.
    async fn get_leased_alarm(&self, lease: &AlarmLease)
    -> Result<Option<AlarmRecord>, StoreError>;

    /// Finish a leased occurrence. Returns `None` if the lease was no longer valid (nothing was
    /// changed), else the lease as it stands after the change (refreshed when kept).
    async fn complete_leased_alarm(
        &self,
        lease: &AlarmLease,
        completion: &AlarmCompletion,
        lease_duration: Duration,
    ) -> Result<Option<AlarmLease>, StoreError>;

    /// Give a lease up so another fetch (possibly on another host) can take the alarm.
    /// Returns whether the lease was still valid.
    async fn release_alarm_lease(&self, lease: &AlarmLease) -> Result<bool, StoreError>;

    /// Extend every live lease on alarms whose actor is placed on `host_id`, returning them.
    async fn renew_alarm_leases(
        &self,
        host_id: &str,
        lease_duration: Duration,
    ) -> Result<Vec<AlarmLease>, StoreError>;

    /// Keep a dead letter for the leased alarm's current occurrence, which failed `attempts`
    /// times, the last with `error` (cut to [`super::operations::MAX_RECORDED_ERROR_BYTES`]):
    /// its handler, payload and nominal time are read from the alarm itself. Returns whether
    /// the lease was valid (nothing is written otherwise). Recording the same occurrence twice
    /// keeps the first.
    async fn record_dead_letter(
        &self,
        lease: &AlarmLease,
        attempts: u32,
        error: &str,
    ) -> Result<bool, StoreError>;

    // ---- jobs --------------------------------------------------------------------------------

    /// Dispatch a job to an actor: store it as a row of the alarm engine named
    /// [`job_alarm_name`](super::jobs::job_alarm_name) of its idempotency key (or of its new
    /// ID). With a key, the first write wins: while a job with that key is pending, running, or
    /// succeeded within [`JOB_RESULT_RETENTION`](super::jobs::JOB_RESULT_RETENTION), its ID is
    /// returned and nothing is written. Returns the job's ID.
    async fn dispatch_job(&self, key: &ActorKey, job: &JobRecord) -> Result<String, StoreError>;

    /// A job by ID: pending or running (a live row), succeeded (a remembered result), or
    /// dead-lettered (its newest dead letter, when it has no live row). `None` if unknown.
    async fn get_job(&self, job_id: &str) -> Result<Option<JobInfo>, StoreError>;

    /// An actor's jobs: live ones, remembered successes and dead-lettered ones, by job ID.
    async fn list_jobs(&self, key: &ActorKey) -> Result<Vec<JobInfo>, StoreError>;

    /// Cancel an actor's pending (or running) job: its row is deleted, so no further
    /// occurrence runs and a running one's lease is void. Returns whether it existed.
    async fn cancel_job(&self, key: &ActorKey, job_id: &str) -> Result<bool, StoreError>;

    /// Dead letters of jobs (not of plain alarms), newest first.
    async fn list_dead_jobs(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>, StoreError>;

    /// One dead letter of a job, by its dead-letter ID.
    async fn get_dead_job(&self, id: &str) -> Result<Option<DeadLetter>, StoreError>;

    /// Delete one dead letter of a job. Returns whether it existed.
    async fn delete_dead_job(&self, id: &str) -> Result<bool, StoreError>;

    /// Run a dead-lettered job again: in one transaction, delete the dead letter and dispatch
    /// its method and payload as a fresh one-shot job due now (a new job ID, no key, no
    /// repeat). Concurrent retries of one letter run it once. Returns the new job's ID, or
    /// `None` if the dead letter no longer exists.
    async fn retry_dead_job(&self, id: &str) -> Result<Option<String>, StoreError>;

    /// Delete the dead letters of jobs dropped before `before_ms`: how many.
    async fn purge_dead_jobs(&self, before_ms: i64) -> Result<u64, StoreError>;

    // ---- maintenance -------------------------------------------------------------------------

    /// Check this process's cluster CAs, given as the fingerprints of its trusted CA
    /// certificates (signing CA first), against the ones the store recorded: record them when
    /// the store has none or when the two sets share a CA (a rotation adds or drops one at a
    /// time); leave the record alone otherwise, and say so. Hosts and runtime replicas call it
    /// before they register, and refuse to start on [`ClusterIdentity::Mismatch`].
    async fn claim_cluster_identity(
        &self,
        fingerprints: &[String],
    ) -> Result<ClusterIdentity, StoreError>;

    /// Everything a view of the cluster's state needs, read at one instant (one snapshot where
    /// the database has them) and changing nothing: every host row still stored (healthy, or
    /// expired and not pruned yet, judged with this store's clock and health-check deadline),
    /// the placements per host and actor type, and the alarms due now per host of their actor's
    /// placement. Only a store a process owns answers it (a local host's, or a runtime's); a
    /// worker's link to its runtime refuses.
    async fn observe_cluster(&self) -> Result<ClusterObservation, StoreError>;

    /// Delete expired hosts (with their placements), expired state, and job results older
    /// than [`JOB_RESULT_RETENTION`](super::jobs::JOB_RESULT_RETENTION).
    async fn cleanup(&self) -> Result<CleanupStats, StoreError>;

    /// The operations plane's records (audit trail, dead letters, draining hosts), if this
    /// store is one a process owns. `None` (the default) for a worker's link to its runtime.
    fn operations(&self) -> Option<&dyn super::operations::OperationsStore> {
        None
    }
}
