//! Durable jobs as users write and dispatch them: [`JobError`] (how a `#[job]` method's error
//! says "retry", "permanent" or "rejected, run elsewhere"), the ready-made [`JobFailure`],
//! [`JobFailed`] (what a `#[job_failed]` hook receives), [`JobSpec`] for the untyped API and
//! [`JobBuilder`], the typed dispatcher generated proxies hand out
//! (`order.job_ship(payload).after(..).key("k").dispatch().await?`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actor::alarm::{Due, Ttl};
use crate::actor::reference::RawRef;
use crate::clock::duration_ms;
use crate::cron::Cron;
use crate::error::Error;
use crate::model::{CodecError, Envelope, JobRecord};
use crate::time::Interval;

/// What a failed job asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Run it again after a backoff, until the actor type's attempts are used up (then it is
    /// dead-lettered).
    #[default]
    Retry,
    /// Give up now: dead-letter it without further attempts.
    Permanent,
    /// This host cannot run it now (a capacity or capability it lacks): release it to run
    /// elsewhere, without counting an attempt.
    Reject,
}

/// The error type of a `#[job]` method: its [`Display`](fmt::Display) text is what the job
/// records, and [`disposition`](JobError::disposition) says what happens next (retry by
/// default).
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// #[derive(Debug, Serialize, Deserialize, thiserror::Error)]
/// enum ShipError {
///     #[error("carrier unavailable")]
///     CarrierDown,
///     #[error("address is invalid")]
///     BadAddress,
/// }
///
/// impl francis::JobError for ShipError {
///     fn disposition(&self) -> francis::Disposition {
///         match self {
///             ShipError::CarrierDown => francis::Disposition::Retry,
///             ShipError::BadAddress => francis::Disposition::Permanent,
///         }
///     }
/// }
/// ```
pub trait JobError: fmt::Display {
    /// What happens to the job after this error (default: retry).
    fn disposition(&self) -> Disposition {
        Disposition::Retry
    }
}

/// A ready-made job error: the disposition and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum JobFailure {
    /// Retry later.
    #[error("{0}")]
    Retry(String),
    /// Do not retry: dead-letter now.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// Run it on another host, without counting an attempt.
    #[error("rejected: {0}")]
    Reject(String),
}

impl JobError for JobFailure {
    fn disposition(&self) -> Disposition {
        match self {
            JobFailure::Retry(_) => Disposition::Retry,
            JobFailure::Permanent(_) => Disposition::Permanent,
            JobFailure::Reject(_) => Disposition::Reject,
        }
    }
}

impl JobError for String {}

impl From<String> for JobFailure {
    /// A message becomes a failure to retry.
    fn from(message: String) -> Self {
        JobFailure::Retry(message)
    }
}

impl From<&str> for JobFailure {
    /// A message becomes a failure to retry.
    fn from(message: &str) -> Self {
        JobFailure::Retry(message.to_owned())
    }
}

impl From<Box<dyn std::error::Error + Send + Sync>> for JobFailure {
    /// Any error becomes a failure to retry, with its text.
    fn from(error: Box<dyn std::error::Error + Send + Sync>) -> Self {
        JobFailure::Retry(error.to_string())
    }
}

/// The job occurrence a `#[job]` method is running for, as the host knows it: set by the
/// alarm engine around the method's call, read by the built-ins that run user code in jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunningJob {
    /// The job's ID.
    pub job_id: String,
    /// The nominal time of this occurrence (Unix ms): its due time, unchanged by retries.
    pub scheduled_ms: i64,
    /// Executions of this occurrence that failed before this one.
    pub failures: u32,
}

tokio::task_local! {
    static RUNNING_JOB: RunningJob;
}

impl RunningJob {
    /// The occurrence the calling `#[job]` method runs for; `None` outside of one.
    pub(crate) fn current() -> Option<RunningJob> {
        RUNNING_JOB.try_with(Clone::clone).ok()
    }

    /// Run `future` (a `#[job]` method's call) as this occurrence.
    pub(crate) async fn scope<F: std::future::Future>(self, future: F) -> F::Output {
        RUNNING_JOB.scope(self, future).await
    }
}

/// What a `#[job_failed(job)]` hook receives when that job was dead-lettered: the job, why it
/// failed, and its payload, typed as the job's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFailed<T> {
    /// The job's ID.
    pub job_id: String,
    /// The `#[job]` method's wire name.
    pub method: String,
    /// The last error.
    pub error: String,
    /// How many times it ran and failed.
    pub attempts: u32,
    /// The job's payload.
    pub payload: T,
}

/// The ID of a dispatched job (a UUIDv7), stable across its retries and repeats.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub String);

impl JobId {
    /// The ID's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for JobId {
    fn from(id: String) -> Self {
        JobId(id)
    }
}

/// A job, as the untyped API takes it: when it runs, whether it repeats, and with what.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobSpec {
    /// First due time; `None`: now, or the schedule's next tick for a cron job.
    pub due: Option<Due>,
    /// Repeat interval; `None` unless it repeats by interval.
    pub interval: Option<Interval>,
    /// Repeat schedule (5-field cron, UTC); `None` unless it repeats by cron.
    pub cron: Option<Cron>,
    /// When repeats stop; `None` for never.
    pub ttl: Option<Ttl>,
    /// The method's payload.
    pub data: Option<Envelope>,
    /// Idempotency key: while a job with this key exists on the actor (pending, running, or
    /// succeeded within 24 hours), dispatching another returns its ID.
    pub key: Option<String>,
}

impl JobSpec {
    /// Turn the spec into a stored record for `method`, resolving relative times at `now_ms`.
    pub(crate) fn into_record(self, method: String, now_ms: i64) -> Result<JobRecord, Error> {
        let invalid = Error::InvalidJob;
        if self.interval.is_some() && self.cron.is_some() {
            return Err(invalid(
                "a job repeats by interval or by cron schedule, not both: keep one of .every(..) \
                 and .cron(..)"
                    .into(),
            ));
        }
        if let Some(interval) = &self.interval
            && interval.is_zero()
        {
            return Err(invalid(
                "the repeat interval is zero; give a positive interval such as \"60s\" or \"PT1M\", or none for a one-shot job".into(),
            ));
        }
        let due_ms = match (self.due, &self.cron) {
            (Some(Due::Now), _) | (None, None) => now_ms,
            (Some(Due::AtMs(ms)), _) => ms,
            (Some(Due::After(d)), _) => now_ms.saturating_add(duration_ms(d)),
            (None, Some(cron)) => cron.next_after(now_ms).ok_or_else(|| {
                invalid(format!("the cron schedule {cron} never fires after now"))
            })?,
        };
        let ttl_ms = self.ttl.map(|ttl| match ttl {
            Ttl::UntilMs(ms) => ms,
            Ttl::For(d) => due_ms.saturating_add(duration_ms(d)),
        });
        let data = match self.data {
            Some(env) if !env.is_empty() => Some(env.into_msgpack()?),
            _ => None,
        };
        Ok(JobRecord {
            method,
            due_ms,
            interval: self.interval.map(|i| i.to_string()),
            cron: self.cron.map(|c| c.to_string()),
            ttl_ms,
            data,
            idempotency_key: self.key,
        })
    }
}

/// A typed job dispatcher for one `#[job]` method of one actor. Nothing is stored until
/// [`JobBuilder::dispatch`].
#[must_use = "a job is only stored when `.dispatch().await` is called"]
pub struct JobBuilder {
    target: RawRef,
    method: &'static str,
    data: Result<Envelope, CodecError>,
    cron: Option<Result<Cron, crate::cron::CronError>>,
    spec: JobSpec,
}

impl JobBuilder {
    /// Start a builder for `method` on `target` with an encoded payload (used by generated
    /// code).
    pub fn new<T: Serialize>(target: RawRef, method: &'static str, data: &T) -> Self {
        JobBuilder {
            target,
            method,
            data: Envelope::encode(data),
            cron: None,
            spec: JobSpec::default(),
        }
    }

    /// Run first at this time.
    pub fn at(mut self, when: jiff::Timestamp) -> Self {
        self.spec.due = Some(Due::AtMs(when.as_millisecond()));
        self
    }

    /// Run first this long from now.
    pub fn after(mut self, delay: Duration) -> Self {
        self.spec.due = Some(Due::After(delay));
        self
    }

    /// Repeat at this interval (a [`Duration`], or an [`Interval`] with calendar units such as
    /// `"P1M"`), on a fixed schedule that does not drift with execution time.
    pub fn every(mut self, interval: impl Into<Interval>) -> Self {
        self.spec.interval = Some(interval.into());
        self
    }

    /// Repeat on a 5-field cron schedule, in UTC (e.g. `"0 3 * * *"`, every day at 03:00).
    /// Without [`at`](Self::at) or [`after`](Self::after) the first run is the schedule's next
    /// tick. A malformed expression fails [`dispatch`](Self::dispatch).
    pub fn cron(mut self, expression: &str) -> Self {
        self.cron = Some(Cron::parse(expression));
        self
    }

    /// Stop repeating this long after the first due time.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.spec.ttl = Some(Ttl::For(ttl));
        self
    }

    /// Stop repeating after this time.
    pub fn until(mut self, deadline: jiff::Timestamp) -> Self {
        self.spec.ttl = Some(Ttl::UntilMs(deadline.as_millisecond()));
        self
    }

    /// An idempotency key: while a job with this key exists on the actor (pending, running,
    /// or succeeded within 24 hours), dispatching again returns its ID and stores nothing.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.spec.key = Some(key.into());
        self
    }

    /// Store the job; returns its ID.
    pub async fn dispatch(self) -> Result<JobId, Error> {
        let JobBuilder {
            target,
            method,
            data,
            cron,
            mut spec,
        } = self;
        spec.data = Some(data?);
        if let Some(cron) = cron {
            spec.cron = Some(cron.map_err(|e| Error::InvalidJob(e.to_string()))?);
        }
        let key = target.key();
        target
            .service()
            .dispatch_job(&key.actor_type, &key.actor_id, method, spec)
            .await
    }
}

/// The MessagePack of a [`JobFailed`] whose payload is `payload` (already MessagePack, or
/// empty for none), built without knowing the payload's type: the struct travels as an array
/// of its fields, in declaration order.
pub(crate) fn job_failed_envelope(
    job_id: &str,
    method: &str,
    error: &str,
    attempts: u32,
    payload: Option<&[u8]>,
) -> Result<Envelope, CodecError> {
    let head = (job_id, method, error, attempts);
    let mut bytes = rmp_serde::to_vec(&head).map_err(|e| CodecError(e.to_string()))?;
    // `head` is a 4-element array (0x94); the struct is a 5-element one (0x95).
    if bytes.first() != Some(&0x94) {
        return Err(CodecError("unexpected encoding of a job failure".into()));
    }
    bytes[0] = 0x95;
    match payload {
        Some(payload) if !payload.is_empty() => bytes.extend_from_slice(payload),
        // No payload: `()` encodes as nil.
        _ => bytes.push(0xc0),
    }
    Ok(Envelope::from_msgpack_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_envelope_decodes_as_the_typed_hook_argument() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Ship {
            order: u32,
            to: String,
        }
        let payload = rmp_serde::to_vec(&Ship {
            order: 7,
            to: "Oslo".into(),
        })
        .unwrap();
        let env = job_failed_envelope("j1", "ship", "boom", 3, Some(&payload)).unwrap();
        let failed: JobFailed<Ship> = env.decode().unwrap();
        assert_eq!(failed.job_id, "j1");
        assert_eq!(failed.attempts, 3);
        assert_eq!(failed.payload.to, "Oslo");
        let none = job_failed_envelope("j2", "tick", "x", 1, None).unwrap();
        let failed: JobFailed<()> = none.decode().unwrap();
        assert_eq!(failed.method, "tick");
    }

    #[test]
    fn a_spec_becomes_a_record_and_cron_jobs_wait_for_their_tick() {
        let now = "2026-12-05T02:30:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        let spec = JobSpec {
            cron: Some(Cron::parse("0 3 * * *").unwrap()),
            key: Some("nightly".into()),
            ..JobSpec::default()
        };
        let record = spec.into_record("report".into(), now).unwrap();
        assert_eq!(record.due_ms, now + 30 * 60 * 1000);
        assert_eq!(record.cron.as_deref(), Some("0 3 * * *"));
        assert_eq!(record.idempotency_key.as_deref(), Some("nightly"));

        let both = JobSpec {
            cron: Some(Cron::parse("0 3 * * *").unwrap()),
            interval: Some(Interval::from_duration(Duration::from_secs(60))),
            ..JobSpec::default()
        };
        assert!(both.into_record("x".into(), now).is_err());
        let plain = JobSpec::default().into_record("x".into(), now).unwrap();
        assert_eq!(plain.due_ms, now);
    }
}
