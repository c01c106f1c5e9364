//! What the operations plane keeps in a store: the audit trail of admin actions, the dead
//! letters of alarms that failed on every attempt, and which hosts are draining; and the
//! [`OperationsStore`] trait that reads and writes them. Only a store a process owns has it (a
//! local host's, or a runtime's): a worker's link to its runtime does not.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::coordination::StoreError;
use super::key::ActorKey;

/// The longest error text kept in an audit record or a dead letter; longer ones are cut.
pub const MAX_RECORDED_ERROR_BYTES: usize = 4096;

/// The longest result detail kept in an audit record; longer ones are cut.
pub const MAX_AUDIT_DETAIL_BYTES: usize = 16 * 1024;

/// How an audited action ended for one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    /// Started, not finished yet (or the process died while it ran).
    Pending,
    /// Done.
    Ok,
    /// Tried, and failed: see the record's error.
    Failed,
    /// Still running when the request's budget ran out.
    Timeout,
}

impl AuditResult {
    /// The result's name, as stored: `pending`, `ok`, `failed` or `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Pending => "pending",
            AuditResult::Ok => "ok",
            AuditResult::Failed => "failed",
            AuditResult::Timeout => "timeout",
        }
    }

    /// The result named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        [
            AuditResult::Pending,
            AuditResult::Ok,
            AuditResult::Failed,
            AuditResult::Timeout,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }
}

/// One admin action on one target, as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The record's ID (returned to the caller as `audit_id`).
    pub audit_id: String,
    /// The caller's request ID: a request replayed with it gets the stored result back.
    pub request_id: String,
    /// The action (`drain_host`, `halt_actor`, …).
    pub action: String,
    /// What it acted on (a host ID, `type/id`, …).
    pub target: String,
    /// Who asked, from their credential (`token:admin:1a2b3c4d`, `cert:alice`, `loopback`).
    pub principal: String,
    /// When it started (Unix ms).
    pub started_ms: i64,
    /// When it ended (Unix ms), once it did.
    pub finished_ms: Option<i64>,
    /// How it ended.
    pub result: AuditResult,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// What it did, as JSON text (e.g. how many actors it halted), when it succeeded.
    pub detail: Option<String>,
}

/// Which audit records to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Only the records of this request.
    pub request_id: Option<String>,
    /// Only records started before this time (Unix ms): the page after one that ended there.
    pub before_ms: Option<i64>,
    /// At most this many (the store caps it at [`MAX_AUDIT_PAGE`]; 0 means the cap).
    pub limit: u32,
}

/// How long audit records and dead letters are kept: 30 days.
pub const OPERATIONS_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(30 * 24 * 3600);

/// The most audit records or dead letters one list returns.
pub const MAX_AUDIT_PAGE: u32 = 500;

/// An alarm occurrence that failed on every attempt, kept so an operator can see it and run it
/// again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The dead letter's ID.
    pub id: String,
    /// The actor the alarm belongs to.
    pub key: ActorKey,
    /// The alarm's name.
    pub name: String,
    /// The handler (method wire name) that failed.
    pub handler: String,
    /// The handler's payload (MessagePack), if any.
    #[serde(with = "serde_bytes")]
    pub data: Option<Vec<u8>>,
    /// The nominal time of the occurrence that failed (Unix ms).
    pub scheduled_ms: i64,
    /// How many times it ran and failed.
    pub attempts: u32,
    /// The last attempt's error.
    pub last_error: String,
    /// When it was given up on (Unix ms).
    pub dropped_ms: i64,
    /// The job's ID, when the occurrence was a job's (`None` for a plain alarm's).
    #[serde(default)]
    pub job_id: Option<String>,
}

/// Which dead letters to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterQuery {
    /// Only those of this actor type.
    pub actor_type: Option<String>,
    /// At most this many (the store caps it at [`MAX_AUDIT_PAGE`]; 0 means the cap).
    pub limit: u32,
}

/// The operations plane's records in a store a process owns (see the module's documentation).
#[async_trait]
pub trait OperationsStore: Send + Sync {
    /// Mark a registered host draining (no new placements go to it, and alarm fetches place
    /// nothing on it) or not. Returns whether the host is registered. The mark goes with the
    /// host's registration: a host that registers anew starts undrained.
    async fn set_host_draining(&self, host_id: &str, draining: bool) -> Result<bool, StoreError>;

    /// Record, in one transaction, that an action started on each of its targets. The first
    /// record of a `(request_id, target)` wins: where one exists it is kept and returned
    /// unchanged (the caller then reports it instead of acting again); the others are written.
    /// Returns the stored record of each of `records`, in their order.
    async fn begin_audit(&self, records: &[AuditRecord]) -> Result<Vec<AuditRecord>, StoreError>;

    /// Record how a started action ended. Returns whether the record exists and was pending.
    async fn finish_audit(
        &self,
        audit_id: &str,
        finished_ms: i64,
        result: AuditResult,
        error: Option<&str>,
        detail: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Audit records, newest first.
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// Dead letters, newest first.
    async fn list_dead_letters(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// Run a dead letter again: in one transaction, delete the dead letter and set its alarm
    /// as a one-shot due at `due_ms` with its handler and payload (replacing an alarm of that
    /// name, whose other occurrences then no longer run). A job's letter is dispatched as a
    /// fresh one-shot job instead (a new job ID, no idempotency key), leaving the job's own
    /// schedule alone. Concurrent replays of one letter run it once. Returns the letter and
    /// the ID of the alarm (or job) set, or `None` if the letter no longer exists.
    async fn replay_dead_letter(
        &self,
        id: &str,
        due_ms: i64,
    ) -> Result<Option<(DeadLetter, String)>, StoreError>;

    /// Delete the finished audit records started before `before_ms` and the dead letters
    /// dropped before it: how many of each.
    async fn prune_records(&self, before_ms: i64) -> Result<(u64, u64), StoreError>;
}

/// Delete what `store` keeps of the operations plane past [`OPERATIONS_RETENTION`] at `now_ms`,
/// if it keeps any (the cleanup loops of hosts and the runtime call it); logs what it did.
pub async fn prune_operations(store: &dyn super::Store, now_ms: i64) {
    let Some(ops) = store.operations() else {
        return;
    };
    let before = now_ms.saturating_sub(OPERATIONS_RETENTION.as_millis() as i64);
    match ops.prune_records(before).await {
        Ok((audit, dead_letters)) if audit + dead_letters > 0 => {
            tracing::debug!(audit, dead_letters, "pruned old operations records");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "pruning old operations records failed"),
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn bounded_text(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The page size a store uses for `limit`.
pub fn page_size(limit: u32) -> u32 {
    if limit == 0 {
        MAX_AUDIT_PAGE
    } else {
        limit.min(MAX_AUDIT_PAGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_through_their_names() {
        for result in [
            AuditResult::Pending,
            AuditResult::Ok,
            AuditResult::Failed,
            AuditResult::Timeout,
        ] {
            assert_eq!(AuditResult::parse(result.as_str()), Some(result));
        }
        assert_eq!(AuditResult::parse("OK"), None);
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(bounded_text("abc", 10), "abc");
        assert_eq!(bounded_text("abcdef", 3), "abc");
        // 'é' is two bytes: cutting inside it keeps the character out.
        assert_eq!(bounded_text("aé", 2), "a");
    }

    #[test]
    fn pages_are_capped() {
        assert_eq!(page_size(0), MAX_AUDIT_PAGE);
        assert_eq!(page_size(10), 10);
        assert_eq!(page_size(u32::MAX), MAX_AUDIT_PAGE);
    }
}
