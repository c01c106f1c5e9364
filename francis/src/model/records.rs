//! The records coordination exchanges: host registrations, placements, state pages, alarms and
//! their leases. Stores keep them, hosts act on them, the runtime protocol carries them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::key::{ActorKey, HostId};

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRegistration {
    /// The peer address other hosts use to reach this host (`host:port`).
    pub address: String,
    /// The actor types this host serves.
    pub actor_types: Vec<ActorTypeRegistration>,
    /// The Francis version of the registering process (e.g. `0.4.0`), shown by the cluster's
    /// state view; empty when unknown (a remote host that did not say).
    #[serde(default)]
    pub version: String,
    /// How many healthy hosts the cluster admits (`maxHosts`; 0 = unlimited). The first host
    /// to join an empty cluster fixes the value; while any host is healthy, a registration with
    /// another value is refused. In the remote topology the runtime sets it from its own
    /// configuration.
    #[serde(default)]
    pub max_hosts: u32,
}

/// A healthy host, as listed by [`Store::list_hosts`](super::Store::list_hosts).
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

/// Options for [`Store::lookup_actor`](super::Store::lookup_actor).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LookupOptions {
    /// Only report an existing placement; never allocate one.
    pub active_only: bool,
    /// When set, only these hosts may be chosen for a new placement, and an existing placement
    /// on another host is reported as [`StoreError::NoHost`](super::StoreError::NoHost). Never sent over the runtime
    /// protocol: a worker cannot narrow placement.
    #[serde(skip)]
    pub allowed_hosts: Option<Vec<HostId>>,
    /// Hosts a new placement must not go to (the caller cannot reach them now); an existing
    /// placement on one is still reported. Never sent over the runtime protocol.
    #[serde(skip)]
    pub avoid_hosts: Vec<HostId>,
}

/// Options for [`Store::list_states`](super::Store::list_states).
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
    /// Repeat schedule, a 5-field cron expression evaluated in UTC (see [`crate::cron::Cron`]);
    /// `None` unless the alarm repeats by cron. At most one of `interval` and `cron` is set.
    #[serde(default)]
    pub cron: Option<String>,
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
            cron: None,
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
    /// Delete a one-shot that ran to success: as [`AlarmCompletion::Delete`], and a job is
    /// remembered as succeeded (see [`crate::model::JobStatus::Succeeded`]).
    Succeeded,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchAlarms {
    /// Hosts that may run the alarms (a local host passes itself; a runtime passes the hosts it
    /// fetches for). Actors not placed yet are placed on one of these. Never sent over the
    /// runtime protocol: the runtime fetches for the session's own host.
    #[serde(skip)]
    pub hosts: Vec<HostId>,
    /// Fetch alarms due at or before this time (Unix ms).
    pub horizon_ms: i64,
    /// How long the leases last.
    pub lease_duration: Duration,
    /// At most this many alarms.
    pub batch_size: u32,
}

/// What [`Store::cleanup`](super::Store::cleanup) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupStats {
    /// Hosts whose heartbeat expired, with their placements.
    pub hosts: u64,
    /// Expired state rows.
    pub states: u64,
    /// Results of succeeded jobs past their retention.
    #[serde(default)]
    pub job_results: u64,
}

/// What [`Store::claim_cluster_identity`](super::Store::claim_cluster_identity) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterIdentity {
    /// The store knew no cluster yet: the caller's CAs are now recorded as the cluster's.
    Recorded,
    /// The caller's CAs share at least one with the record (the same cluster, perhaps in the
    /// middle of a key rotation); the record now holds the caller's set.
    Matched,
    /// No CA in common with the record: the caller belongs to another cluster. The record is
    /// unchanged; these are its fingerprints.
    Mismatch {
        /// The recorded CA fingerprints.
        recorded: Vec<String>,
    },
}

/// What [`Store::observe_cluster`](super::Store::observe_cluster) saw: every host row, the
/// placements per host and actor type, and the due alarms per host, read at one instant (in one
/// snapshot where the database has them). The raw facts a cluster state view is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterObservation {
    /// The store's clock when it looked (Unix ms): hosts' health and alarms' dueness are judged
    /// at this instant.
    pub observed_at_ms: i64,
    /// The health-check deadline the hosts were judged with (ms).
    pub health_check_deadline_ms: u64,
    /// The cluster's recorded `maxHosts` (0 = unlimited), fixed by the first host to join an
    /// empty cluster; `None` before any host joined.
    pub max_hosts: Option<u32>,
    /// Every host row the store still holds, healthy or expired but not pruned yet, ordered by
    /// host ID.
    pub hosts: Vec<ObservedHost>,
    /// How many actors are placed on each host, per actor type, ordered by host ID then type.
    /// Placements on expired hosts are included (they are pruned with their host).
    pub placements: Vec<PlacementCount>,
    /// How many alarms are due (due time at or before `observed_at_ms`) per host their actor is
    /// placed on; alarms of unplaced actors are counted under `host_id: None`. Ordered with
    /// `None` first, then by host ID; hosts without due alarms are left out.
    pub due_alarms: Vec<DueAlarmCount>,
}

/// One host row, as [`ClusterObservation`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedHost {
    /// The host's ID.
    pub host_id: HostId,
    /// Its peer address.
    pub address: String,
    /// The Francis version it registered with, if it said.
    pub version: Option<String>,
    /// Its last heartbeat (Unix ms).
    pub last_heartbeat_ms: i64,
    /// Whether its last heartbeat is within the health-check deadline at `observed_at_ms`. An
    /// unhealthy host takes no new placements; its row goes at the next cleanup or registration.
    pub healthy: bool,
    /// Whether an operator drained it: it takes no new placements.
    #[serde(default)]
    pub draining: bool,
    /// The actor types it registered, ordered by name.
    pub actor_types: Vec<ActorTypeRegistration>,
}

/// How many actors of one type are placed on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementCount {
    /// The host.
    pub host_id: HostId,
    /// The actor type.
    pub actor_type: String,
    /// How many of its actors are placed there.
    pub actors: u64,
}

/// How many due alarms belong to the actors placed on one host (or to unplaced actors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueAlarmCount {
    /// The host the alarms' actors are placed on; `None` for actors placed nowhere.
    pub host_id: Option<HostId>,
    /// How many alarms are due.
    pub alarms: u64,
}
