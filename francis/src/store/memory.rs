//! The in-process store: every table is a map under one mutex. Non-durable; for tests,
//! single-process development and as the reference behaviour of the [`Store`] contract.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::clock::duration_ms;
use async_trait::async_trait;

use super::rules::{
    CompletionUpdate, HostSlot, admit_host, check_allowed, expiry_after, health_threshold,
    judge_cluster_identity, new_alarm_id, new_lease_id, page_limit, reserve_slot,
    same_alarm_properties, sort_leases, split_fingerprints, state_page, without_avoided,
};
use super::{
    ActorKey, ActorTypeRegistration, AlarmCompletion, AlarmLease, AlarmRecord, AuditQuery,
    AuditRecord, AuditResult, CleanupStats, ClusterIdentity, ClusterObservation, DeadLetter,
    DeadLetterQuery, DueAlarmCount, FetchAlarms, HostId, HostInfo, HostRegistration,
    ListStatesOptions, LookupOptions, ObservedHost, OperationsStore, Placement, PlacementCount,
    StateEntry, StateList, Store, StoreError, StoreOptions,
};
use crate::model::jobs::{JOB_RESULT_RETENTION, is_job_name, job_alarm_name, job_key_of};
use crate::model::operations::{
    MAX_AUDIT_DETAIL_BYTES, MAX_RECORDED_ERROR_BYTES, bounded_text, page_size,
};
use crate::model::{JobInfo, JobRecord, JobStatus};

/// A [`Store`] that keeps everything in memory, in this process only.
pub struct MemoryStore {
    options: StoreOptions,
    inner: Mutex<Tables>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Tables {
    hosts: BTreeMap<HostId, HostRow>,
    placements: HashMap<ActorKey, PlacementRow>,
    /// How many placements each (host, actor type) has: kept with `placements`, so placing an
    /// actor does not count them all.
    active: HashMap<(HostId, String), u64>,
    states: BTreeMap<ActorKey, StateRow>,
    alarms: BTreeMap<(ActorKey, String), AlarmRow>,
    /// The recorded cluster CA fingerprints.
    cluster: Option<Vec<String>>,
    /// The cluster's `maxHosts`, recorded by cluster admission.
    max_hosts: Option<u32>,
    /// The audit trail, in the order written.
    audit: Vec<AuditRecord>,
    /// Dead letters by ID.
    dead_letters: BTreeMap<String, DeadLetter>,
    /// Succeeded one-shot jobs by job ID.
    job_results: BTreeMap<String, JobResult>,
}

/// A succeeded one-shot job, remembered for its status and idempotency key.
struct JobResult {
    key: ActorKey,
    name: String,
    method: String,
    attempts: u32,
    finished_ms: i64,
}

struct HostRow {
    address: String,
    /// The Francis version it registered with; empty when unknown.
    version: String,
    last_heartbeat_ms: i64,
    actor_types: HashMap<String, ActorTypeRegistration>,
    /// Takes no new placements.
    draining: bool,
}

struct PlacementRow {
    host_id: HostId,
    idle_timeout: Option<Duration>,
}

struct StateRow {
    data: Vec<u8>,
    expires_ms: Option<i64>,
}

struct AlarmRow {
    alarm_id: String,
    record: AlarmRecord,
    lease: Option<LeaseRow>,
}

struct LeaseRow {
    lease_id: String,
    expires_ms: i64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(options: StoreOptions) -> Self {
        MemoryStore {
            options,
            inner: Mutex::new(Tables::default()),
        }
    }

    /// Lock the tables. A panic elsewhere while holding the lock cannot leave a half-applied
    /// change (every mutation is a plain map operation), so a poisoned lock is still usable.
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> i64 {
        self.options.clock.now_ms()
    }

    /// Current time and the oldest heartbeat a healthy host may have.
    fn now_and_threshold(&self) -> (i64, i64) {
        let now = self.now();
        (now, health_threshold(&self.options, now))
    }
}

impl Tables {
    fn healthy_host(&self, host_id: &str, threshold: i64) -> Option<&HostRow> {
        self.hosts
            .get(host_id)
            .filter(|h| h.last_heartbeat_ms >= threshold)
    }

    /// Delete a placement and release the leases of the actor's alarms.
    fn remove_placement(&mut self, key: &ActorKey) -> Option<PlacementRow> {
        let removed = self.placements.remove(key)?;
        let slot = (removed.host_id.clone(), key.actor_type.clone());
        if let Some(count) = self.active.get_mut(&slot) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.active.remove(&slot);
            }
        }
        for (_, alarm) in self.alarms_of_mut(key) {
            alarm.lease = None;
        }
        Some(removed)
    }

    fn alarms_of_mut<'a>(
        &'a mut self,
        key: &'a ActorKey,
    ) -> impl Iterator<Item = (&'a String, &'a mut AlarmRow)> {
        let start = (key.clone(), String::new());
        self.alarms
            .range_mut(start..)
            .take_while(move |((k, _), _)| k == key)
            .map(|((_, name), alarm)| (name, alarm))
    }

    /// Delete a host with its actor types and placements.
    fn remove_host(&mut self, host_id: &str) -> Option<HostRow> {
        let removed = self.hosts.remove(host_id)?;
        let keys: Vec<ActorKey> = self
            .placements
            .iter()
            .filter(|(_, p)| p.host_id == host_id)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &keys {
            self.remove_placement(key);
        }
        Some(removed)
    }

    fn prune_expired_hosts(&mut self, threshold: i64) -> u64 {
        let expired: Vec<HostId> = self
            .hosts
            .iter()
            .filter(|(_, h)| h.last_heartbeat_ms < threshold)
            .map(|(id, _)| id.clone())
            .collect();
        for host_id in &expired {
            self.remove_host(host_id);
        }
        expired.len() as u64
    }

    /// Capacity of healthy hosts per actor type, optionally narrowed to one type and some hosts.
    fn slots(
        &self,
        threshold: i64,
        actor_type: Option<&str>,
        hosts: Option<&[HostId]>,
    ) -> Vec<HostSlot> {
        let mut slots = Vec::new();
        for (host_id, host) in &self.hosts {
            if host.last_heartbeat_ms < threshold
                || host.draining
                || hosts.is_some_and(|hs| !hs.contains(host_id))
            {
                continue;
            }
            for t in host.actor_types.values() {
                if actor_type.is_some_and(|a| a != t.actor_type) {
                    continue;
                }
                slots.push(HostSlot {
                    host_id: host_id.clone(),
                    address: host.address.clone(),
                    actor_type: t.actor_type.clone(),
                    idle_timeout: t.idle_timeout,
                    concurrency_limit: t.concurrency_limit,
                    active: self
                        .active
                        .get(&(host_id.clone(), t.actor_type.clone()))
                        .copied()
                        .unwrap_or(0),
                });
            }
        }
        slots
    }

    /// Place an actor on a slot's host, replacing any stale placement.
    fn place(&mut self, key: &ActorKey, slot: &HostSlot) {
        self.remove_placement(key);
        *self
            .active
            .entry((slot.host_id.clone(), key.actor_type.clone()))
            .or_default() += 1;
        self.placements.insert(
            key.clone(),
            PlacementRow {
                host_id: slot.host_id.clone(),
                idle_timeout: slot.idle_timeout,
            },
        );
    }

    /// The alarm behind a lease, if the lease is valid at `now`.
    /// The dead letters `query` and `wanted` select, newest first, one page.
    fn dead_letters(
        &self,
        query: &DeadLetterQuery,
        wanted: impl Fn(&DeadLetter) -> bool,
    ) -> Vec<DeadLetter> {
        let mut letters: Vec<DeadLetter> = self
            .dead_letters
            .values()
            .filter(|d| {
                wanted(d)
                    && query
                        .actor_type
                        .as_ref()
                        .is_none_or(|a| &d.key.actor_type == a)
            })
            .cloned()
            .collect();
        letters.sort_by(|a, b| (b.dropped_ms, &b.id).cmp(&(a.dropped_ms, &a.id)));
        letters.truncate(page_size(query.limit) as usize);
        letters
    }

    /// The jobs `wanted(job_id, actor)` selects, one per job ID (live, else succeeded, else
    /// its newest dead letter), ordered by job ID.
    fn jobs(&self, now: i64, wanted: impl Fn(&str, &ActorKey) -> bool) -> Vec<JobInfo> {
        let mut jobs: BTreeMap<String, JobInfo> = BTreeMap::new();
        for letter in self.dead_letters.values() {
            let Some(job_id) = &letter.job_id else {
                continue;
            };
            if !wanted(job_id, &letter.key)
                || jobs
                    .get(job_id)
                    .is_some_and(|j| j.finished_ms >= Some(letter.dropped_ms))
            {
                continue;
            }
            let mut info = job_info(job_id, &letter.key, &letter.name, &letter.handler);
            info.status = JobStatus::DeadLettered;
            info.attempts = letter.attempts;
            info.last_error = Some(letter.last_error.clone());
            info.finished_ms = Some(letter.dropped_ms);
            jobs.insert(job_id.clone(), info);
        }
        for (job_id, result) in &self.job_results {
            if wanted(job_id, &result.key) {
                let mut info = job_info(job_id, &result.key, &result.name, &result.method);
                info.status = JobStatus::Succeeded;
                info.attempts = result.attempts;
                info.finished_ms = Some(result.finished_ms);
                jobs.insert(job_id.clone(), info);
            }
        }
        for ((key, name), row) in &self.alarms {
            if !is_job_name(name) || !wanted(&row.alarm_id, key) {
                continue;
            }
            let record = &row.record;
            let mut info = job_info(&row.alarm_id, key, name, &record.handler);
            let leased = row.lease.as_ref().is_some_and(|l| l.expires_ms >= now);
            if leased && record.due_ms <= now {
                info.status = JobStatus::Running;
            }
            info.attempts = record.attempts;
            info.due_ms = Some(record.due_ms);
            info.interval = record.interval.clone();
            info.cron = record.cron.clone();
            jobs.insert(row.alarm_id.clone(), info);
        }
        jobs.into_values().collect()
    }

    fn leased_alarm_mut(&mut self, lease: &AlarmLease, now: i64) -> Option<&mut AlarmRow> {
        self.alarms
            .get_mut(&(lease.key.clone(), lease.name.clone()))
            .filter(|a| {
                a.alarm_id == lease.alarm_id
                    && a.lease
                        .as_ref()
                        .is_some_and(|l| l.lease_id == lease.lease_id && l.expires_ms >= now)
            })
    }
}

impl StateRow {
    fn is_live(&self, now: i64) -> bool {
        self.expires_ms.is_none_or(|e| e > now)
    }
}

impl MemoryStore {
    /// Insert or refresh the registration of `host_id`; `true` when a healthy row was refreshed.
    fn register(&self, host_id: &str, registration: &HostRegistration) -> Result<bool, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let mut t = self.tables();
        t.prune_expired_hosts(threshold);
        // Every remaining host is healthy; a live reattach already holds its place.
        let admitted = if t.hosts.contains_key(host_id) {
            None
        } else {
            admit_host(t.max_hosts, t.hosts.len() as u64, registration.max_hosts)?
        };
        if t.hosts
            .iter()
            .any(|(id, h)| h.address == registration.address && id != host_id)
        {
            return Err(StoreError::HostAlreadyRegistered {
                address: registration.address.clone(),
            });
        }
        if admitted.is_some() {
            t.max_hosts = admitted;
        }
        let actor_types = registration
            .actor_types
            .iter()
            .map(|a| (a.actor_type.clone(), a.clone()))
            .collect();
        // A refreshed registration stays drained; a new one starts undrained.
        let draining = t.hosts.get(host_id).is_some_and(|h| h.draining);
        let previous = t.hosts.insert(
            host_id.to_owned(),
            HostRow {
                address: registration.address.clone(),
                version: registration.version.clone(),
                last_heartbeat_ms: now,
                actor_types,
                draining,
            },
        );
        Ok(previous.is_some())
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn options(&self) -> &StoreOptions {
        &self.options
    }

    async fn reattach_host(
        &self,
        host_id: &str,
        registration: &HostRegistration,
    ) -> Result<bool, StoreError> {
        self.register(host_id, registration)
    }

    async fn heartbeat(&self, host_id: &str) -> Result<(), StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let mut t = self.tables();
        match t
            .hosts
            .get_mut(host_id)
            .filter(|h| h.last_heartbeat_ms >= threshold)
        {
            Some(host) => {
                host.last_heartbeat_ms = now;
                Ok(())
            }
            None => Err(StoreError::HostUnregistered {
                host_id: host_id.to_owned(),
            }),
        }
    }

    async fn unregister_host(&self, host_id: &str) -> Result<(), StoreError> {
        let (_, threshold) = self.now_and_threshold();
        match self.tables().remove_host(host_id) {
            Some(host) if host.last_heartbeat_ms >= threshold => Ok(()),
            _ => Err(StoreError::HostUnregistered {
                host_id: host_id.to_owned(),
            }),
        }
    }

    async fn list_hosts(&self) -> Result<Vec<HostInfo>, StoreError> {
        let (_, threshold) = self.now_and_threshold();
        let t = self.tables();
        Ok(t.hosts
            .iter()
            .filter(|(_, h)| h.last_heartbeat_ms >= threshold)
            .map(|(id, h)| HostInfo {
                host_id: id.clone(),
                address: h.address.clone(),
                last_heartbeat_ms: h.last_heartbeat_ms,
            })
            .collect())
    }

    async fn lookup_actor(
        &self,
        key: &ActorKey,
        options: &LookupOptions,
    ) -> Result<Placement, StoreError> {
        let (_, threshold) = self.now_and_threshold();
        let mut t = self.tables();
        if let Some(p) = t.placements.get(key)
            && let Some(host) = t.healthy_host(&p.host_id, threshold)
        {
            let placement = Placement {
                host_id: p.host_id.clone(),
                address: host.address.clone(),
                idle_timeout: p.idle_timeout,
            };
            return check_allowed(key, placement, options);
        }
        if options.active_only {
            return Err(StoreError::NotActive { key: key.clone() });
        }
        let mut slots = t.slots(
            threshold,
            Some(&key.actor_type),
            options.allowed_hosts.as_deref(),
        );
        without_avoided(&mut slots, options);
        let slot = reserve_slot(&mut slots, &key.actor_type).ok_or_else(|| StoreError::NoHost {
            actor_type: key.actor_type.clone(),
        })?;
        t.place(key, &slot);
        Ok(slot.into_placement())
    }

    async fn remove_actor(&self, key: &ActorKey, host_id: &str) -> Result<bool, StoreError> {
        let mut t = self.tables();
        if t.placements.get(key).is_none_or(|p| p.host_id != host_id) {
            return Ok(false);
        }
        Ok(t.remove_placement(key).is_some())
    }

    async fn get_state(&self, key: &ActorKey) -> Result<Option<Vec<u8>>, StoreError> {
        let now = self.now();
        Ok(self
            .tables()
            .states
            .get(key)
            .filter(|s| s.is_live(now))
            .map(|s| s.data.clone()))
    }

    async fn set_state(
        &self,
        key: &ActorKey,
        data: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let expires_ms = expiry_after(self.now(), ttl);
        self.tables().states.insert(
            key.clone(),
            StateRow {
                data: data.to_vec(),
                expires_ms,
            },
        );
        Ok(())
    }

    async fn delete_state(&self, key: &ActorKey) -> Result<bool, StoreError> {
        let now = self.now();
        Ok(self
            .tables()
            .states
            .remove(key)
            .is_some_and(|s| s.is_live(now)))
    }

    async fn list_states(
        &self,
        actor_type: &str,
        options: &ListStatesOptions,
    ) -> Result<StateList, StoreError> {
        let now = self.now();
        let limit = page_limit(options.limit);
        let start = match &options.after {
            Some(after) => Bound::Excluded(ActorKey::new(actor_type, after.as_str())),
            None => Bound::Included(ActorKey::new(actor_type, "")),
        };
        let t = self.tables();
        let rows = t
            .states
            .range((start, Bound::Unbounded))
            .take_while(|(k, _)| k.actor_type == actor_type)
            .filter(|(_, s)| s.is_live(now))
            .take(limit + 1)
            .map(|(k, s)| StateEntry {
                actor_id: k.actor_id.clone(),
                data: options.include_data.then(|| s.data.clone()),
            })
            .collect();
        Ok(state_page(rows, limit))
    }

    async fn set_alarm(
        &self,
        key: &ActorKey,
        name: &str,
        alarm: &AlarmRecord,
    ) -> Result<(), StoreError> {
        let mut t = self.tables();
        let slot = (key.clone(), name.to_owned());
        if t.alarms
            .get(&slot)
            .is_some_and(|row| same_alarm_properties(&row.record, alarm))
        {
            return Ok(());
        }
        t.alarms.insert(
            slot,
            AlarmRow {
                alarm_id: new_alarm_id(),
                record: alarm.clone(),
                lease: None,
            },
        );
        Ok(())
    }

    async fn get_alarm(
        &self,
        key: &ActorKey,
        name: &str,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        Ok(self
            .tables()
            .alarms
            .get(&(key.clone(), name.to_owned()))
            .map(|a| a.record.clone()))
    }

    async fn delete_alarm(&self, key: &ActorKey, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .tables()
            .alarms
            .remove(&(key.clone(), name.to_owned()))
            .is_some())
    }

    async fn fetch_and_lease_alarms(
        &self,
        request: &FetchAlarms,
    ) -> Result<Vec<AlarmLease>, StoreError> {
        if request.hosts.is_empty() {
            return Ok(Vec::new());
        }
        let (now, threshold) = self.now_and_threshold();
        let expires_ms = now.saturating_add(duration_ms(request.lease_duration));
        let mut t = self.tables();
        let mut slots = t.slots(threshold, None, Some(&request.hosts));
        let supported: HashSet<&str> = slots.iter().map(|s| s.actor_type.as_str()).collect();

        // Where the actor lives now: `None` = free to place, `Some(true)` = on a requested host.
        let live_on_requested = |t: &Tables, key: &ActorKey| -> Option<bool> {
            let p = t.placements.get(key)?;
            t.healthy_host(&p.host_id, threshold)?;
            Some(request.hosts.contains(&p.host_id))
        };
        let mut candidates: Vec<(i64, String, ActorKey, String)> = t
            .alarms
            .iter()
            .filter(|((key, _), a)| {
                a.record.due_ms <= request.horizon_ms
                    && a.lease.as_ref().is_none_or(|l| l.expires_ms < now)
                    && supported.contains(key.actor_type.as_str())
                    && live_on_requested(&t, key) != Some(false)
            })
            .map(|((key, name), a)| {
                (
                    a.record.due_ms,
                    a.alarm_id.clone(),
                    key.clone(),
                    name.clone(),
                )
            })
            .collect();
        candidates.sort();
        candidates.truncate(request.batch_size as usize);

        let mut leases = Vec::with_capacity(candidates.len());
        for (due_ms, alarm_id, key, name) in candidates {
            if live_on_requested(&t, &key).is_none() {
                let Some(slot) = reserve_slot(&mut slots, &key.actor_type) else {
                    continue;
                };
                t.place(&key, &slot);
            }
            let lease_id = new_lease_id();
            if let Some(alarm) = t.alarms.get_mut(&(key.clone(), name.clone())) {
                alarm.lease = Some(LeaseRow {
                    lease_id: lease_id.clone(),
                    expires_ms,
                });
            }
            leases.push(AlarmLease {
                key,
                name,
                alarm_id,
                lease_id,
                due_ms,
                expires_ms,
            });
        }
        Ok(leases)
    }

    async fn get_leased_alarm(
        &self,
        lease: &AlarmLease,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        let now = self.now();
        Ok(self
            .tables()
            .leased_alarm_mut(lease, now)
            .map(|a| a.record.clone()))
    }

    async fn complete_leased_alarm(
        &self,
        lease: &AlarmLease,
        completion: &AlarmCompletion,
        lease_duration: Duration,
    ) -> Result<Option<AlarmLease>, StoreError> {
        let now = self.now();
        let mut t = self.tables();
        let Some(alarm) = t.leased_alarm_mut(lease, now) else {
            return Ok(None);
        };
        let Some(update) = CompletionUpdate::of(completion) else {
            let removed = t.alarms.remove(&(lease.key.clone(), lease.name.clone()));
            if let Some(row) = removed
                && *completion == AlarmCompletion::Succeeded
                && is_job_name(&lease.name)
            {
                t.job_results.insert(
                    row.alarm_id,
                    JobResult {
                        key: lease.key.clone(),
                        name: lease.name.clone(),
                        method: row.record.handler,
                        attempts: row.record.attempts,
                        finished_ms: now,
                    },
                );
            }
            return Ok(Some(lease.clone()));
        };
        let updated = update.lease_after(lease, now, lease_duration);
        alarm.record.due_ms = update.due_ms;
        alarm.record.scheduled_ms = update.scheduled_ms.unwrap_or(alarm.record.scheduled_ms);
        alarm.record.attempts = update.attempts;
        alarm.lease = update.keep_lease.then(|| LeaseRow {
            lease_id: updated.lease_id.clone(),
            expires_ms: updated.expires_ms,
        });
        Ok(Some(updated))
    }

    async fn release_alarm_lease(&self, lease: &AlarmLease) -> Result<bool, StoreError> {
        let now = self.now();
        let mut t = self.tables();
        let Some(alarm) = t.leased_alarm_mut(lease, now) else {
            return Ok(false);
        };
        alarm.lease = None;
        Ok(true)
    }

    async fn renew_alarm_leases(
        &self,
        host_id: &str,
        lease_duration: Duration,
    ) -> Result<Vec<AlarmLease>, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let expires_ms = now.saturating_add(duration_ms(lease_duration));
        let mut guard = self.tables();
        let t = &mut *guard;
        if t.healthy_host(host_id, threshold).is_none() {
            return Ok(Vec::new());
        }
        let mut leases = Vec::new();
        for ((key, name), alarm) in &mut t.alarms {
            if t.placements.get(key).is_none_or(|p| p.host_id != host_id) {
                continue;
            }
            let Some(lease) = alarm.lease.as_mut().filter(|l| l.expires_ms >= now) else {
                continue;
            };
            lease.expires_ms = expires_ms;
            leases.push(AlarmLease {
                key: key.clone(),
                name: name.clone(),
                alarm_id: alarm.alarm_id.clone(),
                lease_id: lease.lease_id.clone(),
                due_ms: alarm.record.due_ms,
                expires_ms,
            });
        }
        sort_leases(&mut leases);
        Ok(leases)
    }

    async fn claim_cluster_identity(
        &self,
        fingerprints: &[String],
    ) -> Result<ClusterIdentity, StoreError> {
        let mut t = self.tables();
        let (outcome, record) = judge_cluster_identity(t.cluster.as_deref(), fingerprints)?;
        if let Some(record) = record {
            t.cluster = Some(split_fingerprints(&record));
        }
        Ok(outcome)
    }

    async fn observe_cluster(&self) -> Result<ClusterObservation, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let t = self.tables();
        let hosts = t
            .hosts
            .iter()
            .map(|(id, h)| {
                let mut actor_types: Vec<ActorTypeRegistration> =
                    h.actor_types.values().cloned().collect();
                actor_types.sort_by(|a, b| a.actor_type.cmp(&b.actor_type));
                ObservedHost {
                    host_id: id.clone(),
                    address: h.address.clone(),
                    version: (!h.version.is_empty()).then(|| h.version.clone()),
                    last_heartbeat_ms: h.last_heartbeat_ms,
                    healthy: h.last_heartbeat_ms >= threshold,
                    draining: h.draining,
                    actor_types,
                }
            })
            .collect();
        let mut placements: Vec<PlacementCount> = t
            .active
            .iter()
            .map(|((host_id, actor_type), &actors)| PlacementCount {
                host_id: host_id.clone(),
                actor_type: actor_type.clone(),
                actors,
            })
            .collect();
        placements.sort_by(|a, b| (&a.host_id, &a.actor_type).cmp(&(&b.host_id, &b.actor_type)));
        let mut due: BTreeMap<Option<&HostId>, u64> = BTreeMap::new();
        for ((key, _), alarm) in &t.alarms {
            if alarm.record.due_ms <= now {
                *due.entry(t.placements.get(key).map(|p| &p.host_id))
                    .or_default() += 1;
            }
        }
        let due_alarms = due
            .into_iter()
            .map(|(host_id, alarms)| DueAlarmCount {
                host_id: host_id.cloned(),
                alarms,
            })
            .collect();
        Ok(ClusterObservation {
            observed_at_ms: now,
            health_check_deadline_ms: duration_ms(self.options.health_check_deadline)
                .unsigned_abs(),
            max_hosts: t.max_hosts,
            hosts,
            placements,
            due_alarms,
        })
    }

    async fn record_dead_letter(
        &self,
        lease: &AlarmLease,
        attempts: u32,
        error: &str,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let mut t = self.tables();
        let Some(alarm) = t.leased_alarm_mut(lease, now) else {
            return Ok(false);
        };
        let record = alarm.record.clone();
        let job_id = is_job_name(&lease.name).then(|| alarm.alarm_id.clone());
        let duplicate = t.dead_letters.values().any(|d| {
            d.key == lease.key
                && d.name == lease.name
                && d.scheduled_ms == record.scheduled_ms
                && d.job_id == job_id
        });
        if !duplicate {
            let id = new_alarm_id();
            t.dead_letters.insert(
                id.clone(),
                DeadLetter {
                    id,
                    key: lease.key.clone(),
                    name: lease.name.clone(),
                    handler: record.handler,
                    data: record.data,
                    scheduled_ms: record.scheduled_ms,
                    attempts,
                    last_error: bounded_text(error, MAX_RECORDED_ERROR_BYTES).to_owned(),
                    dropped_ms: now,
                    job_id,
                },
            );
        }
        Ok(true)
    }

    async fn dispatch_job(&self, key: &ActorKey, job: &JobRecord) -> Result<String, StoreError> {
        let now = self.now();
        let mut t = self.tables();
        let id = new_alarm_id();
        let name = job_alarm_name(job.idempotency_key.as_deref().unwrap_or(&id));
        if let Some(row) = t.alarms.get(&(key.clone(), name.clone())) {
            return Ok(row.alarm_id.clone());
        }
        let kept_since = now.saturating_sub(duration_ms(JOB_RESULT_RETENTION));
        if job.idempotency_key.is_some()
            && let Some((id, _)) = t
                .job_results
                .iter()
                .find(|(_, r)| r.key == *key && r.name == name && r.finished_ms >= kept_since)
        {
            return Ok(id.clone());
        }
        let mut record = AlarmRecord::new(job.method.clone(), job.due_ms);
        record.interval = job.interval.clone();
        record.cron = job.cron.clone();
        record.ttl_ms = job.ttl_ms;
        record.data = job.data.clone();
        t.alarms.insert(
            (key.clone(), name),
            AlarmRow {
                alarm_id: id.clone(),
                record,
                lease: None,
            },
        );
        Ok(id)
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<JobInfo>, StoreError> {
        let now = self.now();
        Ok(self
            .tables()
            .jobs(now, |job_id_of, _| job_id_of == job_id)
            .into_iter()
            .next())
    }

    async fn list_jobs(&self, key: &ActorKey) -> Result<Vec<JobInfo>, StoreError> {
        let now = self.now();
        Ok(self.tables().jobs(now, |_, of| of == key))
    }

    async fn cancel_job(&self, key: &ActorKey, job_id: &str) -> Result<bool, StoreError> {
        let mut t = self.tables();
        let before = t.alarms.len();
        t.alarms
            .retain(|(k, name), row| !(k == key && is_job_name(name) && row.alarm_id == job_id));
        Ok(t.alarms.len() < before)
    }

    async fn list_dead_jobs(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self.tables().dead_letters(query, |d| d.job_id.is_some()))
    }

    async fn get_dead_job(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        Ok(self
            .tables()
            .dead_letters
            .get(id)
            .filter(|d| d.job_id.is_some())
            .cloned())
    }

    async fn delete_dead_job(&self, id: &str) -> Result<bool, StoreError> {
        let mut t = self.tables();
        if t.dead_letters.get(id).is_none_or(|d| d.job_id.is_none()) {
            return Ok(false);
        }
        Ok(t.dead_letters.remove(id).is_some())
    }

    async fn retry_dead_job(&self, id: &str) -> Result<Option<String>, StoreError> {
        if self.get_dead_job(id).await?.is_none() {
            return Ok(None);
        }
        let replayed = OperationsStore::replay_dead_letter(self, id, self.now()).await?;
        Ok(replayed.map(|(_, job_id)| job_id))
    }

    async fn purge_dead_jobs(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut t = self.tables();
        let before = t.dead_letters.len();
        t.dead_letters
            .retain(|_, d| d.job_id.is_none() || d.dropped_ms >= before_ms);
        Ok((before - t.dead_letters.len()) as u64)
    }

    fn operations(&self) -> Option<&dyn OperationsStore> {
        Some(self)
    }

    async fn cleanup(&self) -> Result<CleanupStats, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let mut t = self.tables();
        let hosts = t.prune_expired_hosts(threshold);
        let before = t.states.len();
        t.states.retain(|_, s| s.is_live(now));
        let results = t.job_results.len();
        let kept_since = now.saturating_sub(duration_ms(JOB_RESULT_RETENTION));
        t.job_results.retain(|_, r| r.finished_ms >= kept_since);
        Ok(CleanupStats {
            hosts,
            states: (before - t.states.len()) as u64,
            job_results: (results - t.job_results.len()) as u64,
        })
    }
}

#[async_trait]
impl OperationsStore for MemoryStore {
    async fn set_host_draining(&self, host_id: &str, draining: bool) -> Result<bool, StoreError> {
        let mut t = self.tables();
        Ok(match t.hosts.get_mut(host_id) {
            Some(host) => {
                host.draining = draining;
                true
            }
            None => false,
        })
    }

    async fn begin_audit(&self, records: &[AuditRecord]) -> Result<Vec<AuditRecord>, StoreError> {
        let mut t = self.tables();
        let mut stored = Vec::with_capacity(records.len());
        for record in records {
            let existing = t
                .audit
                .iter()
                .find(|r| r.request_id == record.request_id && r.target == record.target)
                .cloned();
            stored.push(existing.unwrap_or_else(|| {
                t.audit.push(record.clone());
                record.clone()
            }));
        }
        Ok(stored)
    }

    async fn finish_audit(
        &self,
        audit_id: &str,
        finished_ms: i64,
        result: AuditResult,
        error: Option<&str>,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut t = self.tables();
        let Some(record) = t
            .audit
            .iter_mut()
            .find(|r| r.audit_id == audit_id && r.result == AuditResult::Pending)
        else {
            return Ok(false);
        };
        record.finished_ms = Some(finished_ms);
        record.result = result;
        record.error = error.map(|e| bounded_text(e, MAX_RECORDED_ERROR_BYTES).to_owned());
        record.detail = detail.map(|d| bounded_text(d, MAX_AUDIT_DETAIL_BYTES).to_owned());
        Ok(true)
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let t = self.tables();
        let mut records: Vec<AuditRecord> = t
            .audit
            .iter()
            .filter(|r| {
                query
                    .request_id
                    .as_ref()
                    .is_none_or(|id| &r.request_id == id)
            })
            .filter(|r| query.before_ms.is_none_or(|before| r.started_ms < before))
            .cloned()
            .collect();
        records.sort_by(|a, b| (b.started_ms, &b.audit_id).cmp(&(a.started_ms, &a.audit_id)));
        records.truncate(page_size(query.limit) as usize);
        Ok(records)
    }

    async fn list_dead_letters(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self.tables().dead_letters(query, |_| true))
    }

    async fn replay_dead_letter(
        &self,
        id: &str,
        due_ms: i64,
    ) -> Result<Option<(DeadLetter, String)>, StoreError> {
        let mut t = self.tables();
        let Some(letter) = t.dead_letters.remove(id) else {
            return Ok(None);
        };
        let mut record = AlarmRecord::new(letter.handler.clone(), due_ms);
        record.data = letter.data.clone();
        let alarm_id = new_alarm_id();
        // A job's letter runs as a fresh one-shot job; an alarm's sets its alarm again.
        let name = match letter.job_id {
            Some(_) => job_alarm_name(&alarm_id),
            None => letter.name.clone(),
        };
        t.alarms.insert(
            (letter.key.clone(), name),
            AlarmRow {
                alarm_id: alarm_id.clone(),
                record,
                lease: None,
            },
        );
        Ok(Some((letter, alarm_id)))
    }

    async fn prune_records(&self, before_ms: i64) -> Result<(u64, u64), StoreError> {
        let mut t = self.tables();
        let (audit, letters) = (t.audit.len(), t.dead_letters.len());
        t.audit
            .retain(|r| r.result == AuditResult::Pending || r.started_ms >= before_ms);
        t.dead_letters.retain(|_, d| d.dropped_ms >= before_ms);
        Ok((
            (audit - t.audit.len()) as u64,
            (letters - t.dead_letters.len()) as u64,
        ))
    }
}

/// A pending job's report, before the caller fills in what its source knows.
fn job_info(job_id: &str, key: &ActorKey, name: &str, method: &str) -> JobInfo {
    JobInfo {
        job_id: job_id.to_owned(),
        key: key.clone(),
        method: method.to_owned(),
        status: JobStatus::Pending,
        attempts: 0,
        due_ms: None,
        interval: None,
        cron: None,
        idempotency_key: job_key_of(name, job_id).map(str::to_owned),
        last_error: None,
        finished_ms: None,
    }
}
