//! Row shapes shared by the SQL stores (SQLite and PostgreSQL) and their conversion into the
//! store's types. sqlx's `FromRow` derive is generic over the database, so one definition
//! serves both.

use std::time::Duration;

use super::rules::HostSlot;
use super::{ActorKey, AlarmLease, AlarmRecord, StoreError};

/// An alarm row.
#[derive(sqlx::FromRow)]
pub(crate) struct AlarmRow {
    pub(crate) handler: String,
    pub(crate) due_ms: i64,
    pub(crate) scheduled_ms: i64,
    pub(crate) interval: Option<String>,
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
