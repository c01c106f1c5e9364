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
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::actor::dispatch::MethodKind;
use crate::clock::BoxFuture;
use crate::clock::duration_ms;
use crate::error::Error;
use crate::host::activation::{ExclusiveActor, ExclusiveJob};
use crate::host::core::{HostCore, Ownership, dispatch_error};
use crate::host::options::ActorOptions;
use crate::host::registry::ActorTypeEntry;
use crate::host::stopped;
use crate::model::Envelope;
use crate::model::{AlarmCompletion, AlarmLease, AlarmRecord, FetchAlarms};
use crate::telemetry::metrics::metrics;
use crate::time::{Interval, next_occurrence};

/// How one execution of an occurrence ended.
enum Outcome {
    /// The handler returned `Ok`.
    Succeeded,
    /// The handler failed (error, panic, bad payload, unknown handler).
    Failed(String),
}

/// One alarm occurrence, run as an exclusive job on the actor's activation.
struct AlarmJob {
    core: Arc<HostCore>,
    lease: AlarmLease,
    entry: Arc<ActorTypeEntry>,
    reply: oneshot::Sender<Option<AlarmLease>>,
}

impl ExclusiveJob for AlarmJob {
    fn run<'a>(self: Box<Self>, actor: &'a mut dyn ExclusiveActor) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let AlarmJob {
                core,
                lease,
                entry,
                reply,
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
        let outcome = match entry
            .method(&record.handler)
            .filter(|m| m.kind == MethodKind::Alarm)
        {
            None => Outcome::Failed(format!(
                "actor type {:?} has no alarm handler {:?}",
                lease.key.actor_type, record.handler
            )),
            Some(info) => {
                let data = Envelope::from_msgpack_bytes(record.data.clone().unwrap_or_default());
                match AssertUnwindSafe(actor.call_exclusive(info.index, data))
                    .catch_unwind()
                    .await
                {
                    Ok(Ok(_)) => Outcome::Succeeded,
                    Ok(Err(e)) => {
                        Outcome::Failed(dispatch_error(&lease.key, info.name, e).to_string())
                    }
                    Err(_) => Outcome::Failed("the alarm handler panicked".to_owned()),
                }
            }
        };
        let failures = record.attempts.saturating_add(1);
        if let Outcome::Failed(reason) = &outcome
            && failures >= entry.options.alarm_max_attempts
        {
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
        match self
            .store
            .complete_leased_alarm(lease, &completion, self.timings.alarms_lease_duration)
            .await
        {
            Ok(Some(updated)) if kept => Some(updated),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(actor = %lease.key, alarm = %lease.name, error = %e, "could not complete alarm; it will run again after its lease expires");
                None
            }
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
        let keep_window = duration_ms(self.timings.alarms_poll_interval);
        let event = match &outcome {
            Outcome::Succeeded => "fired",
            Outcome::Failed(_)
                if record.attempts.saturating_add(1) < options.alarm_max_attempts =>
            {
                "retried"
            }
            Outcome::Failed(_) => "dropped",
        };
        metrics().alarms.with(&[event]).inc();
        if let Outcome::Failed(reason) = outcome {
            let failures = record.attempts.saturating_add(1);
            if failures < options.alarm_max_attempts {
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
        let Some(text) = &record.interval else {
            return AlarmCompletion::Delete;
        };
        let interval = match text.parse::<Interval>() {
            Ok(interval) => interval,
            Err(e) => {
                tracing::error!(actor = %lease.key, alarm = %lease.name, error = %e, "stored alarm interval is invalid; deleting the alarm");
                return AlarmCompletion::Delete;
            }
        };
        match next_occurrence(record.scheduled_ms, &interval, now) {
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
            if queue
                .peek()
                .is_none_or(|Reverse((due, _, _))| *due > target_ms)
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
