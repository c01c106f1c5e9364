//! The SQLite store: one database file, shareable by several processes on one machine.
//!
//! Every multi-statement operation that must be atomic runs in a `BEGIN IMMEDIATE` transaction,
//! which takes SQLite's single write lock up front, so concurrent hosts (in this process or in
//! others) serialize instead of racing. A dropped future never leaves a transaction open: sqlx
//! rolls back a dropped [`Transaction`] before its connection is reused. Times are Unix
//! milliseconds from the store's clock, never SQLite's, so tests control them.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, SqliteExecutor, Transaction};
use tokio::sync::OwnedMutexGuard;

use super::rows::{AlarmRow, LeaseRow, SlotRow, ms_to_duration};
use super::rules::{
    CompletionUpdate, HostSlot, check_allowed, expiry_after, health_threshold, new_alarm_id,
    new_host_id, new_lease_id, page_limit, reserve_slot, sort_leases, state_page,
};
use super::{
    ActorKey, AlarmCompletion, AlarmLease, AlarmRecord, CleanupStats, FetchAlarms, HostId,
    HostInfo, HostRegistration, ListStatesOptions, LookupOptions, Placement, StateEntry, StateList,
    Store, StoreError, StoreOptions,
};
use crate::clock::duration_ms;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The condition of a valid lease; binds `?1` alarm ID, `?2` lease ID, `?3` now.
macro_rules! valid_lease {
    () => {
        "alarm_id = ?1 AND alarm_lease_id = ?2 AND alarm_lease_expiration_time >= ?3"
    };
}

/// The columns of an [`AlarmRecord`], named as [`AlarmRow`]'s fields.
macro_rules! alarm_columns {
    () => {
        "alarm_handler AS handler, alarm_due_time AS due_ms, alarm_scheduled_time AS scheduled_ms, \
         alarm_interval AS interval, alarm_ttl_time AS ttl_ms, alarm_data AS data, alarm_attempts AS attempts"
    };
}

/// The columns of an [`AlarmLease`], named as [`LeaseRow`]'s fields.
macro_rules! lease_columns {
    () => {
        "actor_type, actor_id, alarm_name AS name, alarm_id, alarm_lease_id AS lease_id, alarm_due_time AS due_ms, \
         alarm_lease_expiration_time AS expires_ms"
    };
}

/// A [`Store`] backed by one SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    options: StoreOptions,
    pool: SqlitePool,
    /// Serializes this process's write transactions: waiting here is a cheap async wait,
    /// while contending for SQLite's file lock means sleeping in its busy handler.
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

type Tx = Transaction<'static, Sqlite>;

/// Whether an error is SQLite's "database is locked" (SQLITE_BUSY and its extended codes).
fn is_busy(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => db
            .code()
            .is_some_and(|code| code == "5" || code.parse::<i32>().is_ok_and(|c| c & 0xff == 5)),
        StoreError::Migration(sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(db))) => {
            db.code()
                .is_some_and(|code| code.parse::<i32>().is_ok_and(|c| c & 0xff == 5))
        }
        _ => false,
    }
}

impl SqliteStore {
    /// Open (creating it if missing) the database at `path` and bring its schema up to date.
    ///
    /// Several processes may open one new file at the same moment; switching it to WAL mode
    /// can then report "database is locked" at once instead of waiting, so opening is retried
    /// briefly on that error alone.
    pub async fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let mut delay = Duration::from_millis(10);
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match Self::open_once(path, options.clone()).await {
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(250));
                }
                other => return other,
            }
        }
    }

    async fn open_once(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new().connect_with(connect).await?;
        let store = SqliteStore {
            options,
            pool,
            write_lock: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Apply pending migrations under the write lock, so processes opening the same new file at
    /// once do not both try to create the schema.
    async fn migrate(&self) -> Result<(), StoreError> {
        let (_write, mut tx) = self.begin_write().await?;
        // `run_direct` rather than `run(&mut *tx)`: the latter makes this future unusable with
        // `tokio::spawn` ("implementation of `Acquire` is not general enough").
        MIGRATOR.run_direct(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Close the connection pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction holding the database write lock from its first statement, and this
    /// process's write turn (hold the guard until the transaction ends).
    /// Insert or refresh the registration of `host_id`; `true` when a healthy row was refreshed.
    async fn register(
        &self,
        host_id: &str,
        registration: &HostRegistration,
    ) -> Result<bool, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let (_write, mut tx) = self.begin_write().await?;
        prune_expired_hosts(&mut tx, threshold).await?;
        let holder: Option<String> =
            sqlx::query_scalar("SELECT host_id FROM francis_hosts WHERE host_address = ?1")
                .bind(&registration.address)
                .fetch_optional(&mut *tx)
                .await?;
        if holder.is_some_and(|holder| holder != host_id) {
            return Err(StoreError::HostAlreadyRegistered {
                address: registration.address.clone(),
            });
        }
        let refreshed = bool_affected(
            sqlx::query(
                "UPDATE francis_hosts SET host_address = ?2, host_last_health_check = ?3
                 WHERE host_id = ?1",
            )
            .bind(host_id)
            .bind(&registration.address)
            .bind(now)
            .execute(&mut *tx)
            .await?,
        );
        if refreshed {
            sqlx::query("DELETE FROM francis_host_actor_types WHERE host_id = ?1")
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO francis_hosts (host_id, host_address, host_last_health_check)
                 VALUES (?1, ?2, ?3)",
            )
            .bind(host_id)
            .bind(&registration.address)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for t in &registration.actor_types {
            sqlx::query(
                "INSERT OR REPLACE INTO francis_host_actor_types
                     (host_id, actor_type, actor_idle_timeout_ms, actor_concurrency_limit)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(host_id)
            .bind(&t.actor_type)
            .bind(t.idle_timeout.map(duration_ms))
            .bind(i64::from(t.concurrency_limit))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(refreshed)
    }

    async fn begin_write(&self) -> Result<(OwnedMutexGuard<()>, Tx), StoreError> {
        let turn = self.write_lock.clone().lock_owned().await;
        Ok((turn, self.pool.begin_with("BEGIN IMMEDIATE").await?))
    }

    fn now(&self) -> i64 {
        self.options.clock.now_ms()
    }

    fn now_and_threshold(&self) -> (i64, i64) {
        let now = self.now();
        (now, health_threshold(&self.options, now))
    }
}

/// Delete hosts whose heartbeat is older than `threshold` (cascading to their placements).
async fn prune_expired_hosts(
    conn: &mut SqliteConnection,
    threshold: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM francis_hosts WHERE host_last_health_check < ?1")
        .bind(threshold)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Capacity of healthy hosts per actor type, optionally narrowed to one type and some hosts.
async fn load_slots(
    conn: &mut SqliteConnection,
    threshold: i64,
    actor_type: Option<&str>,
    hosts: Option<&[HostId]>,
) -> Result<Vec<HostSlot>, StoreError> {
    let hosts = hosts.map(json_array).transpose()?;
    let rows: Vec<SlotRow> = sqlx::query_as(
        "SELECT t.host_id, h.host_address AS address, t.actor_type,
                t.actor_idle_timeout_ms AS idle_timeout_ms,
                t.actor_concurrency_limit AS concurrency_limit,
                CASE WHEN t.actor_concurrency_limit > 0
                     THEN (SELECT COUNT(*) FROM francis_active_actors a
                           WHERE a.host_id = t.host_id AND a.actor_type = t.actor_type)
                     ELSE 0 END AS active
         FROM francis_host_actor_types t JOIN francis_hosts h ON h.host_id = t.host_id
         WHERE h.host_last_health_check >= ?1
           AND (?2 IS NULL OR t.actor_type = ?2)
           AND (?3 IS NULL OR t.host_id IN (SELECT value FROM json_each(?3)))
         ORDER BY t.host_id, t.actor_type",
    )
    .bind(threshold)
    .bind(actor_type)
    .bind(hosts)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(HostSlot::try_from).collect()
}

/// An actor's placement, if it is on a healthy host.
async fn live_placement<'e>(
    executor: impl SqliteExecutor<'e>,
    key: &ActorKey,
    threshold: i64,
) -> Result<Option<Placement>, StoreError> {
    let row: Option<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT a.host_id, h.host_address, a.actor_idle_timeout_ms
         FROM francis_active_actors a JOIN francis_hosts h ON h.host_id = a.host_id
         WHERE a.actor_type = ?1 AND a.actor_id = ?2 AND h.host_last_health_check >= ?3",
    )
    .bind(&key.actor_type)
    .bind(&key.actor_id)
    .bind(threshold)
    .fetch_optional(executor)
    .await?;
    row.map(|(host_id, address, idle_timeout_ms)| {
        Ok(Placement {
            host_id,
            address,
            idle_timeout: ms_to_duration(idle_timeout_ms)?,
        })
    })
    .transpose()
}

/// Place an actor on a slot's host, replacing any stale placement (whose deletion releases the
/// actor's alarm leases through the schema's trigger).
async fn place(
    conn: &mut SqliteConnection,
    key: &ActorKey,
    slot: &HostSlot,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM francis_active_actors WHERE actor_type = ?1 AND actor_id = ?2")
        .bind(&key.actor_type)
        .bind(&key.actor_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO francis_active_actors
             (actor_type, actor_id, host_id, actor_idle_timeout_ms, actor_activation)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(&key.actor_type)
    .bind(&key.actor_id)
    .bind(&slot.host_id)
    .bind(slot.idle_timeout.map(duration_ms))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

fn json_array<T: serde::Serialize>(items: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(items)
        .map_err(|e| StoreError::Invalid(format!("cannot encode a list: {e}")))
}

fn bool_affected(done: sqlx::sqlite::SqliteQueryResult) -> bool {
    done.rows_affected() > 0
}

#[async_trait]
impl Store for SqliteStore {
    fn options(&self) -> &StoreOptions {
        &self.options
    }

    async fn register_host(&self, registration: &HostRegistration) -> Result<HostId, StoreError> {
        let host_id = new_host_id();
        self.register(&host_id, registration).await?;
        tracing::debug!(%host_id, address = %registration.address, "registered host");
        Ok(host_id)
    }

    async fn reattach_host(
        &self,
        host_id: &str,
        registration: &HostRegistration,
    ) -> Result<bool, StoreError> {
        let reattached = self.register(host_id, registration).await?;
        tracing::debug!(%host_id, address = %registration.address, reattached, "re-registered host");
        Ok(reattached)
    }

    async fn heartbeat(&self, host_id: &str) -> Result<(), StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let done = sqlx::query(
            "UPDATE francis_hosts SET host_last_health_check = ?1
             WHERE host_id = ?2 AND host_last_health_check >= ?3",
        )
        .bind(now)
        .bind(host_id)
        .bind(threshold)
        .execute(&self.pool)
        .await?;
        if bool_affected(done) {
            Ok(())
        } else {
            Err(StoreError::HostUnregistered {
                host_id: host_id.to_owned(),
            })
        }
    }

    async fn unregister_host(&self, host_id: &str) -> Result<(), StoreError> {
        let (_, threshold) = self.now_and_threshold();
        let last: Option<i64> = sqlx::query_scalar(
            "DELETE FROM francis_hosts WHERE host_id = ?1 RETURNING host_last_health_check",
        )
        .bind(host_id)
        .fetch_optional(&self.pool)
        .await?;
        match last {
            Some(last) if last >= threshold => Ok(()),
            _ => Err(StoreError::HostUnregistered {
                host_id: host_id.to_owned(),
            }),
        }
    }

    async fn list_hosts(&self) -> Result<Vec<HostInfo>, StoreError> {
        let (_, threshold) = self.now_and_threshold();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT host_id, host_address, host_last_health_check FROM francis_hosts
             WHERE host_last_health_check >= ?1 ORDER BY host_id",
        )
        .bind(threshold)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(host_id, address, last_heartbeat_ms)| HostInfo {
                host_id,
                address,
                last_heartbeat_ms,
            })
            .collect())
    }

    async fn lookup_actor(
        &self,
        key: &ActorKey,
        options: &LookupOptions,
    ) -> Result<Placement, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        // Most lookups find a live placement: answer those without taking the write lock.
        if let Some(placement) = live_placement(&self.pool, key, threshold).await? {
            return check_allowed(key, placement, options);
        }
        if options.active_only {
            return Err(StoreError::NotActive { key: key.clone() });
        }
        let (_write, mut tx) = self.begin_write().await?;
        // Another host may have placed the actor since the check above.
        if let Some(placement) = live_placement(&mut *tx, key, threshold).await? {
            return check_allowed(key, placement, options);
        }
        let mut slots = load_slots(
            &mut tx,
            threshold,
            Some(&key.actor_type),
            options.allowed_hosts.as_deref(),
        )
        .await?;
        let slot = reserve_slot(&mut slots, &key.actor_type).ok_or_else(|| StoreError::NoHost {
            actor_type: key.actor_type.clone(),
        })?;
        place(&mut tx, key, &slot, now).await?;
        tx.commit().await?;
        Ok(slot.into_placement())
    }

    async fn remove_actor(&self, key: &ActorKey, host_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM francis_active_actors WHERE actor_type = ?1 AND actor_id = ?2 AND host_id = ?3",
        )
        .bind(&key.actor_type)
        .bind(&key.actor_id)
        .bind(host_id)
        .execute(&self.pool)
        .await?;
        Ok(bool_affected(done))
    }

    async fn get_state(&self, key: &ActorKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT actor_state_data FROM francis_actor_state
             WHERE actor_type = ?1 AND actor_id = ?2
               AND (actor_state_expiration_time IS NULL OR actor_state_expiration_time > ?3)",
        )
        .bind(&key.actor_type)
        .bind(&key.actor_id)
        .bind(self.now())
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn set_state(
        &self,
        key: &ActorKey,
        data: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO francis_actor_state (actor_type, actor_id, actor_state_data, actor_state_expiration_time)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (actor_type, actor_id) DO UPDATE SET
                 actor_state_data = excluded.actor_state_data,
                 actor_state_expiration_time = excluded.actor_state_expiration_time",
        )
        .bind(&key.actor_type)
        .bind(&key.actor_id)
        .bind(data)
        .bind(expiry_after(self.now(), ttl))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_state(&self, key: &ActorKey) -> Result<bool, StoreError> {
        let deleted: Option<Option<i64>> = sqlx::query_scalar(
            "DELETE FROM francis_actor_state WHERE actor_type = ?1 AND actor_id = ?2
             RETURNING actor_state_expiration_time",
        )
        .bind(&key.actor_type)
        .bind(&key.actor_id)
        .fetch_optional(&self.pool)
        .await?;
        let now = self.now();
        Ok(deleted.is_some_and(|expires| expires.is_none_or(|e| e > now)))
    }

    async fn list_states(
        &self,
        actor_type: &str,
        options: &ListStatesOptions,
    ) -> Result<StateList, StoreError> {
        let limit = page_limit(options.limit);
        let rows: Vec<(String, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT actor_id, CASE WHEN ?4 THEN actor_state_data END FROM francis_actor_state
             WHERE actor_type = ?1 AND (?2 IS NULL OR actor_id > ?2)
               AND (actor_state_expiration_time IS NULL OR actor_state_expiration_time > ?3)
             ORDER BY actor_id LIMIT ?5",
        )
        .bind(actor_type)
        .bind(options.after.as_deref())
        .bind(self.now())
        .bind(options.include_data)
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let entries = rows
            .into_iter()
            .map(|(actor_id, data)| StateEntry { actor_id, data })
            .collect();
        Ok(state_page(entries, limit))
    }

    async fn set_alarm(
        &self,
        key: &ActorKey,
        name: &str,
        alarm: &AlarmRecord,
    ) -> Result<(), StoreError> {
        // One statement: insert, or replace every field unless the compared properties are all
        // equal (`IS` compares NULLs as equal), in which case the row is left untouched.
        sqlx::query(
            "INSERT INTO francis_alarms (alarm_id, actor_type, actor_id, alarm_name, alarm_handler,
                 alarm_due_time, alarm_scheduled_time, alarm_interval, alarm_ttl_time, alarm_data, alarm_attempts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (actor_type, actor_id, alarm_name) DO UPDATE SET
                 alarm_id = excluded.alarm_id,
                 alarm_handler = excluded.alarm_handler,
                 alarm_due_time = excluded.alarm_due_time,
                 alarm_scheduled_time = excluded.alarm_scheduled_time,
                 alarm_interval = excluded.alarm_interval,
                 alarm_ttl_time = excluded.alarm_ttl_time,
                 alarm_data = excluded.alarm_data,
                 alarm_attempts = excluded.alarm_attempts,
                 alarm_lease_id = NULL,
                 alarm_lease_expiration_time = NULL
             WHERE NOT (alarm_handler IS excluded.alarm_handler
                 AND alarm_due_time IS excluded.alarm_due_time
                 AND alarm_interval IS excluded.alarm_interval
                 AND alarm_ttl_time IS excluded.alarm_ttl_time
                 AND alarm_data IS excluded.alarm_data)",
        )
        .bind(new_alarm_id())
        .bind(&key.actor_type)
        .bind(&key.actor_id)
        .bind(name)
        .bind(&alarm.handler)
        .bind(alarm.due_ms)
        .bind(alarm.scheduled_ms)
        .bind(alarm.interval.as_deref())
        .bind(alarm.ttl_ms)
        .bind(alarm.data.as_deref())
        .bind(i64::from(alarm.attempts))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_alarm(
        &self,
        key: &ActorKey,
        name: &str,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        let row: Option<AlarmRow> = sqlx::query_as(concat!(
            "SELECT ",
            alarm_columns!(),
            " FROM francis_alarms WHERE actor_type = ?1 AND actor_id = ?2 AND alarm_name = ?3"
        ))
        .bind(&key.actor_type)
        .bind(&key.actor_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(AlarmRecord::try_from).transpose()
    }

    async fn delete_alarm(&self, key: &ActorKey, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM francis_alarms WHERE actor_type = ?1 AND actor_id = ?2 AND alarm_name = ?3",
        )
        .bind(&key.actor_type)
        .bind(&key.actor_id)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(bool_affected(done))
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
        let (_write, mut tx) = self.begin_write().await?;
        let mut slots = load_slots(&mut tx, threshold, None, Some(&request.hosts)).await?;
        let supported: HashSet<&str> = slots.iter().map(|s| s.actor_type.as_str()).collect();
        let supported: Vec<&str> = supported.into_iter().collect();

        // `live_host` is NULL when the actor is unplaced or on an unhealthy host (free to place);
        // otherwise it is one of the requested hosts.
        let candidates: Vec<(String, String, String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT al.alarm_id, al.actor_type, al.actor_id, al.alarm_name, al.alarm_due_time,
                    h.host_id AS live_host
             FROM francis_alarms al
             LEFT JOIN francis_active_actors a ON a.actor_type = al.actor_type AND a.actor_id = al.actor_id
             LEFT JOIN francis_hosts h ON h.host_id = a.host_id AND h.host_last_health_check >= ?1
             WHERE al.alarm_due_time <= ?2
               AND (al.alarm_lease_id IS NULL OR al.alarm_lease_expiration_time < ?3)
               AND al.actor_type IN (SELECT value FROM json_each(?4))
               AND (h.host_id IS NULL OR h.host_id IN (SELECT value FROM json_each(?5)))
             ORDER BY al.alarm_due_time, al.alarm_id
             LIMIT ?6",
        )
        .bind(threshold)
        .bind(request.horizon_ms)
        .bind(now)
        .bind(json_array(&supported)?)
        .bind(json_array(&request.hosts)?)
        .bind(i64::from(request.batch_size))
        .fetch_all(&mut *tx)
        .await?;

        let mut placed_now: HashSet<ActorKey> = HashSet::new();
        let mut leases = Vec::with_capacity(candidates.len());
        for (alarm_id, actor_type, actor_id, name, due_ms, live_host) in candidates {
            let key = ActorKey::new(actor_type, actor_id);
            if live_host.is_none() && !placed_now.contains(&key) {
                let Some(slot) = reserve_slot(&mut slots, &key.actor_type) else {
                    continue;
                };
                place(&mut tx, &key, &slot, now).await?;
                placed_now.insert(key.clone());
            }
            let lease_id = new_lease_id();
            sqlx::query(
                "UPDATE francis_alarms SET alarm_lease_id = ?1, alarm_lease_expiration_time = ?2
                 WHERE alarm_id = ?3",
            )
            .bind(&lease_id)
            .bind(expires_ms)
            .bind(&alarm_id)
            .execute(&mut *tx)
            .await?;
            leases.push(AlarmLease {
                key,
                name,
                alarm_id,
                lease_id,
                due_ms,
                expires_ms,
            });
        }
        tx.commit().await?;
        Ok(leases)
    }

    async fn get_leased_alarm(
        &self,
        lease: &AlarmLease,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        let row: Option<AlarmRow> = sqlx::query_as(concat!(
            "SELECT ",
            alarm_columns!(),
            " FROM francis_alarms WHERE ",
            valid_lease!()
        ))
        .bind(&lease.alarm_id)
        .bind(&lease.lease_id)
        .bind(self.now())
        .fetch_optional(&self.pool)
        .await?;
        row.map(AlarmRecord::try_from).transpose()
    }

    async fn complete_leased_alarm(
        &self,
        lease: &AlarmLease,
        completion: &AlarmCompletion,
        lease_duration: Duration,
    ) -> Result<Option<AlarmLease>, StoreError> {
        let now = self.now();
        let Some(update) = CompletionUpdate::of(completion) else {
            let done = sqlx::query(concat!("DELETE FROM francis_alarms WHERE ", valid_lease!()))
                .bind(&lease.alarm_id)
                .bind(&lease.lease_id)
                .bind(now)
                .execute(&self.pool)
                .await?;
            return Ok(bool_affected(done).then(|| lease.clone()));
        };
        let updated = update.lease_after(lease, now, lease_duration);
        let kept = update
            .keep_lease
            .then_some((&updated.lease_id, updated.expires_ms));
        let done = sqlx::query(concat!(
            "UPDATE francis_alarms SET alarm_due_time = ?4,
                 alarm_scheduled_time = COALESCE(?5, alarm_scheduled_time), alarm_attempts = ?6,
                 alarm_lease_id = ?7, alarm_lease_expiration_time = ?8
             WHERE ",
            valid_lease!()
        ))
        .bind(&lease.alarm_id)
        .bind(&lease.lease_id)
        .bind(now)
        .bind(update.due_ms)
        .bind(update.scheduled_ms)
        .bind(i64::from(update.attempts))
        .bind(kept.map(|(id, _)| id))
        .bind(kept.map(|(_, exp)| exp))
        .execute(&self.pool)
        .await?;
        Ok(bool_affected(done).then_some(updated))
    }

    async fn release_alarm_lease(&self, lease: &AlarmLease) -> Result<bool, StoreError> {
        let done = sqlx::query(concat!(
            "UPDATE francis_alarms SET alarm_lease_id = NULL, alarm_lease_expiration_time = NULL WHERE ",
            valid_lease!()
        ))
        .bind(&lease.alarm_id)
        .bind(&lease.lease_id)
        .bind(self.now())
        .execute(&self.pool)
        .await?;
        Ok(bool_affected(done))
    }

    async fn renew_alarm_leases(
        &self,
        host_id: &str,
        lease_duration: Duration,
    ) -> Result<Vec<AlarmLease>, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let rows: Vec<LeaseRow> = sqlx::query_as(concat!(
            "UPDATE francis_alarms SET alarm_lease_expiration_time = ?1
             WHERE alarm_lease_id IS NOT NULL AND alarm_lease_expiration_time >= ?2
               AND EXISTS (SELECT 1 FROM francis_active_actors a JOIN francis_hosts h ON h.host_id = a.host_id
                           WHERE a.actor_type = francis_alarms.actor_type AND a.actor_id = francis_alarms.actor_id
                             AND a.host_id = ?3 AND h.host_last_health_check >= ?4)
             RETURNING ",
            lease_columns!()
        ))
        .bind(now.saturating_add(duration_ms(lease_duration)))
        .bind(now)
        .bind(host_id)
        .bind(threshold)
        .fetch_all(&self.pool)
        .await?;
        let mut leases: Vec<AlarmLease> = rows.into_iter().map(AlarmLease::from).collect();
        sort_leases(&mut leases);
        Ok(leases)
    }

    async fn cleanup(&self) -> Result<CleanupStats, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let mut conn = self.pool.acquire().await?;
        let hosts = prune_expired_hosts(&mut conn, threshold).await?;
        let states = sqlx::query(
            "DELETE FROM francis_actor_state
             WHERE actor_state_expiration_time IS NOT NULL AND actor_state_expiration_time <= ?1",
        )
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(CleanupStats { hosts, states })
    }
}
