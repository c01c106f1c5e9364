//! The cluster state view as it goes over the wire: [`ClusterState`] and its parts, the
//! versioned JSON document `GET /api/cluster/state` answers and `francis cluster status`
//! reads. Field names are snake_case; optional values are written as `null`, never left out.
//!
//! The contract is versioned by [`API_VERSION`] (`MAJOR.MINOR`). Within a major version fields
//! are only added, so a reader ignores fields it does not know and checks the major version
//! with [`check_api_version`]. The value sets of [`NodeKind`], [`Lifecycle`], [`Trust`],
//! [`EdgeState`] and [`Role`] are closed: a new value is a new major version. Timeline event
//! kinds may grow within a major version; a reader that does not know one reads it as
//! [`EventKind::Other`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version of the cluster state contract this build writes and reads.
pub const API_VERSION: &str = "1.0";

/// The major version of [`API_VERSION`], the one a reader must match.
pub const API_MAJOR: u64 = 1;

/// Why a document's `api_version` cannot be read by this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiVersionError {
    /// It is not `MAJOR.MINOR` with two decimal numbers.
    #[error("api_version {0:?} is not MAJOR.MINOR")]
    Malformed(String),
    /// Its major version is not this build's.
    #[error("api_version {found} is not supported: this build reads {API_MAJOR}.x")]
    Unsupported {
        /// The version the document carries.
        found: String,
    },
}

/// Check that a received document's `api_version` has this build's major version (any minor
/// version: minor versions only add fields).
pub fn check_api_version(found: &str) -> Result<(), ApiVersionError> {
    let malformed = || ApiVersionError::Malformed(found.to_owned());
    let (major, minor) = found.split_once('.').ok_or_else(malformed)?;
    let number = |part: &str| {
        (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u64>().ok())
            .flatten()
    };
    let major = number(major).ok_or_else(malformed)?;
    number(minor).ok_or_else(malformed)?;
    if major == API_MAJOR {
        Ok(())
    } else {
        Err(ApiVersionError::Unsupported {
            found: found.to_owned(),
        })
    }
}

/// The cluster as one node sees it at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterState {
    /// The contract's version, [`API_VERSION`] when written by this build.
    pub api_version: String,
    /// When the view was computed (Unix milliseconds); every age in it is relative to this.
    pub generated_at_ms: i64,
    /// Who answered, and for whom.
    pub context: Context,
    /// The runtimes and hosts, runtimes first, each kind ordered by ID.
    pub nodes: Vec<Node>,
    /// The links the answering node has used, ordered by their target.
    pub edges: Vec<Edge>,
    /// Recent events, newest first, at most [`TIMELINE_LIMIT`](super::TIMELINE_LIMIT).
    pub timeline: Vec<TimelineEvent>,
}

/// Who answered the request, under which profile, and for whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Context {
    /// The node that computed the view.
    pub answered_by: NodeRef,
    /// The security profile the node runs under (`dev`, `prod`).
    pub profile: String,
    /// The authenticated caller, if the request carried an identity.
    pub caller: Option<Caller>,
}

/// A node named by kind, ID and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeRef {
    /// A host or a runtime.
    pub kind: NodeKind,
    /// Its ID (a host ID, or the runtime's name).
    pub id: String,
    /// The address it is reached at.
    pub address: String,
}

impl NodeRef {
    /// A node reference.
    pub fn new(kind: NodeKind, id: impl Into<String>, address: impl Into<String>) -> Self {
        NodeRef {
            kind,
            id: id.into(),
            address: address.into(),
        }
    }
}

/// The authenticated caller of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Caller {
    /// Who it is: a token's name, or a client certificate's identity.
    pub principal: String,
    /// What it may do.
    pub role: Role,
}

impl Caller {
    /// A caller.
    pub fn new(principal: impl Into<String>, role: Role) -> Self {
        Caller {
            principal: principal.into(),
            role,
        }
    }
}

/// The roles of the operations endpoints, each allowed what the one before it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads state, health and metrics.
    Viewer,
    /// Also runs operational actions.
    Operator,
    /// Also changes security-relevant settings.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The role's name: `viewer`, `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A name that is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role: use viewer, operator or admin")]
pub struct UnknownRole(pub String);

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    /// `viewer`, `operator` or `admin`, exactly.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| UnknownRole(name.to_owned()))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A runtime replica: the control plane of the remote topology.
    Runtime,
    /// An actor host.
    Host,
}

/// Where a node stands, as the answering node judges it (the rules are in [`super`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Heartbeating on time and reachable.
    Online,
    /// Its last heartbeat is late, but not yet past the health-check deadline.
    Stale,
    /// The store counts it healthy, but the answering node's calls to it keep failing.
    Partitioned,
    /// Past the deadline, judged unhealthy by the store, or gone.
    Offline,
}

/// Whether a node showed a certificate of this cluster's CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Its certificate was issued by this cluster's CA.
    SameClusterCa,
    /// Not checked (no connection to it yet).
    Unknown,
    /// It showed a certificate of another CA.
    Foreign,
}

/// One runtime replica or host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Node {
    /// Its ID.
    pub id: String,
    /// A host or a runtime.
    pub kind: NodeKind,
    /// The address it is reached at.
    pub address: String,
    /// The Francis version it runs, if known.
    pub version: Option<String>,
    /// Online, stale, partitioned or offline.
    pub lifecycle: Lifecycle,
    /// For a host, whether the store counts it healthy (a healthy host may be given new
    /// placements); for a runtime replica, whether it is not offline.
    pub healthy: bool,
    /// Its last heartbeat as the store recorded it, or when a runtime replica was last seen
    /// (Unix milliseconds); `null` when unknown.
    pub last_heartbeat_ms: Option<i64>,
    /// How old that heartbeat was when the view was computed (0 if it is in the future).
    pub heartbeat_age_ms: Option<u64>,
    /// When it left or was declared dead, for a host that is gone (Unix milliseconds).
    pub left_at_ms: Option<i64>,
    /// Whether its certificate is of this cluster's CA.
    pub trust: Trust,
    /// Its active actors per actor type.
    pub actors: BTreeMap<String, u64>,
    /// Its active actors in all.
    pub actors_total: u64,
    /// Alarms due now on its actors.
    pub alarms_due: u64,
    /// Whether an operator drained this host: it takes no new actors.
    #[serde(default)]
    pub draining: bool,
    /// Whether this node computed the view.
    pub is_self: bool,
}

/// How a link works, judged from the answering node's calls over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeState {
    /// The last call succeeded and none failed in the window.
    Up,
    /// Some calls failed, but fewer in a row than the partition threshold.
    Degraded,
    /// The last calls failed, as many in a row as the partition threshold or more.
    Down,
    /// No calls yet.
    Unknown,
}

/// A link from the answering node to another node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Edge {
    /// The answering node's ID.
    pub from: String,
    /// The other node's ID (its address if the ID is not known).
    pub to: String,
    /// The other node's address.
    pub to_address: String,
    /// Up, degraded, down or unknown.
    pub state: EdgeState,
    /// The 95th percentile of recent call latencies (milliseconds), `null` without samples.
    pub latency_p95_ms: Option<f64>,
    /// Failed calls in the window.
    pub errors: u64,
    /// Calls in the window.
    pub calls: u64,
    /// The last successful call (Unix milliseconds).
    pub last_success_ms: Option<i64>,
    /// Why the last failed call failed.
    pub last_error: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A host registered.
    HostJoined,
    /// A host unregistered as it shut down.
    HostLeft,
    /// A host's heartbeats stopped and the store removed it.
    HostDeclaredDead,
    /// A host placed an actor that was placed on a host that is gone.
    PlacementTakenOver,
    /// An alarm was dropped after its last attempt failed.
    AlarmDropped,
    /// An operator or admin action, with its audit ID.
    AdminAction,
    /// A kind this build does not know (written by a newer minor version).
    #[serde(other)]
    Other,
}

/// One event of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TimelineEvent {
    /// When it happened (Unix milliseconds).
    pub at_ms: i64,
    /// What happened.
    pub kind: EventKind,
    /// What it happened to: a host ID, an actor key, an alarm.
    pub subject: String,
    /// What a person needs to know about it, in a sentence.
    pub detail: String,
    /// The audit record of an admin action.
    pub audit_id: Option<String>,
}

impl TimelineEvent {
    /// An event without an audit ID.
    pub fn new(
        at_ms: i64,
        kind: EventKind,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        TimelineEvent {
            at_ms,
            kind,
            subject: subject.into(),
            detail: detail.into(),
            audit_id: None,
        }
    }

    /// The same event, with the audit record that `audit_id` names.
    pub fn with_audit_id(mut self, audit_id: impl Into<String>) -> Self {
        self.audit_id = Some(audit_id.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_their_names_only() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        let error = "root".parse::<Role>().unwrap_err();
        assert_eq!(error, UnknownRole("root".into()));
        assert!(error.to_string().contains("use viewer, operator or admin"));
        assert!("Viewer".parse::<Role>().is_err());
    }

    #[test]
    fn api_versions_of_this_major_are_accepted() {
        for version in ["1.0", "1.7", "1.12", API_VERSION] {
            assert_eq!(check_api_version(version), Ok(()), "{version}");
        }
    }

    #[test]
    fn api_versions_of_another_major_are_refused() {
        for version in ["2.0", "0.9", "10.0"] {
            assert_eq!(
                check_api_version(version),
                Err(ApiVersionError::Unsupported {
                    found: version.to_owned()
                }),
                "{version}"
            );
        }
    }

    #[test]
    fn malformed_api_versions_are_refused() {
        for version in ["x", "", "1", "1.", ".1", "1.x", "+1.0", "1.0.0", " 1.0"] {
            assert_eq!(
                check_api_version(version),
                Err(ApiVersionError::Malformed(version.to_owned())),
                "{version}"
            );
        }
    }

    #[test]
    fn an_unknown_event_kind_reads_as_other() {
        let event: TimelineEvent = serde_json::from_value(serde_json::json!({
            "at_ms": 5, "kind": "host_drained", "subject": "h-1", "detail": "", "audit_id": null,
            "severity": "info"
        }))
        .expect("unknown kinds and fields are tolerated");
        assert_eq!(event.kind, EventKind::Other);
    }

    #[test]
    fn roles_are_ordered_by_what_they_allow() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }
}
