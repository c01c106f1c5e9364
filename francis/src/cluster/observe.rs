//! What the cluster state view is computed from: [`Observations`], the facts one node has
//! gathered at one moment (the store's host records, its own links, recent departures and
//! events), and [`Thresholds`], the limits that turn ages and failure counts into a lifecycle.
//! Whoever answers the request fills these in; [`compute`](super::compute) does the rest.

use std::collections::BTreeMap;
use std::time::Duration;

use super::state::{Caller, NodeRef, TimelineEvent};

/// Failed calls in a row after which a link is down and a host the store still counts
/// healthy is partitioned. The same number after which a host stops placing actors on a peer.
pub const DEFAULT_PARTITIONED_AFTER_FAILURES: u32 = 3;

/// The health-check deadline [`Thresholds::default`] derives from (the runtime's default
/// `healthCheckDeadline`).
pub const DEFAULT_HEALTH_CHECK_DEADLINE: Duration = Duration::from_secs(20);

/// How long a host that left or was declared dead stays listed (as offline) by default.
pub const DEFAULT_KEEP_DEPARTED: Duration = Duration::from_secs(300);

/// The limits that decide a node's lifecycle and a link's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// A heartbeat at least this old (milliseconds) makes a node stale.
    pub stale_after_ms: u64,
    /// A heartbeat at least this old (milliseconds) makes a node offline: the health-check
    /// deadline, after which the store no longer counts it healthy.
    pub offline_after_ms: u64,
    /// Failed calls in a row after which a link is down and its host partitioned.
    pub partitioned_after_consecutive_failures: u32,
    /// How long (milliseconds) a departed host stays listed.
    pub keep_departed_ms: u64,
}

impl Thresholds {
    /// The thresholds for a cluster whose health-check deadline is `deadline`: stale after
    /// half of it without a heartbeat, offline at it, partitioned after
    /// [`DEFAULT_PARTITIONED_AFTER_FAILURES`] failed calls in a row, departed hosts listed for
    /// [`DEFAULT_KEEP_DEPARTED`].
    pub fn from_deadline(deadline: Duration) -> Self {
        let offline_after_ms = millis(deadline);
        Thresholds {
            stale_after_ms: offline_after_ms / 2,
            offline_after_ms,
            partitioned_after_consecutive_failures: DEFAULT_PARTITIONED_AFTER_FAILURES,
            keep_departed_ms: millis(DEFAULT_KEEP_DEPARTED),
        }
    }
}

impl Default for Thresholds {
    /// [`Thresholds::from_deadline`] of [`DEFAULT_HEALTH_CHECK_DEADLINE`].
    fn default() -> Self {
        Thresholds::from_deadline(DEFAULT_HEALTH_CHECK_DEADLINE)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Everything one node knows about the cluster at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    /// Now (Unix milliseconds), from the node's clock.
    pub now_ms: i64,
    /// The node answering the request.
    pub answered_by: NodeRef,
    /// The security profile it runs under.
    pub profile: String,
    /// The authenticated caller of the request.
    pub caller: Option<Caller>,
    /// The hosts the store has registered.
    pub hosts: Vec<HostObservation>,
    /// The runtime replicas this node knows (the answering runtime need not be listed).
    pub runtimes: Vec<RuntimeObservation>,
    /// The links this node has called other nodes over.
    pub links: Vec<LinkObservation>,
    /// Hosts that left or were declared dead recently.
    pub recent_departures: Vec<DepartedHost>,
    /// Events this node recorded (admin actions, takeovers, dropped alarms, ...).
    pub events: Vec<TimelineEvent>,
}

impl Observations {
    /// Observations with nothing seen yet.
    pub fn new(now_ms: i64, answered_by: NodeRef, profile: impl Into<String>) -> Self {
        Observations {
            now_ms,
            answered_by,
            profile: profile.into(),
            caller: None,
            hosts: Vec::new(),
            runtimes: Vec::new(),
            links: Vec::new(),
            recent_departures: Vec::new(),
            events: Vec::new(),
        }
    }
}

/// A host as the store records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostObservation {
    /// Its host ID.
    pub id: String,
    /// Its peer address.
    pub address: String,
    /// The Francis version it runs, if known.
    pub version: Option<String>,
    /// Its last heartbeat (Unix milliseconds).
    pub last_heartbeat_ms: i64,
    /// Whether the store counts it healthy.
    pub registered_healthy: bool,
    /// Its active actors per actor type.
    pub actor_counts: BTreeMap<String, u64>,
    /// Alarms due now on its actors.
    pub alarms_due: u64,
    /// Whether an operator drained it.
    pub draining: bool,
    /// Whether it showed a certificate of this cluster's CA (`None`: not checked).
    pub trusted: Option<bool>,
}

/// A runtime replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeObservation {
    /// Its name.
    pub id: String,
    /// The address workers reach it at.
    pub address: String,
    /// The Francis version it runs, if known.
    pub version: Option<String>,
    /// When it was last seen (Unix milliseconds); ignored for the answering runtime.
    pub last_seen_ms: Option<i64>,
    /// Whether it showed a certificate of this cluster's CA (`None`: not checked).
    pub trusted: Option<bool>,
}

/// This node's calls over one link, in a recent window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkObservation {
    /// The host at the other end, if known.
    pub to_host_id: Option<String>,
    /// The address called.
    pub to_address: String,
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub errors: u64,
    /// Failed calls since the last success (0: the last call succeeded).
    pub consecutive_failures: u32,
    /// The last successful call (Unix milliseconds).
    pub last_success_ms: Option<i64>,
    /// The last failed call (Unix milliseconds).
    pub last_failure_ms: Option<i64>,
    /// Why the last failed call failed.
    pub last_error: Option<String>,
    /// Recent call latencies (milliseconds), in any order; non-finite values are ignored.
    pub latency_samples_ms: Vec<f64>,
}

/// How a host went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Departure {
    /// It unregistered as it shut down.
    Left,
    /// Its heartbeats stopped and it was removed.
    DeclaredDead,
}

/// A host that went away recently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartedHost {
    /// Its host ID.
    pub id: String,
    /// Its peer address.
    pub address: String,
    /// When it went away (Unix milliseconds).
    pub left_at_ms: i64,
    /// How.
    pub how: Departure,
}
