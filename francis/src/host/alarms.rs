//! Durable alarms on a host: leasing due alarms from the store, running each occurrence in the
//! actor's exclusive turn, then completing it: delete a finished one-shot, reschedule a repeat
//! on its fixed schedule, or retry a failure with backoff until its attempts are used up.
//!
//! Two drivers share [`HostCore::execute_alarm`]: the background loop a running host uses
//! ([`alarm_loop`]), and the step-by-step driver of `francis::testing`, which moves a virtual
//! clock from one due time to the next ([`HostCore::run_alarms_until`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, Mutex};

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, oneshot, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::actor::dispatch::{DispatchError, MethodKind, job_failed_wire_name};
use crate::actor::job::{Disposition, RunningJob, job_failed_envelope};
use crate::actor::service::HostHandle;
use crate::clock::BoxFuture;
use crate::clock::duration_ms;
use crate::cron::Cron;
use crate::error::Error;
use crate::host::activation::{ExclusiveActor, ExclusiveJob};
use crate::host::core::{HostCore, Ownership, dispatch_error};
use crate::host::options::ActorOptions;
use crate::host::registry::ActorTypeEntry;
use crate::host::stopped;
use crate::model::ActorKey;
use crate::model::Envelope;
use crate::model::jobs::is_job_name;
use crate::model::{AlarmCompletion, AlarmLease, AlarmRecord, FetchAlarms};
use crate::telemetry::metrics::metrics;
use crate::time::{Interval, next_occurrence};

/// How one execution of an occurrence ended.
enum Outcome {
    /// The handler returned `Ok`.
    Succeeded,
    /// The handler failed (error, panic, bad payload, unknown handler): retry it until the
    /// attempts are used up.
    Failed(String),
    /// A job's error asked to give up now.
    Permanent(String),
    /// A job's error asked to run elsewhere: no attempt is counted.
    Rejected(String),
}

impl Outcome {
    /// The outcome of a handler's result.
    fn of(key: &ActorKey, method: &str, result: Result<Envelope, DispatchError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Succeeded,
            Err(DispatchError::Job {
                message,
                disposition,
            }) => match disposition {
                Disposition::Retry => Outcome::Failed(message),
                Disposition::Permanent => Outcome::Permanent(message),
                Disposition::Reject => Outcome::Rejected(message),
            },
            Err(e) => Outcome::Failed(dispatch_error(key, method, e).to_string()),
        }
    }
}

/// One alarm (or job) occurrence, run as an exclusive job on the actor's activation.
struct AlarmJob {
    core: Arc<HostCore>,
    lease: AlarmLease,
    entry: Arc<ActorTypeEntry>,
    reply: oneshot::Sender<Option<AlarmLease>>,
    /// The job's slot in its capacity group, held until the turn ends.
    _slot: Option<OwnedSemaphorePermit>,
}

impl ExclusiveJob for AlarmJob {
    fn run<'a>(self: Box<Self>, actor: &'a mut dyn ExclusiveActor) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let AlarmJob {
                core,
                lease,
                entry,
                reply,
                _slot,
            } = *self;
            let kept = core.alarm_turn(actor, &lease, &entry).await;
            let _ = reply.send(kept);
        })
    }
}

impl HostCore {
    fn fetch_request(&self, horizon_ms: i64) -> FetchAlarms {
        FetchAlarms {
            hosts: vec![self.host_id.clone()],
            horizon_ms,
            lease_duration: self.timings.alarms_lease_duration,
            batch_size: self.timings.alarms_batch_size,
        }
    }

    /// Run one leased occurrence to its end. Returns the lease again when this host keeps it
    /// for a next run that is due soon (a repeat or a retry).
    pub(crate) async fn execute_alarm(&self, lease: AlarmLease) -> Option<AlarmLease> {
        let span = tracing::debug_span!(
            "alarm.execute",
            otel.kind = "server",
            "francis.actor.type" = %lease.key.actor_type,
            "francis.actor.id" = %lease.key.actor_id,
            "francis.alarm.name" = %lease.name,
        );
        self.execute_alarm_traced(lease).instrument(span).await
    }

    async fn execute_alarm_traced(&self, lease: AlarmLease) -> Option<AlarmLease> {
        let entry = self.types.get(lease.key.actor_type.as_str()).cloned();
        let (Some(entry), Ok(core)) = (entry, self.arc()) else {
            self.release(&lease).await;
            return None;
        };
        // A job of a capacity group runs only while the group has a free slot here.
        let slot = match (&entry.capacity, is_job_name(&lease.name)) {
            (Some(slots), true) => match slots.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    tracing::debug!(actor = %lease.key, job = %lease.alarm_id, "capacity group full; releasing the job to run elsewhere");
                    if let Ok(Some(record)) = self.store.get_leased_alarm(&lease).await {
                        self.reroute(&lease, &record).await;
                    }
                    return None;
                }
            },
            _ => None,
        };
        let activation = match self
            .find_or_activate(&lease.key, &entry, false, Ownership::Unconfirmed)
            .await
        {
            Ok(activation) => activation,
            Err(e) => {
                tracing::debug!(actor = %lease.key, alarm = %lease.name, error = %e, "alarm not run here; releasing it");
                self.release(&lease).await;
                return None;
            }
        };
        let (reply, done) = oneshot::channel();
        let job = AlarmJob {
            core,
            lease: lease.clone(),
            entry,
            reply,
            _slot: slot,
        };
        if activation.run_exclusive(Box::new(job))
            && let Ok(kept) = done.await
        {
            return kept;
        }
        // The activation was halting: the occurrence did not run (or was cancelled), and is
        // left for the next fetch, here or on another host.
        self.release(&lease).await;
        None
    }

    /// Inside the exclusive turn: re-read the alarm (it may have changed or gone while the job
    /// waited), run its handler, and complete it before the turn ends. Completing after the
    /// turn would let a self-halting actor drop its placement, free the lease and get the alarm
    /// run twice.
    async fn alarm_turn(
        &self,
        actor: &mut dyn ExclusiveActor,
        lease: &AlarmLease,
        entry: &ActorTypeEntry,
    ) -> Option<AlarmLease> {
        let record = match self.store.get_leased_alarm(lease).await {
            Ok(Some(record)) => record,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(actor = %lease.key, alarm = %lease.name, error = %e, "could not read leased alarm");
                return None;
            }
        };
        let late_ms = self.clock.now_ms().saturating_sub(record.due_ms).max(0);
        metrics()
            .alarm_delay
            .with(&[])
            .observe_seconds(late_ms as f64 / 1000.0);
        let is_job = is_job_name(&lease.name);
        let (kind, what) = if is_job {
            (MethodKind::Job, "#[job] method")
        } else {
            (MethodKind::Alarm, "alarm handler")
        };
        let outcome = match entry.method(&record.handler).filter(|m| m.kind == kind) {
            None => Outcome::Failed(format!(
                "actor type {:?} has no {what} {:?}",
                lease.key.actor_type, record.handler
            )),
            Some(info) => {
                let data = Envelope::from_msgpack_bytes(record.data.clone().unwrap_or_default());
                let call = actor.call_exclusive(info.index, data);
                let call = if is_job {
                    let running = RunningJob {
                        job_id: lease.alarm_id.clone(),
                        scheduled_ms: record.scheduled_ms,
                        failures: record.attempts,
                    };
                    running.scope(call).boxed()
                } else {
                    call
                };
                match AssertUnwindSafe(call).catch_unwind().await {
                    Ok(result) => Outcome::of(&lease.key, info.name, result),
                    Err(_) => Outcome::Failed(format!("the {what} panicked")),
                }
            }
        };
        if let Outcome::Rejected(reason) = &outcome {
            tracing::debug!(actor = %lease.key, job = %lease.alarm_id, reason = %reason, "job rejected here; releasing it to run elsewhere");
            self.reroute(lease, &record).await;
            return None;
        }
        let failures = record.attempts.saturating_add(1);
        let dropped = match &outcome {
            Outcome::Failed(reason) if failures >= entry.options.alarm_max_attempts => {
                Some(reason.clone())
            }
            Outcome::Permanent(reason) => Some(reason.clone()),
            _ => None,
        };
        if let Some(reason) = &dropped {
            // Kept before the occurrence is completed (which may delete the alarm), so an
            // operator can see it and run it again.
            if let Err(e) = self.store.record_dead_letter(lease, failures, reason).await {
                tracing::warn!(actor = %lease.key, alarm = %lease.name, error = %e, "could not keep the dropped occurrence as a dead letter");
            }
        }
        let completion = self.completion(lease, &record, &entry.options, outcome);
        let kept = matches!(
            completion,
            AlarmCompletion::Reschedule {
                keep_lease: true,
                ..
            } | AlarmCompletion::Retry {
                keep_lease: true,
                ..
            }
        );
        let completed = self
            .store
            .complete_leased_alarm(lease, &completion, self.timings.alarms_lease_duration)
            .await;
        if let (true, Some(reason), Ok(Some(_))) = (is_job, &dropped, &completed) {
            job_failed_hook(actor, lease, &record, entry, failures, reason).await;
        }
        match completed {
            Ok(Some(updated)) if kept => Some(updated),
            Ok(_) => None,
            Err(e) => {
                // Its lease would otherwise be renewed for as long as the actor stays here.
                tracing::warn!(actor = %lease.key, alarm = %lease.name, error = %e, "could not complete alarm; releasing it, it will run again");
                self.release(lease).await;
                None
            }
        }
    }

    /// Give a job up here without counting an attempt: postpone it by one to two poll
    /// intervals, drop its lease, and let the actor's placement go (after this turn, if it is
    /// active), so any host may take the job.
    async fn reroute(&self, lease: &AlarmLease, record: &AlarmRecord) {
        let poll_ms = duration_ms(self.timings.alarms_poll_interval).max(1);
        let delay = rand::random_range(poll_ms..poll_ms.saturating_mul(2).max(poll_ms + 1));
        let completion = AlarmCompletion::Retry {
            due_ms: self.clock.now_ms().saturating_add(delay),
            attempts: record.attempts,
            keep_lease: false,
        };
        if let Err(e) = self
            .store
            .complete_leased_alarm(lease, &completion, self.timings.alarms_lease_duration)
            .await
        {
            tracing::warn!(actor = %lease.key, job = %lease.alarm_id, error = %e, "could not release the job; it runs again after its lease expires");
        }
        if self.lookup_local(&lease.key).is_some() {
            self.halt_deferred(lease.key.clone());
        } else if let Err(e) = self.store.remove_actor(&lease.key, &self.host_id).await {
            tracing::debug!(actor = %lease.key, error = %e, "could not give up the placement");
        }
    }

    /// Decide what happens to an occurrence after it ran.
    fn completion(
        &self,
        lease: &AlarmLease,
        record: &AlarmRecord,
        options: &ActorOptions,
        outcome: Outcome,
    ) -> AlarmCompletion {
        let now = self.clock.now_ms();
        let succeeded = matches!(outcome, Outcome::Succeeded);
        let keep_window = duration_ms(self.timings.alarms_poll_interval);
        let failures = record.attempts.saturating_add(1);
        let event = match &outcome {
            Outcome::Succeeded => "fired",
            Outcome::Failed(_) if failures < options.alarm_max_attempts => "retried",
            Outcome::Failed(_) | Outcome::Permanent(_) | Outcome::Rejected(_) => "dropped",
        };
        metrics().alarms.with(&[event]).inc();
        let failure = match outcome {
            Outcome::Succeeded => None,
            Outcome::Failed(reason) => Some((reason, failures < options.alarm_max_attempts)),
            Outcome::Permanent(reason) | Outcome::Rejected(reason) => Some((reason, false)),
        };
        if let Some((reason, retry)) = failure {
            if retry {
                let due_ms = now.saturating_add(duration_ms(options.retry_delay(failures)));
                tracing::warn!(actor = %lease.key, alarm = %lease.name, attempt = failures, error = %reason, "alarm failed; will retry");
                return AlarmCompletion::Retry {
                    due_ms,
                    attempts: failures,
                    keep_lease: due_ms - now <= keep_window,
                };
            }
            tracing::error!(
                actor = %lease.key, alarm = %lease.name, attempts = failures, error = %reason,
                "alarm failed on every attempt; dropping this occurrence"
            );
            self.watch.record(crate::cluster::TimelineEvent::new(
                now,
                crate::cluster::EventKind::AlarmDropped,
                format!("{}/{}", lease.key, lease.name),
                format!("failed {failures} times; last error: {reason}"),
            ));
        }
        // Success, or a failed occurrence that was dropped: move on to the next occurrence.
        let next = match (&record.interval, &record.cron) {
            (Some(text), _) => text
                .parse::<Interval>()
                .map(|interval| next_occurrence(record.scheduled_ms, &interval, now))
                .map_err(|e| e.to_string()),
            (None, Some(text)) => Cron::parse(text)
                .map(|cron| cron.next_after(now.max(record.scheduled_ms)))
                .map_err(|e| e.to_string()),
            (None, None) if succeeded && is_job_name(&lease.name) => {
                return AlarmCompletion::Succeeded;
            }
            (None, None) => return AlarmCompletion::Delete,
        };
        let next = match next {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(actor = %lease.key, alarm = %lease.name, error = %e, "stored repeat schedule is invalid; deleting the alarm");
                return AlarmCompletion::Delete;
            }
        };
        match next {
            Some(next) if record.ttl_ms.is_none_or(|ttl| next <= ttl) => {
                AlarmCompletion::Reschedule {
                    due_ms: next,
                    keep_lease: next - now <= keep_window,
                }
            }
            _ => AlarmCompletion::Delete,
        }
    }

    async fn release(&self, lease: &AlarmLease) {
        if let Err(e) = self.store.release_alarm_lease(lease).await {
            tracing::warn!(actor = %lease.key, alarm = %lease.name, error = %e, "could not release alarm lease");
        }
    }

    /// Drive alarms on a virtual clock: repeatedly take the earliest alarm due by `target_ms`,
    /// move the clock to its due time, and run it, until none is left; then set the clock to
    /// `target_ms`. Used by `francis::testing`, whose clock is a [`crate::clock::ManualClock`].
    pub(crate) async fn run_alarms_until(
        &self,
        target_ms: i64,
        set_clock: &(dyn Fn(i64) + Send + Sync),
    ) -> Result<usize, Error> {
        let mut queue: BinaryHeap<Reverse<(i64, String, LeaseSlot)>> = BinaryHeap::new();
        let mut ran = 0;
        loop {
            // Fetched before every occurrence, not only when the queue runs dry: one that
            // just ran may have rescheduled itself before those already queued.
            {
                for lease in self
                    .store
                    .fetch_and_lease_alarms(&self.fetch_request(target_ms))
                    .await?
                {
                    queue.push(Reverse((
                        lease.due_ms,
                        lease.alarm_id.clone(),
                        LeaseSlot(lease),
                    )));
                }
            }
            match queue.pop() {
                Some(Reverse((due, _, LeaseSlot(lease)))) if due <= target_ms => {
                    if due > self.clock.now_ms() {
                        set_clock(due);
                    }
                    ran += 1;
                    if let Some(kept) = self.execute_alarm(lease).await {
                        queue.push(Reverse((
                            kept.due_ms,
                            kept.alarm_id.clone(),
                            LeaseSlot(kept),
                        )));
                    }
                }
                _ => break,
            }
        }
        if target_ms > self.clock.now_ms() {
            set_clock(target_ms);
        }
        Ok(ran)
    }
}

/// After a job was dead-lettered, run its `#[job_failed]` hook, if the type has one, in the
/// same turn. Best effort: a failure is logged, never retried.
async fn job_failed_hook(
    actor: &mut dyn ExclusiveActor,
    lease: &AlarmLease,
    record: &AlarmRecord,
    entry: &ActorTypeEntry,
    attempts: u32,
    reason: &str,
) {
    let hook = job_failed_wire_name(&record.handler);
    let Some(info) = entry
        .method(&hook)
        .filter(|m| m.kind == MethodKind::JobFailed)
    else {
        return;
    };
    let args = match job_failed_envelope(
        &lease.alarm_id,
        &record.handler,
        reason,
        attempts,
        record.data.as_deref(),
    ) {
        Ok(args) => args,
        Err(e) => {
            tracing::warn!(actor = %lease.key, job = %lease.alarm_id, error = %e, "could not build the job_failed hook's argument");
            return;
        }
    };
    match AssertUnwindSafe(actor.call_exclusive(info.index, args))
        .catch_unwind()
        .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let e = dispatch_error(&lease.key, info.name, e);
            tracing::warn!(actor = %lease.key, job = %lease.alarm_id, error = %e, "the job_failed hook failed");
        }
        Err(_) => {
            tracing::warn!(actor = %lease.key, job = %lease.alarm_id, "the job_failed hook panicked");
        }
    }
}

/// A lease in the step driver's queue (ordered by due time and alarm ID only).
#[derive(PartialEq, Eq)]
struct LeaseSlot(AlarmLease);

impl PartialOrd for LeaseSlot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LeaseSlot {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// The background alarm loop of a running host: poll for due alarms, run each at its due time,
/// renew the leases it holds, and on shutdown wait for running occurrences and release the rest.
pub(crate) async fn alarm_loop(core: Arc<HostCore>, mut shutdown: watch::Receiver<bool>) {
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let poll_ms = duration_ms(core.timings.alarms_poll_interval);
    let renew_ms = duration_ms(renew_interval(core.timings.alarms_lease_duration));
    let mut next_renew = core.clock.now_ms().saturating_add(renew_ms);
    loop {
        let now = core.clock.now_ms();
        let horizon = now.saturating_add(duration_ms(core.timings.alarms_fetch_ahead));
        match core
            .store
            .fetch_and_lease_alarms(&core.fetch_request(horizon))
            .await
        {
            Ok(leases) => {
                for lease in leases {
                    let fresh = in_flight
                        .lock()
                        .map(|mut set| set.insert(lease.alarm_id.clone()))
                        .unwrap_or(false);
                    if fresh {
                        metrics().alarms.with(&["due"]).inc();
                        tasks.spawn(run_occurrences(
                            core.clone(),
                            lease,
                            in_flight.clone(),
                            shutdown.clone(),
                        ));
                    } else {
                        // Its previous run here is still ending (it gave its lease up, e.g. a
                        // job released to run elsewhere): let a later fetch take it.
                        core.release(&lease).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not fetch due alarms"),
        }
        if now >= next_renew {
            if let Err(e) = core
                .store
                .renew_alarm_leases(&core.host_id, core.timings.alarms_lease_duration)
                .await
            {
                tracing::warn!(error = %e, "could not renew alarm leases");
            }
            next_renew = now.saturating_add(renew_ms);
        }
        tokio::select! {
            _ = core.clock.sleep_until(now.saturating_add(poll_ms)) => {}
            _ = core.alarm_wake.notified() => {}
            _ = stopped(&mut shutdown) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Run a leased alarm at its due time, and again while this host keeps its lease.
async fn run_occurrences(
    core: Arc<HostCore>,
    mut lease: AlarmLease,
    in_flight: Arc<Mutex<HashSet<String>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let alarm_id = lease.alarm_id.clone();
    loop {
        tokio::select! {
            _ = core.clock.sleep_until(lease.due_ms) => {}
            _ = stopped(&mut shutdown) => {
                core.release(&lease).await;
                break;
            }
        }
        match core.execute_alarm(lease).await {
            Some(kept) => lease = kept,
            None => break,
        }
    }
    if let Ok(mut set) = in_flight.lock() {
        set.remove(&alarm_id);
    }
}

/// How often held leases are renewed: half the lease when it is short, else 10 s before expiry.
fn renew_interval(lease: std::time::Duration) -> std::time::Duration {
    let ten = std::time::Duration::from_secs(10);
    if lease < 2 * ten {
        lease / 2
    } else {
        lease - ten
    }
}
