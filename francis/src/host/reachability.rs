//! Which peers this host has failed to reach: a host that cannot be connected to (another
//! cluster's key, a firewall, a dead process the store still counts as healthy) fails every
//! call placed on it. After [`SKIP_AFTER`] failures in a row this host stops choosing it for
//! new placements, for [`RECHECK_AFTER`]; then calls may try it again, and one success clears
//! it. The list shows in the host's status.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::clock::{SharedClock, duration_ms};
use crate::model::HostId;

/// Failed connections in a row after which a peer is skipped for new placements.
pub(crate) const SKIP_AFTER: u32 = 3;
/// How long a skipped peer stays skipped before calls try it again.
pub(crate) const RECHECK_AFTER: Duration = Duration::from_secs(30);

/// A peer this host failed to reach repeatedly, as its status reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreachablePeer {
    /// The peer's host ID.
    pub host_id: String,
    /// Failed connections in a row.
    pub failures: u32,
    /// When the first of them happened (Unix milliseconds).
    pub since_ms: i64,
    /// Why the last one failed.
    pub last_error: String,
    /// Whether new placements skip the peer now.
    pub skipped: bool,
}

struct Failing {
    failures: u32,
    since_ms: i64,
    last_ms: i64,
    last_error: String,
}

/// The peers this host failed to reach.
pub(crate) struct Reachability {
    clock: SharedClock,
    failing: Mutex<HashMap<HostId, Failing>>,
    /// Whether `failing` has any entry: every forwarded call reports its outcome, and while
    /// all peers answer (the usual case) that costs one atomic load, not a lock.
    any: AtomicBool,
}

impl Reachability {
    pub(crate) fn new(clock: SharedClock) -> Self {
        Reachability {
            clock,
            failing: Mutex::default(),
            any: AtomicBool::new(false),
        }
    }

    /// A connection to `host_id` failed with `error`.
    pub(crate) fn failed(&self, host_id: &str, error: &str) {
        let now = self.clock.now_ms();
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        self.any.store(true, Ordering::Release);
        let entry = failing.entry(host_id.to_owned()).or_insert(Failing {
            failures: 0,
            since_ms: now,
            last_ms: now,
            last_error: String::new(),
        });
        entry.failures = entry.failures.saturating_add(1);
        entry.last_ms = now;
        entry.last_error = error.to_owned();
        if entry.failures == SKIP_AFTER {
            tracing::warn!(
                peer = host_id,
                error,
                "cannot reach this host; new placements skip it until it recovers"
            );
        }
    }

    /// A call reached `host_id`.
    pub(crate) fn reached(&self, host_id: &str) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        if failing
            .remove(host_id)
            .is_some_and(|f| f.failures >= SKIP_AFTER)
        {
            tracing::info!(peer = host_id, "this host is reachable again");
        }
        if failing.is_empty() {
            self.any.store(false, Ordering::Release);
        }
    }

    fn is_skipped(failing: &Failing, now: i64) -> bool {
        failing.failures >= SKIP_AFTER
            && now.saturating_sub(failing.last_ms) < duration_ms(RECHECK_AFTER)
    }

    /// The hosts new placements skip now.
    pub(crate) fn skipped(&self) -> Vec<HostId> {
        if !self.any.load(Ordering::Acquire) {
            return Vec::new();
        }
        let now = self.clock.now_ms();
        let Ok(failing) = self.failing.lock() else {
            return Vec::new();
        };
        failing
            .iter()
            .filter(|(_, f)| Self::is_skipped(f, now))
            .map(|(host, _)| host.clone())
            .collect()
    }

    /// Every peer with failures, skipped or not, for the host's status.
    pub(crate) fn report(&self) -> Vec<UnreachablePeer> {
        let now = self.clock.now_ms();
        let Ok(failing) = self.failing.lock() else {
            return Vec::new();
        };
        let mut peers: Vec<_> = failing
            .iter()
            .map(|(host_id, f)| UnreachablePeer {
                host_id: host_id.clone(),
                failures: f.failures,
                since_ms: f.since_ms,
                last_error: f.last_error.clone(),
                skipped: Self::is_skipped(f, now),
            })
            .collect();
        peers.sort_by(|a, b| a.host_id.cmp(&b.host_id));
        peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn a_peer_is_skipped_after_repeated_failures_until_it_recovers_or_the_recheck_is_due() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let reach = Reachability::new(clock.clone());
        for _ in 0..SKIP_AFTER - 1 {
            reach.failed("h-odd", "handshake failed");
        }
        assert!(reach.skipped().is_empty(), "one bad moment is not enough");
        reach.failed("h-odd", "handshake failed");
        assert_eq!(reach.skipped(), vec!["h-odd".to_owned()]);
        let report = reach.report();
        assert_eq!(report.len(), 1);
        assert!(report[0].skipped);
        assert_eq!(report[0].failures, SKIP_AFTER);

        // After the recheck interval, calls may try it again...
        clock.advance(RECHECK_AFTER);
        assert!(reach.skipped().is_empty());
        // ...one more failure skips it again; a success clears it.
        reach.failed("h-odd", "handshake failed");
        assert_eq!(reach.skipped(), vec!["h-odd".to_owned()]);
        reach.reached("h-odd");
        assert!(reach.skipped().is_empty());
        assert!(reach.report().is_empty());
    }

    #[test]
    fn the_cluster_view_calls_a_peer_partitioned_after_as_many_failures_as_placements_skip_it() {
        assert_eq!(
            SKIP_AFTER,
            crate::cluster::DEFAULT_PARTITIONED_AFTER_FAILURES
        );
    }
}
