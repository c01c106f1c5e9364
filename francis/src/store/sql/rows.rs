//! Row shapes the SQL store reads, and their conversion into the model's records. sqlx's
//! `FromRow` derive is generic over the database, so one definition serves both dialects.

use std::time::Duration;

use crate::model::{
    ActorKey, ActorTypeRegistration, AlarmLease, AlarmRecord, AuditRecord, AuditResult, DeadLetter,
    DueAlarmCount, HostInfo, Placement, PlacementCount, StateEntry, StoreError,
};
use crate::store::rules::HostSlot;

/// An alarm row.
#[derive(sqlx::FromRow)]
pub(crate) struct AlarmRow {
    pub(crate) handler: String,
    pub(crate) due_ms: i64,
    pub(crate) scheduled_ms: i64,
    pub(crate) interval: Option<String>,
    pub(crate) cron: Option<String>,
    pub(crate) ttl_ms: Option<i64>,
    pub(crate) data: Option<Vec<u8>>,
    pub(crate) attempts: i64,
}

impl TryFrom<AlarmRow> for AlarmRecord {
    type Error = StoreError;

    fn try_from(r: AlarmRow) -> Result<Self, StoreError> {
        let attempts = u32::try_from(r.attempts).map_err(|_| {
            StoreError::Invalid(format!("alarm attempts out of range: {}", r.attempts))
        })?;
        Ok(AlarmRecord {
            handler: r.handler,
            due_ms: r.due_ms,
            scheduled_ms: r.scheduled_ms,
            interval: r.interval,
            cron: r.cron,
            ttl_ms: r.ttl_ms,
            data: r.data,
            attempts,
        })
    }
}

/// A leased alarm row.
#[derive(sqlx::FromRow)]
pub(crate) struct LeaseRow {
    pub(crate) actor_type: String,
    pub(crate) actor_id: String,
    pub(crate) name: String,
    pub(crate) alarm_id: String,
    pub(crate) lease_id: String,
    pub(crate) due_ms: i64,
    pub(crate) expires_ms: i64,
}

impl From<LeaseRow> for AlarmLease {
    fn from(r: LeaseRow) -> Self {
        AlarmLease {
            key: ActorKey::new(r.actor_type, r.actor_id),
            name: r.name,
            alarm_id: r.alarm_id,
            lease_id: r.lease_id,
            due_ms: r.due_ms,
            expires_ms: r.expires_ms,
        }
    }
}

/// A healthy host's capacity for one actor type.
#[derive(sqlx::FromRow)]
pub(crate) struct SlotRow {
    pub(crate) host_id: String,
    pub(crate) address: String,
    pub(crate) actor_type: String,
    pub(crate) idle_timeout_ms: Option<i64>,
    pub(crate) concurrency_limit: i64,
    pub(crate) active: i64,
}

impl TryFrom<SlotRow> for HostSlot {
    type Error = StoreError;

    fn try_from(r: SlotRow) -> Result<Self, StoreError> {
        let out_of_range =
            |what: &str, v: i64| StoreError::Invalid(format!("{what} out of range: {v}"));
        Ok(HostSlot {
            host_id: r.host_id,
            address: r.address,
            actor_type: r.actor_type,
            idle_timeout: ms_to_duration(r.idle_timeout_ms)?,
            concurrency_limit: u32::try_from(r.concurrency_limit)
                .map_err(|_| out_of_range("concurrency limit", r.concurrency_limit))?,
            active: u64::try_from(r.active).map_err(|_| out_of_range("active count", r.active))?,
        })
    }
}

/// A stored duration in milliseconds (`None` = never).
pub(crate) fn ms_to_duration(ms: Option<i64>) -> Result<Option<Duration>, StoreError> {
    ms.map(|ms| {
        u64::try_from(ms)
            .map(Duration::from_millis)
            .map_err(|_| StoreError::Invalid(format!("negative idle timeout: {ms}")))
    })
    .transpose()
}

/// A host row, as listed.
#[derive(sqlx::FromRow)]
pub(crate) struct HostRow {
    pub(crate) host_id: String,
    pub(crate) address: String,
    pub(crate) last_heartbeat_ms: i64,
}

impl From<HostRow> for HostInfo {
    fn from(r: HostRow) -> Self {
        HostInfo {
            host_id: r.host_id,
            address: r.address,
            last_heartbeat_ms: r.last_heartbeat_ms,
        }
    }
}

/// A live placement joined with its host's address.
#[derive(sqlx::FromRow)]
pub(crate) struct PlacementRow {
    pub(crate) host_id: String,
    pub(crate) address: String,
    pub(crate) idle_timeout_ms: Option<i64>,
}

impl TryFrom<PlacementRow> for Placement {
    type Error = StoreError;

    fn try_from(r: PlacementRow) -> Result<Self, StoreError> {
        Ok(Placement {
            host_id: r.host_id,
            address: r.address,
            idle_timeout: ms_to_duration(r.idle_timeout_ms)?,
        })
    }
}

/// An actor's placement row, whatever its host's health.
#[derive(sqlx::FromRow)]
pub(crate) struct CurrentPlacementRow {
    pub(crate) host_id: String,
    pub(crate) healthy: bool,
}

/// One actor's state in a listing (the bytes only when asked for).
#[derive(sqlx::FromRow)]
pub(crate) struct StateRow {
    pub(crate) actor_id: String,
    pub(crate) data: Option<Vec<u8>>,
}

impl From<StateRow> for StateEntry {
    fn from(r: StateRow) -> Self {
        StateEntry {
            actor_id: r.actor_id,
            data: r.data,
        }
    }
}

/// A due alarm a fetch may lease, locked by the fetching transaction.
#[derive(sqlx::FromRow)]
pub(crate) struct CandidateRow {
    pub(crate) alarm_id: String,
    pub(crate) actor_type: String,
    pub(crate) actor_id: String,
    /// The healthy requested host the actor is placed on; `None` if unplaced or on an
    /// unhealthy host (free to place).
    pub(crate) live_host: Option<String>,
}

/// A host row as [`crate::model::Store::observe_cluster`] reads it, healthy or not.
#[derive(sqlx::FromRow)]
pub(crate) struct ObservedHostRow {
    pub(crate) host_id: String,
    pub(crate) address: String,
    pub(crate) version: Option<String>,
    pub(crate) last_heartbeat_ms: i64,
    pub(crate) draining: i64,
}

/// One actor type a host registered.
#[derive(sqlx::FromRow)]
pub(crate) struct HostTypeRow {
    pub(crate) host_id: String,
    pub(crate) actor_type: String,
    pub(crate) idle_timeout_ms: Option<i64>,
    pub(crate) concurrency_limit: i64,
}

impl HostTypeRow {
    /// The host's ID and the registration of the type.
    pub(crate) fn into_parts(self) -> Result<(String, ActorTypeRegistration), StoreError> {
        let concurrency_limit = u32::try_from(self.concurrency_limit).map_err(|_| {
            StoreError::Invalid(format!(
                "concurrency limit out of range: {}",
                self.concurrency_limit
            ))
        })?;
        Ok((
            self.host_id,
            ActorTypeRegistration {
                actor_type: self.actor_type,
                idle_timeout: ms_to_duration(self.idle_timeout_ms)?,
                concurrency_limit,
            },
        ))
    }
}

/// How many actors of one type are placed on one host.
#[derive(sqlx::FromRow)]
pub(crate) struct PlacementCountRow {
    pub(crate) host_id: String,
    pub(crate) actor_type: String,
    pub(crate) actors: i64,
}

impl TryFrom<PlacementCountRow> for PlacementCount {
    type Error = StoreError;

    fn try_from(r: PlacementCountRow) -> Result<Self, StoreError> {
        Ok(PlacementCount {
            host_id: r.host_id,
            actor_type: r.actor_type,
            actors: count(r.actors)?,
        })
    }
}

/// How many due alarms belong to actors placed on one host (`None`: placed nowhere).
#[derive(sqlx::FromRow)]
pub(crate) struct DueAlarmCountRow {
    pub(crate) host_id: Option<String>,
    pub(crate) alarms: i64,
}

impl TryFrom<DueAlarmCountRow> for DueAlarmCount {
    type Error = StoreError;

    fn try_from(r: DueAlarmCountRow) -> Result<Self, StoreError> {
        Ok(DueAlarmCount {
            host_id: r.host_id,
            alarms: count(r.alarms)?,
        })
    }
}

/// A `COUNT(*)` as an unsigned number.
fn count(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Invalid(format!("negative count: {n}")))
}

/// An audit row.
#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub(crate) audit_id: String,
    pub(crate) request_id: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) principal: String,
    pub(crate) started_ms: i64,
    pub(crate) finished_ms: Option<i64>,
    pub(crate) result: String,
    pub(crate) error: Option<String>,
    pub(crate) detail: Option<String>,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;

    fn try_from(r: AuditRow) -> Result<Self, StoreError> {
        let result = AuditResult::parse(&r.result).ok_or_else(|| {
            StoreError::Invalid(format!("unknown audit result {:?} stored", r.result))
        })?;
        Ok(AuditRecord {
            audit_id: r.audit_id,
            request_id: r.request_id,
            action: r.action,
            target: r.target,
            principal: r.principal,
            started_ms: r.started_ms,
            finished_ms: r.finished_ms,
            result,
            error: r.error,
            detail: r.detail,
        })
    }
}

/// A dead-letter row.
#[derive(sqlx::FromRow)]
pub(crate) struct DeadLetterRow {
    pub(crate) id: String,
    pub(crate) actor_type: String,
    pub(crate) actor_id: String,
    pub(crate) name: String,
    pub(crate) handler: String,
    pub(crate) data: Option<Vec<u8>>,
    pub(crate) scheduled_ms: i64,
    pub(crate) attempts: i64,
    pub(crate) last_error: String,
    pub(crate) dropped_ms: i64,
    pub(crate) job_id: Option<String>,
}

impl TryFrom<DeadLetterRow> for DeadLetter {
    type Error = StoreError;

    fn try_from(r: DeadLetterRow) -> Result<Self, StoreError> {
        let attempts = u32::try_from(r.attempts).map_err(|_| {
            StoreError::Invalid(format!("dead letter attempts out of range: {}", r.attempts))
        })?;
        Ok(DeadLetter {
            id: r.id,
            key: ActorKey::new(r.actor_type, r.actor_id),
            name: r.name,
            handler: r.handler,
            data: r.data,
            scheduled_ms: r.scheduled_ms,
            attempts,
            last_error: r.last_error,
            dropped_ms: r.dropped_ms,
            job_id: r.job_id,
        })
    }
}

/// One job, from its live row, its remembered result or its dead letter (`status` says which).
#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    pub(crate) job_id: String,
    pub(crate) actor_type: String,
    pub(crate) actor_id: String,
    pub(crate) name: String,
    pub(crate) method: String,
    pub(crate) attempts: i64,
    pub(crate) due_ms: Option<i64>,
    pub(crate) interval: Option<String>,
    pub(crate) cron: Option<String>,
    pub(crate) status: String,
    pub(crate) last_error: Option<String>,
    pub(crate) finished_ms: Option<i64>,
}
