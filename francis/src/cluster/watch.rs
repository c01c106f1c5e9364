//! What one node remembers between two looks at the cluster: the hosts it saw last, the hosts
//! that have left since (and whether they left or were declared dead), and its timeline of
//! events. A host or runtime keeps one and feeds it every observation of the store; the state
//! view reads it back.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::observe::{DepartedHost, Departure, HostObservation};
use super::state::{EventKind, TimelineEvent};
use super::timeline::Timeline;
use crate::model::ClusterObservation;

/// Departed hosts remembered at most (the oldest are forgotten first).
const MAX_DEPARTED: usize = 256;

#[derive(Debug, Default)]
struct Seen {
    /// Host ID → (address, healthy when last seen).
    hosts: BTreeMap<String, (String, bool)>,
    departed: Vec<DepartedHost>,
    /// Whether anything was seen yet: the first look records no joins.
    primed: bool,
}

/// One node's memory of the cluster.
#[derive(Debug, Default)]
pub struct ClusterWatch {
    timeline: Timeline,
    seen: Mutex<Seen>,
}

impl ClusterWatch {
    /// An empty memory.
    pub fn new() -> Self {
        ClusterWatch::default()
    }

    /// Record an event this node saw happen (an alarm dropped, an admin action).
    pub fn record(&self, event: TimelineEvent) {
        self.timeline.record(event);
    }

    /// Take in a new look at the hosts at `now_ms`: a host not seen before has joined; a host
    /// seen before and gone now has left (it was healthy when last seen) or was declared dead
    /// (it was not). Returns the departures remembered, newest last.
    pub fn observe(&self, now_ms: i64, hosts: &[HostObservation]) -> Vec<DepartedHost> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let current: BTreeMap<String, (String, bool)> = hosts
            .iter()
            .map(|h| (h.id.clone(), (h.address.clone(), h.registered_healthy)))
            .collect();
        if seen.primed {
            for (id, (address, _)) in &current {
                if !seen.hosts.contains_key(id) {
                    self.timeline.record(TimelineEvent::new(
                        now_ms,
                        EventKind::HostJoined,
                        id.clone(),
                        format!("registered at {address}"),
                    ));
                }
            }
        }
        let gone: Vec<(String, String, bool)> = seen
            .hosts
            .iter()
            .filter(|(id, _)| !current.contains_key(*id))
            .map(|(id, (address, healthy))| (id.clone(), address.clone(), *healthy))
            .collect();
        for (id, address, healthy) in gone {
            seen.departed.push(DepartedHost {
                id,
                address,
                left_at_ms: now_ms,
                how: if healthy {
                    Departure::Left
                } else {
                    Departure::DeclaredDead
                },
            });
        }
        let excess = seen.departed.len().saturating_sub(MAX_DEPARTED);
        seen.departed.drain(..excess);
        seen.hosts = current;
        seen.primed = true;
        seen.departed.clone()
    }

    /// The events recorded, oldest first.
    pub fn events(&self) -> Vec<TimelineEvent> {
        self.timeline.snapshot()
    }
}

/// The hosts of a store observation as the state view takes them: each with its actors per
/// type and its due alarms.
pub fn hosts_of(observation: &ClusterObservation) -> Vec<HostObservation> {
    observation
        .hosts
        .iter()
        .map(|host| HostObservation {
            id: host.host_id.clone(),
            address: host.address.clone(),
            version: host.version.clone(),
            last_heartbeat_ms: host.last_heartbeat_ms,
            registered_healthy: host.healthy,
            draining: host.draining,
            actor_counts: observation
                .placements
                .iter()
                .filter(|p| p.host_id == host.host_id)
                .map(|p| (p.actor_type.clone(), p.actors))
                .collect(),
            alarms_due: observation
                .due_alarms
                .iter()
                .filter(|a| a.host_id.as_deref() == Some(host.host_id.as_str()))
                .map(|a| a.alarms)
                .sum(),
            // Every host in the store passed the cluster identity check of its store.
            trusted: Some(true),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, healthy: bool) -> HostObservation {
        HostObservation {
            id: id.to_owned(),
            address: format!("{id}:7000"),
            version: None,
            last_heartbeat_ms: 0,
            registered_healthy: healthy,
            actor_counts: BTreeMap::new(),
            alarms_due: 0,
            draining: false,
            trusted: Some(true),
        }
    }

    #[test]
    fn joins_and_departures_are_told_from_successive_looks() {
        let watch = ClusterWatch::new();
        assert!(
            watch
                .observe(1, &[host("a", true), host("b", false)])
                .is_empty()
        );
        assert!(watch.events().is_empty(), "the first look is the baseline");
        let departed = watch.observe(2, &[host("a", true), host("c", true)]);
        assert_eq!(departed.len(), 1);
        assert_eq!(departed[0].id, "b");
        assert_eq!(
            departed[0].how,
            Departure::DeclaredDead,
            "b was unhealthy when last seen"
        );
        let departed = watch.observe(3, &[host("c", true)]);
        assert_eq!(departed.len(), 2);
        assert_eq!(
            (departed[1].id.as_str(), departed[1].how),
            ("a", Departure::Left)
        );
        let events = watch.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::HostJoined);
        assert_eq!(events[0].subject, "c");
    }
}
