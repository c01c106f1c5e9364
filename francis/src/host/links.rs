//! What this host has seen of its links to other hosts: calls it forwarded to each peer, how
//! many failed, when the last one succeeded, and recent latencies. The cluster state view
//! draws its edges from it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::cluster::LinkObservation;

/// Latencies kept per peer for the view's p95.
const SAMPLES: usize = 64;
/// Peers kept at most; the one heard from least recently makes room.
const MAX_PEERS: usize = 1024;

#[derive(Default)]
struct Link {
    /// Everything but the latencies, which `latencies` keeps.
    stats: LinkObservation,
    latencies: VecDeque<f64>,
    last_seen_ms: i64,
}

/// The links of one host.
pub(crate) struct Links {
    clock: SharedClock,
    links: Mutex<HashMap<String, Link>>,
}

impl Links {
    pub(crate) fn new(clock: SharedClock) -> Self {
        Links {
            clock,
            links: Mutex::default(),
        }
    }

    /// A call to `host_id` at `address` got through after `elapsed` (whatever the actor
    /// answered).
    pub(crate) fn reached(&self, host_id: &str, address: &str, elapsed: Duration) {
        let now = self.clock.now_ms();
        self.update(host_id, address, now, |link| {
            link.stats.consecutive_failures = 0;
            link.stats.last_success_ms = Some(now);
            if link.latencies.len() == SAMPLES {
                link.latencies.pop_front();
            }
            link.latencies.push_back(elapsed.as_secs_f64() * 1000.0);
        });
    }

    /// A call to `host_id` at `address` failed in transport.
    pub(crate) fn failed(&self, host_id: &str, address: &str, error: &str) {
        let now = self.clock.now_ms();
        self.update(host_id, address, now, |link| {
            link.stats.errors += 1;
            link.stats.consecutive_failures = link.stats.consecutive_failures.saturating_add(1);
            link.stats.last_failure_ms = Some(now);
            link.stats.last_error = Some(error.chars().take(256).collect());
        });
    }

    fn update(&self, host_id: &str, address: &str, now: i64, change: impl FnOnce(&mut Link)) {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        if !links.contains_key(host_id) && links.len() >= MAX_PEERS {
            let oldest = links
                .iter()
                .min_by_key(|(_, link)| link.last_seen_ms)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                links.remove(&oldest);
            }
        }
        let link = links.entry(host_id.to_owned()).or_default();
        if link.stats.to_host_id.is_none() {
            link.stats.to_host_id = Some(host_id.to_owned());
        }
        if link.stats.to_address != address {
            link.stats.to_address = address.to_owned();
        }
        link.stats.calls += 1;
        link.last_seen_ms = now;
        change(link);
    }

    /// Every link, as the state view takes them, by host ID.
    pub(crate) fn snapshot(&self) -> Vec<LinkObservation> {
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<LinkObservation> = links
            .values()
            .map(|link| LinkObservation {
                latency_samples_ms: link.latencies.iter().copied().collect(),
                ..link.stats.clone()
            })
            .collect();
        all.sort_by(|a, b| a.to_host_id.cmp(&b.to_host_id));
        all
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_link_counts_calls_failures_in_a_row_and_keeps_recent_latencies() {
        let clock = Arc::new(ManualClock::new(1_000));
        let links = Links::new(clock.clone());
        links.failed("h1", "10.0.0.1:7000", "refused");
        links.failed("h1", "10.0.0.1:7000", "refused again");
        clock.advance(Duration::from_millis(5));
        for i in 0..(SAMPLES + 6) {
            links.reached("h1", "10.0.0.1:7000", Duration::from_millis(i as u64));
        }
        let [link] = links.snapshot().try_into().unwrap();
        assert_eq!(link.calls, SAMPLES as u64 + 8);
        assert_eq!(link.errors, 2);
        assert_eq!(link.consecutive_failures, 0);
        assert_eq!(link.last_success_ms, Some(1_005));
        assert_eq!(link.last_failure_ms, Some(1_000));
        assert_eq!(link.last_error.as_deref(), Some("refused again"));
        assert_eq!(link.latency_samples_ms.len(), SAMPLES);
        assert_eq!(
            link.latency_samples_ms[0], 6.0,
            "the oldest samples made room"
        );
    }
}
