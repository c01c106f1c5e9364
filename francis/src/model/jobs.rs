//! Durable jobs as stores keep them. A job is a row of the alarm engine (it is leased, run in
//! its actor's exclusive turn, retried and dead-lettered like an alarm) in a namespace of its
//! own: its alarm name is `job/<key>`, and alarm names cannot hold `/`, so a job's idempotency
//! key never meets a plain alarm's name. Its job ID is the row's alarm ID (UUIDv7), stable
//! across retries and repeats.

use serde::{Deserialize, Serialize};

use super::key::ActorKey;

/// The prefix of every job's alarm name.
pub const JOB_NAME_PREFIX: &str = "job/";

/// How long a finished one-shot job is remembered as succeeded (for [`JobStatus::Succeeded`]
/// and for its idempotency key): 24 hours. Stores prune older results in their cleanup.
pub const JOB_RESULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The alarm name of the job with idempotency key (or, without one, job ID) `key`.
pub fn job_alarm_name(key: &str) -> String {
    format!("{JOB_NAME_PREFIX}{key}")
}

/// Whether an alarm name is a job's.
pub fn is_job_name(name: &str) -> bool {
    name.starts_with(JOB_NAME_PREFIX)
}

/// The idempotency key a job was dispatched with, from its alarm name and job ID (`None` when
/// it had none: its name then holds its own ID).
pub fn job_key_of<'a>(name: &'a str, job_id: &str) -> Option<&'a str> {
    name.strip_prefix(JOB_NAME_PREFIX)
        .filter(|key| *key != job_id)
}

/// A job to dispatch, as a store takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The `#[job]` method (wire name) that runs it.
    pub method: String,
    /// When it first runs (Unix ms).
    pub due_ms: i64,
    /// Repeat interval, canonical ISO 8601; `None` unless it repeats by interval.
    pub interval: Option<String>,
    /// Repeat schedule, a 5-field cron expression; `None` unless it repeats by cron.
    pub cron: Option<String>,
    /// No repeat is scheduled after this time (Unix ms).
    pub ttl_ms: Option<i64>,
    /// The method's payload (MessagePack), if any.
    #[serde(with = "serde_bytes")]
    pub data: Option<Vec<u8>>,
    /// The idempotency key: while a job with this key exists on the actor (pending, running,
    /// or succeeded within [`JOB_RESULT_RETENTION`]), dispatching another returns its ID.
    pub idempotency_key: Option<String>,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for its due time, or for a retry.
    Pending,
    /// Leased by a host and due: running now.
    Running,
    /// A one-shot job that ran to success (remembered for [`JOB_RESULT_RETENTION`]).
    Succeeded,
    /// Failed on every attempt (or permanently), and kept as a dead letter.
    DeadLettered,
}

impl JobStatus {
    /// The status's name: `pending`, `running`, `succeeded` or `dead_lettered`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::DeadLettered => "dead_lettered",
        }
    }
}

/// What a store reports of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    /// The job's ID.
    pub job_id: String,
    /// The actor it runs on.
    pub key: ActorKey,
    /// Its `#[job]` method.
    pub method: String,
    /// Where it stands.
    pub status: JobStatus,
    /// Executions that failed so far (for a succeeded job: before the one that succeeded; for
    /// a dead-lettered one: all of them).
    pub attempts: u32,
    /// When it next runs (Unix ms), while it is pending or running.
    pub due_ms: Option<i64>,
    /// Its repeat interval (ISO 8601), if it repeats by interval.
    pub interval: Option<String>,
    /// Its cron schedule, if it repeats by cron.
    pub cron: Option<String>,
    /// The idempotency key it was dispatched with.
    pub idempotency_key: Option<String>,
    /// The last error, for a dead-lettered job.
    pub last_error: Option<String>,
    /// When it succeeded or was dead-lettered (Unix ms).
    pub finished_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_carry_their_key_and_never_a_plain_alarm_name() {
        let name = job_alarm_name("welcome");
        assert_eq!(name, "job/welcome");
        assert!(is_job_name(&name));
        assert_eq!(job_key_of(&name, "0190-id"), Some("welcome"));
        assert_eq!(job_key_of("job/0190-id", "0190-id"), None);
        assert!(crate::error::validate_name("alarm name", &name).is_err());
    }
}
