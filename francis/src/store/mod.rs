//! The durable store: hosts, placement, actor state and alarms.
//!
//! [`Store`] is the one coordination trait of Francis. In the local topology a host talks to a
//! store directly (memory, SQLite, and later PostgreSQL); in the remote topology the runtime owns
//! a store and hosts reach it through a client that implements this same trait. The store knows
//! nothing of hosts' actors in memory or of the network; it only keeps rows consistent.
//!
//! Invariants every implementation keeps (checked by the conformance suite in `conformance`):
//! - an actor has at most one placement row, and only on a healthy host;
//! - a host is healthy while its last heartbeat is newer than `now - health_check_deadline`;
//! - an alarm is leased by at most one holder at a time, and leased operations fail once the
//!   lease expired or the alarm was replaced;
//! - expired state is invisible at once and removed by [`Store::cleanup`].

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;

pub mod memory;
pub mod postgres;
mod rows;
mod rules;
pub mod sqlite;

#[cfg(test)]
mod conformance;

/// The address of one actor: its type and its ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActorKey {
    /// The actor type's wire name, e.g. `counter`.
    pub actor_type: String,
    /// The actor's ID within its type.
    pub actor_id: String,
}

impl ActorKey {
    /// Build a key from a type name and an ID.
    pub fn new(actor_type: impl Into<String>, actor_id: impl Into<String>) -> Self {
        ActorKey {
            actor_type: actor_type.into(),
            actor_id: actor_id.into(),
        }
    }
}

impl std::fmt::Display for ActorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.actor_type, self.actor_id)
    }
}

/// A registered host's identifier (a UUIDv7 string, time-ordered).
pub type HostId = String;

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

/// One actor type a host can run, as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorTypeRegistration {
    /// The type's wire name.
    pub actor_type: String,
    /// How long an activation may stay idle; `None` means never deactivate for idleness.
    pub idle_timeout: Option<Duration>,
    /// How many activations of this type one host may hold; 0 means unlimited.
    pub concurrency_limit: u32,
}

/// What a host tells the store when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRegistration {
    /// The peer address other hosts use to reach this host (`host:port`).
    pub address: String,
    /// The actor types this host serves.
    pub actor_types: Vec<ActorTypeRegistration>,
}

/// A healthy host, as listed by [`Store::list_hosts`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// The host's ID.
    pub host_id: HostId,
    /// Its peer address.
    pub address: String,
    /// Its last heartbeat, in Unix milliseconds.
    pub last_heartbeat_ms: i64,
}

/// Where an actor lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The owning host.
    pub host_id: HostId,
    /// That host's peer address.
    pub address: String,
    /// The actor type's idle timeout on that host (`None` = never idle).
    pub idle_timeout: Option<Duration>,
}

/// Options for [`Store::lookup_actor`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupOptions {
    /// Only report an existing placement; never allocate one.
    pub active_only: bool,
    /// When set, only these hosts may be chosen for a new placement, and an existing placement
    /// on another host is reported as [`StoreError::NoHost`] (used by the remote runtime).
    pub allowed_hosts: Option<Vec<HostId>>,
}

/// Options for [`Store::list_states`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListStatesOptions {
    /// Include each actor's state bytes.
    pub include_data: bool,
    /// Only actor IDs strictly greater than this (pagination cursor).
    pub after: Option<String>,
    /// Page size: 0 means 100, values above 1000 are capped at 1000.
    pub limit: u32,
}

/// One actor's state in a [`StateList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    /// The actor ID.
    pub actor_id: String,
    /// The state bytes, when requested.
    #[serde(with = "serde_bytes")]
    pub data: Option<Vec<u8>>,
}

/// A page of states of one actor type, ordered by actor ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateList {
    /// The entries of this page.
    pub entries: Vec<StateEntry>,
    /// Whether more entries follow the last one.
    pub has_more: bool,
}

/// A durable alarm as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRecord {
    /// The actor's alarm handler (a method wire name) that runs when the alarm fires.
    pub handler: String,
    /// When the alarm should next run (Unix ms). While retrying this is the retry time.
    pub due_ms: i64,
    /// The nominal time of the current occurrence (Unix ms): equal to `due_ms` except while an
    /// occurrence is being retried. Repeats are computed from it, so they do not drift.
    pub scheduled_ms: i64,
    /// Repeat interval, canonical ISO 8601 (e.g. `PT1M`); `None` for a one-shot alarm.
    pub interval: Option<String>,
    /// No repeat is scheduled after this time (Unix ms).
    pub ttl_ms: Option<i64>,
    /// Handler payload (MessagePack), if any.
    #[serde(with = "serde_bytes")]
    pub data: Option<Vec<u8>>,
    /// Failed executions of the current occurrence so far.
    pub attempts: u32,
}

impl AlarmRecord {
    /// A fresh alarm record due at `due_ms`, with no attempts yet.
    pub fn new(handler: impl Into<String>, due_ms: i64) -> Self {
        AlarmRecord {
            handler: handler.into(),
            due_ms,
            scheduled_ms: due_ms,
            interval: None,
            ttl_ms: None,
            data: None,
            attempts: 0,
        }
    }
}

/// A lease on one alarm occurrence, held by the host that will execute it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmLease {
    /// The actor the alarm belongs to.
    pub key: ActorKey,
    /// The alarm's name (unique per actor).
    pub name: String,
    /// The alarm's row ID; it changes whenever the alarm is replaced with different properties.
    pub alarm_id: String,
    /// This lease's ID.
    pub lease_id: String,
    /// When the occurrence should run (Unix ms).
    pub due_ms: i64,
    /// When the lease expires unless renewed (Unix ms).
    pub expires_ms: i64,
}

/// What to do with a leased alarm once its occurrence has run (or failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmCompletion {
    /// Delete the alarm (one-shot done, TTL passed, or attempts exhausted).
    Delete,
    /// Schedule the next occurrence at `due_ms` (also its nominal time) with attempts reset to 0.
    /// With `keep_lease` the lease is refreshed for this holder; otherwise it is released.
    Reschedule {
        /// Next occurrence (Unix ms).
        due_ms: i64,
        /// Keep (and refresh) the lease.
        keep_lease: bool,
    },
    /// Retry the current occurrence at `due_ms`, recording `attempts` failed executions so far.
    /// The nominal time is unchanged. With `keep_lease` the lease is refreshed.
    Retry {
        /// When to try again (Unix ms).
        due_ms: i64,
        /// Failed executions so far.
        attempts: u32,
        /// Keep (and refresh) the lease.
        keep_lease: bool,
    },
}

/// A request to fetch and lease alarms that are due soon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchAlarms {
    /// Hosts that may run the alarms (a local host passes itself; the runtime passes all
    /// hosts connected to it). Actors not placed yet are placed on one of these.
    pub hosts: Vec<HostId>,
    /// Fetch alarms due at or before this time (Unix ms).
    pub horizon_ms: i64,
    /// How long the leases last.
    pub lease_duration: Duration,
    /// At most this many alarms.
    pub batch_size: u32,
}

/// What [`Store::cleanup`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupStats {
    /// Hosts whose heartbeat expired, with their placements.
    pub hosts: u64,
    /// Expired state rows.
    pub states: u64,
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
    /// The stored data or a request is invalid (e.g. a malformed interval).
    #[error("invalid store data: {0}")]
    Invalid(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying schema migrations failed.
    #[error("schema migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A store that is reached over the network could not be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Which store a builder opens (hosts of the local topology and runtimes both choose one).
pub(crate) enum StoreSpec {
    /// [`memory::MemoryStore`].
    Memory,
    /// [`sqlite::SqliteStore`] on this file.
    Sqlite(std::path::PathBuf),
    /// [`postgres::PostgresStore`] at this URL.
    Postgres(String),
    /// A store the caller already opened.
    Shared(std::sync::Arc<dyn Store>),
}

impl StoreSpec {
    /// Open (and migrate) the store.
    pub(crate) async fn open(
        self,
        options: StoreOptions,
    ) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        Ok(match self {
            StoreSpec::Memory => std::sync::Arc::new(memory::MemoryStore::new(options)),
            StoreSpec::Sqlite(path) => {
                std::sync::Arc::new(sqlite::SqliteStore::open(&path, options).await?)
            }
            StoreSpec::Postgres(url) => {
                std::sync::Arc::new(postgres::PostgresStore::connect(&url, options).await?)
            }
            StoreSpec::Shared(store) => store,
        })
    }
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
    async fn register_host(&self, registration: &HostRegistration) -> Result<HostId, StoreError>;

    /// Register a host under an ID it already had (a remote host reconnecting to the runtime).
    /// If the ID's registration is still healthy it is refreshed in place (new address, actor
    /// types and heartbeat) and `true` is returned: the host keeps its actors. Otherwise the
    /// host is registered anew under the same ID and `false` is returned: whatever it ran
    /// before may have moved, and it must have dropped it. Expired hosts are pruned first; a
    /// healthy *other* host at the address gives [`StoreError::HostAlreadyRegistered`].
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

    // ---- maintenance -------------------------------------------------------------------------

    /// Delete expired hosts (with their placements) and expired state.
    async fn cleanup(&self) -> Result<CleanupStats, StoreError>;
}
