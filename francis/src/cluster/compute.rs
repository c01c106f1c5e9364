//! [`compute`]: the cluster state view from one node's observations, by the rules of the
//! module documentation ([`super`]). Pure: the same observations give the same view.

use std::collections::{BTreeMap, BTreeSet};

use super::observe::{
    DepartedHost, Departure, HostObservation, LinkObservation, Observations, RuntimeObservation,
    Thresholds,
};
use super::state::{
    API_VERSION, ClusterState, Context, Edge, EdgeState, EventKind, Lifecycle, Node, NodeKind,
    TimelineEvent, Trust,
};

/// The most timeline events a view carries (the newest).
pub const TIMELINE_LIMIT: usize = 200;

/// The cluster state view from `obs`, judged with `thresholds`.
pub fn compute(obs: &Observations, thresholds: &Thresholds) -> ClusterState {
    let mut nodes = Vec::new();
    let mut seen = BTreeSet::new();
    for host in &obs.hosts {
        if seen.insert((NodeKind::Host, host.id.as_str())) {
            nodes.push(host_node(obs, thresholds, host));
        }
    }
    let self_kind = obs.answered_by.kind;
    let self_id = obs.answered_by.id.as_str();
    if self_kind == NodeKind::Host && !seen.contains(&(NodeKind::Host, self_id)) {
        nodes.push(unregistered_self_host(obs));
    }
    for departed in latest_departures(&obs.recent_departures) {
        let age = age_ms(obs.now_ms, departed.left_at_ms);
        if age < thresholds.keep_departed_ms && seen.insert((NodeKind::Host, departed.id.as_str()))
        {
            nodes.push(departed_node(departed));
        }
    }
    for runtime in &obs.runtimes {
        if seen.insert((NodeKind::Runtime, runtime.id.as_str())) {
            nodes.push(runtime_node(obs, thresholds, runtime));
        }
    }
    if self_kind == NodeKind::Runtime && seen.insert((NodeKind::Runtime, self_id)) {
        nodes.push(runtime_node(
            obs,
            thresholds,
            &RuntimeObservation {
                id: self_id.to_owned(),
                address: obs.answered_by.address.clone(),
                ..RuntimeObservation::default()
            },
        ));
    }
    nodes.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));

    let mut edges: Vec<Edge> = obs
        .links
        .iter()
        .map(|link| edge(obs, thresholds, link))
        .collect();
    edges.sort_by(|a, b| (&a.to, &a.to_address).cmp(&(&b.to, &b.to_address)));

    ClusterState {
        api_version: API_VERSION.to_owned(),
        generated_at_ms: obs.now_ms,
        context: Context {
            answered_by: obs.answered_by.clone(),
            profile: obs.profile.clone(),
            caller: obs.caller.clone(),
        },
        nodes,
        edges,
        timeline: timeline(obs),
    }
}

/// The nearest-rank 95th percentile of `samples` (non-finite values ignored), `None` without
/// samples.
pub fn p95(samples: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|s| s.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    // The smallest sample with at least 95% of the samples at or below it: rank ⌈0.95·n⌉.
    let rank = (sorted.len() * 95).div_ceil(100);
    Some(sorted[rank.max(1) - 1])
}

/// How old a timestamp is at `now` (0 if it is in the future).
fn age_ms(now_ms: i64, at_ms: i64) -> u64 {
    u64::try_from(now_ms.saturating_sub(at_ms)).unwrap_or(0)
}

fn failure_limit(thresholds: &Thresholds) -> u32 {
    thresholds.partitioned_after_consecutive_failures.max(1)
}

/// Whether the answering node's link to the node `id` at `address` is down.
fn link_is_down(obs: &Observations, thresholds: &Thresholds, id: &str, address: &str) -> bool {
    obs.links.iter().any(|link| {
        let to_it = match &link.to_host_id {
            Some(to) => to == id,
            None => link.to_address == address,
        };
        to_it && link.consecutive_failures >= failure_limit(thresholds)
    })
}

/// The lifecycle of a node known to be alive by the store (or seen) `age` ago.
fn lifecycle(thresholds: &Thresholds, age: u64, unhealthy: bool, link_down: bool) -> Lifecycle {
    if unhealthy || age >= thresholds.offline_after_ms {
        Lifecycle::Offline
    } else if link_down {
        Lifecycle::Partitioned
    } else if age >= thresholds.stale_after_ms {
        Lifecycle::Stale
    } else {
        Lifecycle::Online
    }
}

fn trust(trusted: Option<bool>) -> Trust {
    match trusted {
        Some(true) => Trust::SameClusterCa,
        Some(false) => Trust::Foreign,
        None => Trust::Unknown,
    }
}

fn host_node(obs: &Observations, thresholds: &Thresholds, host: &HostObservation) -> Node {
    let is_self = obs.answered_by.kind == NodeKind::Host && obs.answered_by.id == host.id;
    let age = age_ms(obs.now_ms, host.last_heartbeat_ms);
    let link_down = !is_self && link_is_down(obs, thresholds, &host.id, &host.address);
    Node {
        id: host.id.clone(),
        kind: NodeKind::Host,
        address: host.address.clone(),
        version: host.version.clone(),
        lifecycle: lifecycle(thresholds, age, !host.registered_healthy, link_down),
        healthy: host.registered_healthy,
        last_heartbeat_ms: Some(host.last_heartbeat_ms),
        heartbeat_age_ms: Some(age),
        left_at_ms: None,
        trust: if is_self {
            Trust::SameClusterCa
        } else {
            trust(host.trusted)
        },
        actors: host.actor_counts.clone(),
        actors_total: host
            .actor_counts
            .values()
            .fold(0, |a, n| a.saturating_add(*n)),
        alarms_due: host.alarms_due,
        draining: host.draining,
        is_self,
    }
}

/// The answering host when the store has no registration of it.
fn unregistered_self_host(obs: &Observations) -> Node {
    Node {
        id: obs.answered_by.id.clone(),
        kind: NodeKind::Host,
        address: obs.answered_by.address.clone(),
        version: None,
        lifecycle: Lifecycle::Offline,
        healthy: false,
        last_heartbeat_ms: None,
        heartbeat_age_ms: None,
        left_at_ms: None,
        trust: Trust::SameClusterCa,
        actors: BTreeMap::new(),
        actors_total: 0,
        alarms_due: 0,
        draining: false,
        is_self: true,
    }
}

/// The latest departure of each host, in the order of their IDs.
fn latest_departures(departures: &[DepartedHost]) -> impl Iterator<Item = &DepartedHost> {
    let mut latest: BTreeMap<&str, &DepartedHost> = BTreeMap::new();
    for departed in departures {
        let entry = latest.entry(departed.id.as_str()).or_insert(departed);
        if departed.left_at_ms > entry.left_at_ms {
            *entry = departed;
        }
    }
    latest.into_values()
}

fn departed_node(departed: &DepartedHost) -> Node {
    Node {
        id: departed.id.clone(),
        kind: NodeKind::Host,
        address: departed.address.clone(),
        version: None,
        lifecycle: Lifecycle::Offline,
        healthy: false,
        last_heartbeat_ms: None,
        heartbeat_age_ms: None,
        left_at_ms: Some(departed.left_at_ms),
        trust: Trust::Unknown,
        actors: BTreeMap::new(),
        actors_total: 0,
        alarms_due: 0,
        draining: false,
        is_self: false,
    }
}

fn runtime_node(obs: &Observations, thresholds: &Thresholds, runtime: &RuntimeObservation) -> Node {
    let is_self = obs.answered_by.kind == NodeKind::Runtime && obs.answered_by.id == runtime.id;
    let (lifecycle, last_seen, age, trust) = if is_self {
        (Lifecycle::Online, None, None, Trust::SameClusterCa)
    } else {
        let age = runtime.last_seen_ms.map(|at| age_ms(obs.now_ms, at));
        let link_down = link_is_down(obs, thresholds, &runtime.id, &runtime.address);
        let lifecycle = match age {
            Some(age) => lifecycle(thresholds, age, false, link_down),
            None => Lifecycle::Offline,
        };
        (lifecycle, runtime.last_seen_ms, age, trust(runtime.trusted))
    };
    Node {
        id: runtime.id.clone(),
        kind: NodeKind::Runtime,
        address: runtime.address.clone(),
        version: runtime.version.clone(),
        lifecycle,
        healthy: lifecycle != Lifecycle::Offline,
        last_heartbeat_ms: last_seen,
        heartbeat_age_ms: age,
        left_at_ms: None,
        trust,
        actors: BTreeMap::new(),
        actors_total: 0,
        alarms_due: 0,
        draining: false,
        is_self,
    }
}

fn edge(obs: &Observations, thresholds: &Thresholds, link: &LinkObservation) -> Edge {
    let state = if link.consecutive_failures >= failure_limit(thresholds) {
        EdgeState::Down
    } else if link.calls == 0 && link.consecutive_failures == 0 {
        EdgeState::Unknown
    } else if link.consecutive_failures > 0 || link.errors > 0 {
        EdgeState::Degraded
    } else {
        EdgeState::Up
    };
    Edge {
        from: obs.answered_by.id.clone(),
        to: link
            .to_host_id
            .clone()
            .unwrap_or_else(|| link.to_address.clone()),
        to_address: link.to_address.clone(),
        state,
        latency_p95_ms: p95(&link.latency_samples_ms),
        errors: link.errors,
        calls: link.calls,
        last_success_ms: link.last_success_ms,
        last_error: link.last_error.clone(),
    }
}

fn departure_event(departed: &DepartedHost) -> TimelineEvent {
    let (kind, detail) = match departed.how {
        Departure::Left => (
            EventKind::HostLeft,
            format!("left the cluster (it was at {})", departed.address),
        ),
        Departure::DeclaredDead => (
            EventKind::HostDeclaredDead,
            format!(
                "declared dead: its heartbeats stopped (it was at {})",
                departed.address
            ),
        ),
    };
    TimelineEvent::new(departed.left_at_ms, kind, departed.id.clone(), detail)
}

fn timeline(obs: &Observations) -> Vec<TimelineEvent> {
    let mut events = obs.events.clone();
    for departed in &obs.recent_departures {
        let event = departure_event(departed);
        let recorded = events
            .iter()
            .any(|e| e.kind == event.kind && e.subject == event.subject && e.at_ms == event.at_ms);
        if !recorded {
            events.push(event);
        }
    }
    // Newest first; a stable sort of the reversed list puts the later recorded first on ties.
    events.reverse();
    events.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
    events.truncate(TIMELINE_LIMIT);
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Caller, NodeRef, Role};

    const NOW: i64 = 1_700_000_000_000;

    /// Stale after 10 s, offline after 20 s, partitioned after 3 failures, departed hosts
    /// kept 5 minutes.
    fn thresholds() -> Thresholds {
        Thresholds::from_deadline(std::time::Duration::from_secs(20))
    }

    fn observations(answered_by: NodeRef) -> Observations {
        Observations::new(NOW, answered_by, "dev")
    }

    fn from_host(id: &str) -> Observations {
        observations(NodeRef::new(NodeKind::Host, id, "10.0.0.1:7571"))
    }

    fn host(id: &str, heartbeat_age_ms: i64) -> HostObservation {
        HostObservation {
            id: id.into(),
            address: format!("{id}.internal:7571"),
            version: Some("0.1.0".into()),
            last_heartbeat_ms: NOW - heartbeat_age_ms,
            registered_healthy: true,
            actor_counts: BTreeMap::new(),
            alarms_due: 0,
            draining: false,
            trusted: Some(true),
        }
    }

    fn link(to: &str, calls: u64, errors: u64, consecutive_failures: u32) -> LinkObservation {
        LinkObservation {
            to_host_id: Some(to.into()),
            to_address: format!("{to}.internal:7571"),
            calls,
            errors,
            consecutive_failures,
            ..LinkObservation::default()
        }
    }

    fn node<'a>(state: &'a ClusterState, id: &str) -> &'a Node {
        state
            .nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("{id} is listed"))
    }

    #[test]
    fn thresholds_derive_from_the_health_check_deadline() {
        let t = thresholds();
        assert_eq!(
            (
                t.stale_after_ms,
                t.offline_after_ms,
                t.partitioned_after_consecutive_failures,
                t.keep_departed_ms
            ),
            (10_000, 20_000, 3, 300_000)
        );
        let odd = Thresholds::from_deadline(std::time::Duration::from_millis(1_501));
        assert_eq!((odd.stale_after_ms, odd.offline_after_ms), (750, 1_501));
        assert_eq!(Thresholds::default(), t, "the default deadline is 20 s");
    }

    #[test]
    fn a_host_lifecycle_changes_exactly_at_each_threshold() {
        use Lifecycle::*;
        // (heartbeat age, store says healthy, failures in a row on the link, lifecycle)
        let cases: &[(i64, bool, Option<u32>, Lifecycle)] = &[
            (0, true, None, Online),
            (9_999, true, None, Online),
            (10_000, true, None, Stale),
            (19_999, true, None, Stale),
            (20_000, true, None, Offline),
            (86_400_000, true, None, Offline),
            (-5_000, true, None, Online),
            (0, false, None, Offline),
            (15_000, false, None, Offline),
            (0, true, Some(0), Online),
            (0, true, Some(2), Online),
            (0, true, Some(3), Partitioned),
            (0, true, Some(40), Partitioned),
            (9_999, true, Some(3), Partitioned),
            (10_000, true, Some(3), Partitioned),
            (19_999, true, Some(3), Partitioned),
            (10_000, true, Some(2), Stale),
            (20_000, true, Some(3), Offline),
            (0, false, Some(3), Offline),
        ];
        for &(age, healthy, failures, want) in cases {
            let mut obs = from_host("h-self");
            obs.hosts.push(HostObservation {
                registered_healthy: healthy,
                ..host("h-1", age)
            });
            if let Some(failures) = failures {
                obs.links
                    .push(link("h-1", 10, u64::from(failures), failures));
            }
            let state = compute(&obs, &thresholds());
            assert_eq!(
                node(&state, "h-1").lifecycle,
                want,
                "age {age} ms, store healthy {healthy}, failures {failures:?}"
            );
            assert_eq!(node(&state, "h-1").healthy, healthy);
        }
    }

    #[test]
    fn a_link_without_a_host_id_is_matched_by_address() {
        let mut obs = from_host("h-self");
        obs.hosts.push(host("h-1", 0));
        obs.links.push(LinkObservation {
            to_host_id: None,
            ..link("h-1", 3, 3, 3)
        });
        let state = compute(&obs, &thresholds());
        assert_eq!(node(&state, "h-1").lifecycle, Lifecycle::Partitioned);
        assert_eq!(
            state.edges[0].to, "h-1.internal:7571",
            "named by its address"
        );

        // A link known to go to another host does not count for this one's address.
        let mut obs = from_host("h-self");
        obs.hosts.push(host("h-1", 0));
        obs.links.push(LinkObservation {
            to_host_id: Some("h-old".into()),
            ..link("h-1", 3, 3, 3)
        });
        assert_eq!(
            node(&compute(&obs, &thresholds()), "h-1").lifecycle,
            Lifecycle::Online
        );
    }

    #[test]
    fn heartbeat_age_trust_and_actor_counts_are_reported() {
        let mut obs = from_host("h-self");
        obs.hosts.push(HostObservation {
            actor_counts: BTreeMap::from([("counter".into(), 3), ("order".into(), 4)]),
            alarms_due: 2,
            draining: false,
            ..host("h-1", 1_234)
        });
        obs.hosts.push(HostObservation {
            trusted: Some(false),
            ..host("h-2", 0)
        });
        obs.hosts.push(HostObservation {
            trusted: None,
            ..host("h-3", -50)
        });
        let state = compute(&obs, &thresholds());
        let h1 = node(&state, "h-1");
        assert_eq!(h1.heartbeat_age_ms, Some(1_234));
        assert_eq!(h1.last_heartbeat_ms, Some(NOW - 1_234));
        assert_eq!((h1.actors_total, h1.alarms_due), (7, 2));
        assert_eq!(h1.actors["order"], 4);
        assert_eq!(h1.trust, Trust::SameClusterCa);
        assert_eq!(node(&state, "h-2").trust, Trust::Foreign);
        assert_eq!(node(&state, "h-3").trust, Trust::Unknown);
        assert_eq!(
            node(&state, "h-3").heartbeat_age_ms,
            Some(0),
            "future: 0 old"
        );
    }

    #[test]
    fn edge_states_follow_the_calls_over_the_link() {
        use EdgeState::*;
        // (calls, errors, failures in a row, state)
        let cases: &[(u64, u64, u32, EdgeState)] = &[
            (0, 0, 0, Unknown),
            (12, 0, 0, Up),
            (12, 2, 0, Degraded),
            (12, 1, 1, Degraded),
            (12, 2, 2, Degraded),
            (12, 3, 3, Down),
            (12, 12, 12, Down),
            (0, 0, 3, Down),
        ];
        for &(calls, errors, failures, want) in cases {
            let mut obs = from_host("h-self");
            obs.links.push(link("h-1", calls, errors, failures));
            let edge = &compute(&obs, &thresholds()).edges[0];
            assert_eq!(
                edge.state, want,
                "calls {calls}, errors {errors}, failures {failures}"
            );
            assert_eq!((edge.calls, edge.errors), (calls, errors));
            assert_eq!(edge.from, "h-self");
        }
    }

    #[test]
    fn a_partition_threshold_of_zero_acts_as_one() {
        let zero = Thresholds {
            partitioned_after_consecutive_failures: 0,
            ..thresholds()
        };
        let mut obs = from_host("h-self");
        obs.hosts.push(host("h-1", 0));
        obs.links.push(link("h-1", 5, 0, 0));
        let state = compute(&obs, &zero);
        assert_eq!(state.edges[0].state, EdgeState::Up);
        assert_eq!(node(&state, "h-1").lifecycle, Lifecycle::Online);
    }

    #[test]
    fn p95_is_the_nearest_rank_percentile() {
        assert_eq!(p95(&[]), None);
        assert_eq!(p95(&[f64::NAN, f64::INFINITY]), None);
        assert_eq!(p95(&[4.5]), Some(4.5));
        assert_eq!(p95(&[3.0, 1.0]), Some(3.0));
        // 20 samples, shuffled: rank ⌈19⌉ = 19.
        let twenty: Vec<f64> = (1..=20).map(|i| f64::from((i * 7) % 20 + 1)).collect();
        assert_eq!(p95(&twenty), Some(19.0));
        let hundred: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(p95(&hundred), Some(95.0));
        let with_nan = [1.0, f64::NAN, 2.0];
        assert_eq!(p95(&with_nan), Some(2.0));
    }

    #[test]
    fn edges_carry_p95_and_the_last_success_and_error() {
        let mut obs = from_host("h-self");
        obs.links.push(LinkObservation {
            last_success_ms: Some(NOW - 100),
            last_failure_ms: Some(NOW - 5_000),
            last_error: Some("timed out".into()),
            latency_samples_ms: vec![2.0, 1.0, 9.0],
            ..link("h-1", 3, 1, 0)
        });
        let edge = &compute(&obs, &thresholds()).edges[0];
        assert_eq!(edge.latency_p95_ms, Some(9.0));
        assert_eq!(edge.last_success_ms, Some(NOW - 100));
        assert_eq!(edge.last_error.as_deref(), Some("timed out"));
        assert_eq!(edge.state, EdgeState::Degraded);
    }

    #[test]
    fn nodes_are_runtimes_then_hosts_by_id_and_edges_by_target() {
        let mut obs = observations(NodeRef::new(NodeKind::Runtime, "rt-b", "10.0.0.9:7400"));
        for id in ["h-c", "h-a", "h-b"] {
            obs.hosts.push(host(id, 0));
        }
        obs.runtimes.push(RuntimeObservation {
            id: "rt-a".into(),
            address: "10.0.0.8:7400".into(),
            last_seen_ms: Some(NOW),
            ..RuntimeObservation::default()
        });
        for to in ["h-b", "h-c", "h-a"] {
            obs.links.push(link(to, 1, 0, 0));
        }
        let state = compute(&obs, &thresholds());
        let order: Vec<(NodeKind, &str)> = state
            .nodes
            .iter()
            .map(|n| (n.kind, n.id.as_str()))
            .collect();
        assert_eq!(
            order,
            vec![
                (NodeKind::Runtime, "rt-a"),
                (NodeKind::Runtime, "rt-b"),
                (NodeKind::Host, "h-a"),
                (NodeKind::Host, "h-b"),
                (NodeKind::Host, "h-c"),
            ]
        );
        let targets: Vec<&str> = state.edges.iter().map(|e| e.to.as_str()).collect();
        assert_eq!(targets, vec!["h-a", "h-b", "h-c"]);
    }

    #[test]
    fn the_same_observations_in_another_order_give_the_same_view() {
        let mut obs = from_host("h-b");
        for id in ["h-c", "h-a", "h-b"] {
            obs.hosts.push(host(id, 3_000));
        }
        for to in ["h-c", "h-a"] {
            obs.links.push(link(to, 4, 1, 0));
        }
        obs.recent_departures.push(DepartedHost {
            id: "h-z".into(),
            address: "h-z.internal:7571".into(),
            left_at_ms: NOW - 1_000,
            how: Departure::Left,
        });
        let mut shuffled = obs.clone();
        shuffled.hosts.reverse();
        shuffled.links.reverse();
        assert_eq!(
            compute(&obs, &thresholds()),
            compute(&shuffled, &thresholds())
        );
    }

    #[test]
    fn the_answering_runtime_is_listed_online_as_itself() {
        let mut obs = observations(NodeRef::new(NodeKind::Runtime, "runtime", "10.0.0.9:7400"));
        let state = compute(&obs, &thresholds());
        assert_eq!(state.nodes.len(), 1);
        let me = &state.nodes[0];
        assert_eq!(
            (
                me.kind,
                me.id.as_str(),
                me.address.as_str(),
                me.lifecycle,
                me.healthy,
                me.is_self,
                me.trust
            ),
            (
                NodeKind::Runtime,
                "runtime",
                "10.0.0.9:7400",
                Lifecycle::Online,
                true,
                true,
                Trust::SameClusterCa
            )
        );
        assert_eq!(me.heartbeat_age_ms, None);

        // Its own observation adds what it knows (the version), once; stale `last_seen` is
        // ignored for itself.
        obs.runtimes.push(RuntimeObservation {
            id: "runtime".into(),
            address: "10.0.0.9:7400".into(),
            version: Some("0.2.0".into()),
            last_seen_ms: Some(NOW - 60_000),
            trusted: None,
        });
        let state = compute(&obs, &thresholds());
        assert_eq!(state.nodes.len(), 1);
        assert_eq!(state.nodes[0].version.as_deref(), Some("0.2.0"));
        assert_eq!(state.nodes[0].lifecycle, Lifecycle::Online);
    }

    #[test]
    fn another_runtime_replica_is_judged_by_when_it_was_last_seen() {
        use Lifecycle::*;
        // (last seen this long ago, failures in a row on the link, lifecycle)
        let cases: &[(Option<i64>, u32, Lifecycle)] = &[
            (Some(0), 0, Online),
            (Some(9_999), 0, Online),
            (Some(10_000), 0, Stale),
            (Some(20_000), 0, Offline),
            (Some(0), 3, Partitioned),
            (None, 0, Offline),
        ];
        for &(seen, failures, want) in cases {
            let mut obs = from_host("h-self");
            obs.runtimes.push(RuntimeObservation {
                id: "runtime".into(),
                address: "10.0.0.9:7400".into(),
                version: None,
                last_seen_ms: seen.map(|ago| NOW - ago),
                trusted: Some(true),
            });
            obs.links.push(LinkObservation {
                to_host_id: None,
                to_address: "10.0.0.9:7400".into(),
                calls: 5,
                consecutive_failures: failures,
                ..LinkObservation::default()
            });
            let state = compute(&obs, &thresholds());
            let runtime = node(&state, "runtime");
            assert_eq!(
                runtime.lifecycle, want,
                "seen {seen:?}, failures {failures}"
            );
            assert_eq!(runtime.healthy, want != Offline);
            assert!(!runtime.is_self);
            assert_eq!(runtime.trust, Trust::SameClusterCa);
        }
    }

    #[test]
    fn the_answering_host_is_marked_and_judged_by_its_heartbeat() {
        let mut obs = from_host("h-1");
        obs.hosts.push(HostObservation {
            trusted: None,
            ..host("h-1", 12_000)
        });
        obs.hosts.push(host("h-2", 0));
        // A link to itself never makes it partitioned.
        obs.links.push(link("h-1", 3, 3, 3));
        let state = compute(&obs, &thresholds());
        let me = node(&state, "h-1");
        assert!(me.is_self);
        assert_eq!(me.lifecycle, Lifecycle::Stale);
        assert_eq!(me.trust, Trust::SameClusterCa);
        assert!(!node(&state, "h-2").is_self);
        assert_eq!(state.nodes.iter().filter(|n| n.is_self).count(), 1);
    }

    #[test]
    fn an_answering_host_the_store_does_not_know_is_listed_offline() {
        let mut obs = from_host("h-new");
        obs.hosts.push(host("h-2", 0));
        let state = compute(&obs, &thresholds());
        let me = node(&state, "h-new");
        assert!(me.is_self);
        assert_eq!(
            (me.lifecycle, me.healthy, me.address.as_str()),
            (Lifecycle::Offline, false, "10.0.0.1:7571")
        );
        assert_eq!(me.last_heartbeat_ms, None);
    }

    fn departed(id: &str, ago: i64, how: Departure) -> DepartedHost {
        DepartedHost {
            id: id.into(),
            address: format!("{id}.internal:7571"),
            left_at_ms: NOW - ago,
            how,
        }
    }

    #[test]
    fn a_departed_host_is_listed_offline_for_a_while_with_its_event() {
        let mut obs = from_host("h-self");
        obs.recent_departures
            .push(departed("h-dead", 30_000, Departure::DeclaredDead));
        obs.recent_departures
            .push(departed("h-gone", 60_000, Departure::Left));
        let state = compute(&obs, &thresholds());
        let dead = node(&state, "h-dead");
        assert_eq!(
            (dead.lifecycle, dead.healthy, dead.left_at_ms),
            (Lifecycle::Offline, false, Some(NOW - 30_000))
        );
        assert_eq!(dead.trust, Trust::Unknown);
        let kinds: Vec<(EventKind, &str)> = state
            .timeline
            .iter()
            .map(|e| (e.kind, e.subject.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (EventKind::HostDeclaredDead, "h-dead"),
                (EventKind::HostLeft, "h-gone")
            ]
        );
        assert_eq!(
            state.timeline[0].detail,
            "declared dead: its heartbeats stopped (it was at h-dead.internal:7571)"
        );
    }

    #[test]
    fn a_departed_host_is_forgotten_after_keep_departed_but_its_event_stays() {
        for (ago, listed) in [(299_999, true), (300_000, false), (-10, true)] {
            let mut obs = from_host("h-self");
            obs.recent_departures
                .push(departed("h-gone", ago, Departure::Left));
            let state = compute(&obs, &thresholds());
            assert_eq!(
                state.nodes.iter().any(|n| n.id == "h-gone"),
                listed,
                "left {ago} ms ago"
            );
            assert_eq!(state.timeline.len(), 1);
        }
    }

    #[test]
    fn a_departed_host_that_registered_again_is_listed_once_as_registered() {
        let mut obs = from_host("h-self");
        obs.hosts.push(host("h-back", 0));
        obs.recent_departures
            .push(departed("h-back", 8_000, Departure::Left));
        obs.recent_departures
            .push(departed("h-twice", 9_000, Departure::Left));
        obs.recent_departures
            .push(departed("h-twice", 4_000, Departure::DeclaredDead));
        let state = compute(&obs, &thresholds());
        let back: Vec<&Node> = state.nodes.iter().filter(|n| n.id == "h-back").collect();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].lifecycle, Lifecycle::Online);
        assert_eq!(back[0].left_at_ms, None);
        let twice: Vec<&Node> = state.nodes.iter().filter(|n| n.id == "h-twice").collect();
        assert_eq!(twice.len(), 1);
        assert_eq!(
            twice[0].left_at_ms,
            Some(NOW - 4_000),
            "the latest departure"
        );
    }

    #[test]
    fn a_departure_already_recorded_as_an_event_is_not_repeated() {
        let mut obs = from_host("h-self");
        obs.events.push(TimelineEvent::new(
            NOW - 30_000,
            EventKind::HostDeclaredDead,
            "h-dead",
            "removed by cleanup",
        ));
        obs.recent_departures
            .push(departed("h-dead", 30_000, Departure::DeclaredDead));
        let state = compute(&obs, &thresholds());
        assert_eq!(state.timeline.len(), 1);
        assert_eq!(state.timeline[0].detail, "removed by cleanup");
    }

    #[test]
    fn the_timeline_is_newest_first_and_capped() {
        let mut obs = from_host("h-self");
        for i in 0..250 {
            obs.events.push(TimelineEvent::new(
                NOW - 1_000_000 + i,
                EventKind::AdminAction,
                format!("h-{i}"),
                "drained",
            ));
        }
        let state = compute(&obs, &thresholds());
        assert_eq!(state.timeline.len(), TIMELINE_LIMIT);
        assert_eq!(state.timeline[0].subject, "h-249", "the newest first");
        assert_eq!(state.timeline[TIMELINE_LIMIT - 1].subject, "h-50");
        assert!(state.timeline.windows(2).all(|w| w[0].at_ms > w[1].at_ms));
    }

    #[test]
    fn timeline_events_of_the_same_millisecond_put_the_later_recorded_first() {
        let mut obs = from_host("h-self");
        obs.events.push(TimelineEvent::new(
            NOW - 5,
            EventKind::AlarmDropped,
            "a",
            "",
        ));
        obs.events
            .push(TimelineEvent::new(NOW, EventKind::AdminAction, "b", "").with_audit_id("au-1"));
        obs.events.push(TimelineEvent::new(
            NOW,
            EventKind::PlacementTakenOver,
            "c",
            "",
        ));
        let state = compute(&obs, &thresholds());
        let subjects: Vec<&str> = state.timeline.iter().map(|e| e.subject.as_str()).collect();
        assert_eq!(subjects, vec!["c", "b", "a"]);
        assert_eq!(state.timeline[1].audit_id.as_deref(), Some("au-1"));
    }

    #[test]
    fn the_json_shape_is_the_contract() {
        let mut obs = from_host("h-1");
        obs.profile = "prod".into();
        obs.caller = Some(Caller::new("ops-token", Role::Viewer));
        obs.hosts.push(HostObservation {
            id: "h-1".into(),
            address: "10.0.0.1:7571".into(),
            version: Some("0.1.0".into()),
            last_heartbeat_ms: NOW - 2_000,
            registered_healthy: true,
            actor_counts: BTreeMap::from([("counter".into(), 2)]),
            alarms_due: 1,
            draining: false,
            trusted: Some(true),
        });
        obs.links.push(LinkObservation {
            to_host_id: Some("h-2".into()),
            to_address: "10.0.0.2:7571".into(),
            calls: 4,
            errors: 0,
            consecutive_failures: 0,
            last_success_ms: Some(NOW - 500),
            last_failure_ms: None,
            last_error: None,
            latency_samples_ms: vec![1.5],
        });
        obs.events.push(
            TimelineEvent::new(NOW - 100, EventKind::AdminAction, "h-2", "drain requested")
                .with_audit_id("au-7"),
        );
        let state = compute(&obs, &thresholds());
        let json = serde_json::to_value(&state).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "api_version": "1.0",
                "generated_at_ms": NOW,
                "context": {
                    "answered_by": {"kind": "host", "id": "h-1", "address": "10.0.0.1:7571"},
                    "profile": "prod",
                    "caller": {"principal": "ops-token", "role": "viewer"}
                },
                "nodes": [{
                    "id": "h-1",
                    "kind": "host",
                    "address": "10.0.0.1:7571",
                    "version": "0.1.0",
                    "lifecycle": "online",
                    "healthy": true,
                    "last_heartbeat_ms": NOW - 2_000,
                    "heartbeat_age_ms": 2_000,
                    "left_at_ms": null,
                    "trust": "same_cluster_ca",
                    "actors": {"counter": 2},
                    "actors_total": 2,
                    "alarms_due": 1,
                    "draining": false,
                    "is_self": true
                }],
                "edges": [{
                    "from": "h-1",
                    "to": "h-2",
                    "to_address": "10.0.0.2:7571",
                    "state": "up",
                    "latency_p95_ms": 1.5,
                    "errors": 0,
                    "calls": 4,
                    "last_success_ms": NOW - 500,
                    "last_error": null
                }],
                "timeline": [{
                    "at_ms": NOW - 100,
                    "kind": "admin_action",
                    "subject": "h-2",
                    "detail": "drain requested",
                    "audit_id": "au-7"
                }]
            })
        );
        let back: ClusterState = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, state);
    }

    #[test]
    fn every_enum_value_has_its_snake_case_name() {
        assert_eq!(
            serde_json::json!([
                Lifecycle::Online,
                Lifecycle::Stale,
                Lifecycle::Partitioned,
                Lifecycle::Offline,
                EdgeState::Up,
                EdgeState::Degraded,
                EdgeState::Down,
                EdgeState::Unknown,
                Trust::SameClusterCa,
                Trust::Unknown,
                Trust::Foreign,
                NodeKind::Runtime,
                NodeKind::Host,
                Role::Viewer,
                Role::Operator,
                Role::Admin,
                EventKind::HostJoined,
                EventKind::HostLeft,
                EventKind::HostDeclaredDead,
                EventKind::PlacementTakenOver,
                EventKind::AlarmDropped,
                EventKind::AdminAction,
            ]),
            serde_json::json!([
                "online",
                "stale",
                "partitioned",
                "offline",
                "up",
                "degraded",
                "down",
                "unknown",
                "same_cluster_ca",
                "unknown",
                "foreign",
                "runtime",
                "host",
                "viewer",
                "operator",
                "admin",
                "host_joined",
                "host_left",
                "host_declared_dead",
                "placement_taken_over",
                "alarm_dropped",
                "admin_action"
            ])
        );
    }
}
