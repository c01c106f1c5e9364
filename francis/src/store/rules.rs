//! Rules every store applies the same way: health thresholds, expiry, ID formats, page limits,
//! alarm change detection, allowed-host checks, the choice of a host with capacity and the
//! cluster-identity check. The
//! memory and SQL stores both call these, so they judge facts identically.

use std::time::Duration;

use rand::seq::IndexedRandom;

use crate::clock::duration_ms;
use crate::model::{
    ActorKey, AlarmCompletion, AlarmLease, AlarmRecord, ClusterIdentity, HostId, LookupOptions,
    Placement, StateEntry, StateList, StoreError, StoreOptions,
};

/// The oldest heartbeat a healthy host may have at `now`.
pub(crate) fn health_threshold(options: &StoreOptions, now: i64) -> i64 {
    now.saturating_sub(duration_ms(options.health_check_deadline))
}

/// When something written at `now` with this TTL expires (`None` = never).
pub(crate) fn expiry_after(now: i64, ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|d| now.saturating_add(duration_ms(d)))
}

/// A new alarm row ID (UUIDv7: time-ordered).
pub(crate) fn new_alarm_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new lease ID (UUIDv4: unguessable).
pub(crate) fn new_lease_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The effective page size of [`ListStatesOptions::limit`].
pub(crate) fn page_limit(limit: u32) -> usize {
    match limit {
        0 => 100,
        l => l.min(1000) as usize,
    }
}

/// Turn up to `limit + 1` fetched entries into a page.
pub(crate) fn state_page(mut entries: Vec<StateEntry>, limit: usize) -> StateList {
    let has_more = entries.len() > limit;
    entries.truncate(limit);
    StateList { entries, has_more }
}

/// Whether re-setting `new` over `old` changes nothing that [`Store::set_alarm`] compares.
pub(crate) fn same_alarm_properties(old: &AlarmRecord, new: &AlarmRecord) -> bool {
    old.handler == new.handler
        && old.due_ms == new.due_ms
        && old.interval == new.interval
        && old.cron == new.cron
        && old.ttl_ms == new.ttl_ms
        && old.data == new.data
}

/// An existing placement is only acceptable if it is on one of the allowed hosts.
pub(crate) fn check_allowed(
    key: &ActorKey,
    placement: Placement,
    options: &LookupOptions,
) -> Result<Placement, StoreError> {
    match &options.allowed_hosts {
        Some(allowed) if !allowed.contains(&placement.host_id) => Err(StoreError::NoHost {
            actor_type: key.actor_type.clone(),
        }),
        _ => Ok(placement),
    }
}

/// One healthy host's capacity for one actor type.
#[derive(Debug, Clone)]
pub(crate) struct HostSlot {
    pub(crate) host_id: HostId,
    pub(crate) address: String,
    pub(crate) actor_type: String,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) concurrency_limit: u32,
    /// Activations of the type on the host. Only a limited type needs it, so stores may leave
    /// it 0 when `concurrency_limit` is 0 (unlimited) rather than count.
    pub(crate) active: u64,
}

impl HostSlot {
    fn has_capacity(&self) -> bool {
        self.concurrency_limit == 0 || self.active < u64::from(self.concurrency_limit)
    }

    pub(crate) fn into_placement(self) -> Placement {
        Placement {
            host_id: self.host_id,
            address: self.address,
            idle_timeout: self.idle_timeout,
        }
    }
}

/// Drop the slots of hosts the caller asked to avoid for a new placement.
pub(crate) fn without_avoided(slots: &mut Vec<HostSlot>, options: &LookupOptions) {
    if !options.avoid_hosts.is_empty() {
        slots.retain(|slot| !options.avoid_hosts.contains(&slot.host_id));
    }
}

/// Cluster admission of a host registering anew (not a live reattach), given the recorded
/// `maxHosts`, how many healthy hosts the cluster has (expired ones pruned), and the
/// registration's value: the value to record when it changes, or why the host may not join.
/// With no healthy host (or nothing recorded yet) the registration's value is taken; otherwise it
/// must equal the recorded one. A cluster holding `maxHosts` (> 0) healthy hosts is full.
pub(crate) fn admit_host(
    stored: Option<u32>,
    healthy: u64,
    configured: u32,
) -> Result<Option<u32>, StoreError> {
    let record = match stored {
        Some(stored) if healthy > 0 && stored != configured => {
            return Err(StoreError::MaxHostsMismatch { stored, configured });
        }
        Some(stored) if stored == configured => None,
        _ => Some(configured),
    };
    if configured > 0 && healthy >= u64::from(configured) {
        return Err(StoreError::ClusterFull {
            max_hosts: configured,
        });
    }
    Ok(record)
}

/// Judge a process's cluster CA fingerprints against the recorded ones: the outcome, and the
/// record to write (none on a mismatch, which leaves it alone).
pub(crate) fn judge_cluster_identity(
    recorded: Option<&[String]>,
    ours: &[String],
) -> Result<(ClusterIdentity, Option<String>), StoreError> {
    if ours.is_empty() || ours.iter().any(|f| f.is_empty() || f.contains(',')) {
        return Err(StoreError::Invalid(
            "cluster identity: expected one or more CA fingerprints without commas".into(),
        ));
    }
    let record = Some(ours.join(","));
    Ok(match recorded {
        None => (ClusterIdentity::Recorded, record),
        Some(recorded) if recorded.iter().any(|f| ours.contains(f)) => {
            (ClusterIdentity::Matched, record)
        }
        Some(recorded) => (
            ClusterIdentity::Mismatch {
                recorded: recorded.to_vec(),
            },
            None,
        ),
    })
}

/// The fingerprints of a stored cluster-identity record.
pub(crate) fn split_fingerprints(record: &str) -> Vec<String> {
    record
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Pick a random slot of `actor_type` with capacity and count one more activation on it.
pub(crate) fn reserve_slot(slots: &mut [HostSlot], actor_type: &str) -> Option<HostSlot> {
    let open: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].actor_type == actor_type && slots[i].has_capacity())
        .collect();
    let slot = slots.get_mut(*open.choose(&mut rand::rng())?)?;
    slot.active += 1;
    Some(slot.clone())
}

/// Order leases as fetches return them: by due time, then alarm ID.
pub(crate) fn sort_leases(leases: &mut [AlarmLease]) {
    leases.sort_by(|a, b| (a.due_ms, &a.alarm_id).cmp(&(b.due_ms, &b.alarm_id)));
}

/// The row changes of a non-deleting [`AlarmCompletion`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompletionUpdate {
    pub(crate) due_ms: i64,
    /// The new nominal time; `None` keeps the current one.
    pub(crate) scheduled_ms: Option<i64>,
    pub(crate) attempts: u32,
    pub(crate) keep_lease: bool,
}

impl CompletionUpdate {
    /// `None` for [`AlarmCompletion::Delete`] and [`AlarmCompletion::Succeeded`].
    pub(crate) fn of(completion: &AlarmCompletion) -> Option<Self> {
        match *completion {
            AlarmCompletion::Delete | AlarmCompletion::Succeeded => None,
            AlarmCompletion::Reschedule { due_ms, keep_lease } => Some(CompletionUpdate {
                due_ms,
                scheduled_ms: Some(due_ms),
                attempts: 0,
                keep_lease,
            }),
            AlarmCompletion::Retry {
                due_ms,
                attempts,
                keep_lease,
            } => Some(CompletionUpdate {
                due_ms,
                scheduled_ms: None,
                attempts,
                keep_lease,
            }),
        }
    }

    /// The lease as it stands after this update: new due time, and refreshed when kept (a
    /// released lease keeps its old expiry, but is no longer valid).
    pub(crate) fn lease_after(
        &self,
        lease: &AlarmLease,
        now: i64,
        lease_duration: Duration,
    ) -> AlarmLease {
        let expires_ms = if self.keep_lease {
            now.saturating_add(duration_ms(lease_duration))
        } else {
            lease.expires_ms
        };
        AlarmLease {
            due_ms: self.due_ms,
            expires_ms,
            ..lease.clone()
        }
    }
}
