//! The cluster state view, and the pure half of operators' actions ([`actions`]).
//!
//! The state view is what `GET /api/cluster/state` answers and `francis cluster status`
//! shows. [`compute`] is a pure function from what one node has observed ([`Observations`])
//! and a few limits ([`Thresholds`]) to a versioned document ([`ClusterState`]); it reads no
//! clock, store or network, so every rule below is tested without them. [`Timeline`] keeps the
//! recent events a node records for it.
//!
//! # Nodes
//!
//! The view lists the runtime replicas, then the hosts, each ordered by ID. The node that
//! answered has `is_self`. A host's **lifecycle** comes from the age of its last heartbeat as
//! the store recorded it, the store's own health judgement, and the answering node's calls to
//! it, checked in this order:
//!
//! 1. **offline**: the heartbeat is at least `offline_after` old (the health-check deadline),
//!    or the store does not count the host healthy, or the host left or was declared dead
//!    (a departed host stays listed, as offline with `left_at_ms`, for `keep_departed`, unless
//!    it registered again);
//! 2. **partitioned**: the store counts it healthy, but the answering node's link to it
//!    (matched by host ID, or by address when the link's host ID is unknown) has failed
//!    `partitioned_after_consecutive_failures` calls in a row or more: the same rule after
//!    which a host stops placing actors on a peer;
//! 3. **stale**: the heartbeat is at least `stale_after` old;
//! 4. **online**: otherwise.
//!
//! Every boundary belongs to the later state: a heartbeat exactly `stale_after` old is stale,
//! exactly `offline_after` old is offline (the store stops counting a host healthy at the
//! deadline). A heartbeat from the future (clocks apart) is 0 old. [`Thresholds::from_deadline`]
//! sets `stale_after` to half the deadline and `offline_after` to the deadline.
//!
//! A runtime replica has no heartbeat: the answering runtime is online; another replica is
//! judged by when it was last seen, with the same stale and offline ages (never seen: offline)
//! and the same partition rule. The answering host is judged like any other host, from its
//! heartbeat as the store has it: a host whose heartbeats do not reach the store shows stale or
//! offline even while it answers; one the store has not registered is listed as offline.
//!
//! # Edges
//!
//! One edge per link the answering node has called over, ordered by target. Its state is
//! **down** once its last `partitioned_after_consecutive_failures` calls or more failed,
//! **unknown** while there were no calls, **degraded** when some calls failed (the last one,
//! or earlier ones in the window), and **up** otherwise. `latency_p95_ms` is the nearest-rank
//! 95th percentile of its recent latency samples (`null` without samples).
//!
//! # Timeline
//!
//! The events the node recorded, plus one `host_left` or `host_declared_dead` event per recent
//! departure (unless an event of that kind, subject and time is already there), newest first
//! (events of the same millisecond: the later recorded first), at most [`TIMELINE_LIMIT`].

pub mod actions;
mod compute;
mod observe;
mod state;
mod timeline;
mod watch;

pub use compute::{TIMELINE_LIMIT, compute, p95};
pub use observe::{
    DEFAULT_HEALTH_CHECK_DEADLINE, DEFAULT_KEEP_DEPARTED, DEFAULT_PARTITIONED_AFTER_FAILURES,
    DepartedHost, Departure, HostObservation, LinkObservation, Observations, RuntimeObservation,
    Thresholds,
};
pub use state::{
    API_MAJOR, API_VERSION, ApiVersionError, Caller, ClusterState, Context, Edge, EdgeState,
    EventKind, Lifecycle, Node, NodeKind, NodeRef, Role, TimelineEvent, Trust, UnknownRole,
    check_api_version,
};
pub use timeline::{TIMELINE_CAPACITY, Timeline};
pub use watch::{ClusterWatch, hosts_of};
