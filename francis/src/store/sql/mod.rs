//! The SQL stores: one implementation of the coordination contract ([`Store`]) for SQLite and
//! PostgreSQL, over the small seam of [`Dialect`]. The statements use `$N` placeholders, which
//! both drivers accept; the few fragments that differ (list parameters, row locks) come from the
//! dialect.
//!
//! Concurrency, the same on both databases:
//! - **Placement** ([`Store::lookup_actor`]) runs in a write transaction that first takes the
//!   actor's placement lock ([`Dialect::lock_actor`]), so concurrent lookups of one actor from
//!   any number of processes serialize and all get the same placement.
//! - **Alarm fetches** ([`Store::fetch_and_lease_alarms`]) take candidate rows with
//!   [`Dialect::skip_locked`], so concurrent fetches lease disjoint alarms instead of queueing.
//!   An actor that must be placed is claimed with [`Dialect::try_lock_actor`] and skipped for this
//!   fetch if another transaction holds it. A fetch never waits for a lock while it holds alarm
//!   rows (that is how deadlocks with host pruning would arise): a stale placement is replaced
//!   with an upsert plus an explicit, lock-skipping release of the actor's other leases rather
//!   than through the lease-releasing trigger of the schema. A skipped alarm is left for the
//!   next fetch.
//! - **Capacity limits** (`concurrency_limit`) are best-effort under concurrency where the
//!   database has no single write lock (PostgreSQL): two transactions placing *different* actors
//!   of one type at the same instant may both take a host's last slot. Serial use respects them.
//! - **Cluster admission** (`maxHosts`, in [`Store::register_host`] and
//!   [`Store::reattach_host`]) locks the one row of `francis_cluster_admission` with
//!   [`Dialect::row_lock`] before it counts the healthy hosts, so concurrent registrations are
//!   admitted one at a time and a limit is never exceeded.
//! - Removing placements (directly, or through the cascade from a deleted host) releases the
//!   actors' alarm leases with an `AFTER DELETE` trigger of the schema.
//! - Transactions the database aborted in a way that running them again can fix
//!   ([`Dialect::is_retryable`]) are retried a few times; each is all-or-nothing, so a retry is
//!   safe.
//!
//! Times are Unix milliseconds from the store's clock, bound as parameters, never the database's
//! own time, so tests control them.

pub mod dialect;
mod jobs;
mod operations;
mod rows;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};

pub use self::dialect::Dialect;
use self::dialect::Tx;
use self::jobs::SqlJobs;
use self::rows::{
    AlarmRow, CandidateRow, CurrentPlacementRow, DueAlarmCountRow, HostRow, HostTypeRow, LeaseRow,
    ObservedHostRow, PlacementCountRow, PlacementRow, SlotRow, StateRow,
};
use super::rules::{
    CompletionUpdate, HostSlot, admit_host, check_allowed, expiry_after, health_threshold,
    judge_cluster_identity, new_alarm_id, new_lease_id, page_limit, reserve_slot, sort_leases,
    split_fingerprints, state_page, without_avoided,
};
use crate::clock::duration_ms;
use crate::model::operations::{MAX_RECORDED_ERROR_BYTES, bounded_text};
use crate::model::{
    ActorKey, ActorTypeRegistration, AlarmCompletion, AlarmLease, AlarmRecord, CleanupStats,
    ClusterIdentity, ClusterObservation, DueAlarmCount, FetchAlarms, HostId, HostInfo,
    HostRegistration, ListStatesOptions, LookupOptions, ObservedHost, OperationsStore, Placement,
    PlacementCount, StateEntry, StateList, Store, StoreError, StoreOptions,
};
use crate::model::{DeadLetter, DeadLetterQuery, JobInfo, JobRecord};
use crate::store::{QueryLog, SqlOptions};

/// How many times a transaction that failed retryably is run in total before its error is
/// returned.
const MAX_ATTEMPTS: u32 = 5;

/// The condition of a valid lease; binds `$1` alarm ID, `$2` lease ID, `$3` now.
macro_rules! valid_lease {
    () => {
        "alarm_id = $1 AND alarm_lease_id = $2 AND alarm_lease_expiration_time >= $3"
    };
}

/// The columns of an [`AlarmRecord`], named as [`AlarmRow`]'s fields.
macro_rules! alarm_columns {
    () => {
        "alarm_handler AS handler, alarm_due_time AS due_ms, alarm_scheduled_time AS scheduled_ms, \
         alarm_interval AS interval, alarm_cron AS cron, alarm_ttl_time AS ttl_ms, \
         alarm_data AS data, \
         alarm_attempts AS attempts"
    };
}

/// The columns of an [`AlarmLease`], named as [`LeaseRow`]'s fields.
macro_rules! lease_columns {
    () => {
        "actor_type, actor_id, alarm_name AS name, alarm_id, alarm_lease_id AS lease_id, \
         alarm_due_time AS due_ms, alarm_lease_expiration_time AS expires_ms"
    };
}

/// Set an alarm (`$1` new alarm ID, `$2`-`$4` type, ID and name, `$5`-`$12` the record): insert,
/// or replace every field unless the compared properties are all equal (`IS NOT DISTINCT FROM`
/// compares NULLs as equal), in which case the row is left untouched, keeping its ID, attempts
/// and lease.
pub(crate) const SET_ALARM: &str =
    "INSERT INTO francis_alarms AS al (alarm_id, actor_type, actor_id, alarm_name,
         alarm_handler, alarm_due_time, alarm_scheduled_time, alarm_interval,
         alarm_ttl_time, alarm_data, alarm_attempts, alarm_cron)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (actor_type, actor_id, alarm_name) DO UPDATE SET
         alarm_id = excluded.alarm_id,
         alarm_handler = excluded.alarm_handler,
         alarm_due_time = excluded.alarm_due_time,
         alarm_scheduled_time = excluded.alarm_scheduled_time,
         alarm_interval = excluded.alarm_interval,
         alarm_cron = excluded.alarm_cron,
         alarm_ttl_time = excluded.alarm_ttl_time,
         alarm_data = excluded.alarm_data,
         alarm_attempts = excluded.alarm_attempts,
         alarm_lease_id = NULL,
         alarm_lease_expiration_time = NULL
     WHERE NOT (al.alarm_handler IS NOT DISTINCT FROM excluded.alarm_handler
         AND al.alarm_due_time IS NOT DISTINCT FROM excluded.alarm_due_time
         AND al.alarm_interval IS NOT DISTINCT FROM excluded.alarm_interval
         AND al.alarm_cron IS NOT DISTINCT FROM excluded.alarm_cron
         AND al.alarm_ttl_time IS NOT DISTINCT FROM excluded.alarm_ttl_time
         AND al.alarm_data IS NOT DISTINCT FROM excluded.alarm_data)";

const PRUNE_EXPIRED_HOSTS: &str = "DELETE FROM francis_hosts WHERE host_last_health_check < $1";

const LIVE_PLACEMENT: &str = "SELECT a.host_id, h.host_address AS address, \
     a.actor_idle_timeout_ms AS idle_timeout_ms
     FROM francis_active_actors a JOIN francis_hosts h ON h.host_id = a.host_id
     WHERE a.actor_type = $1 AND a.actor_id = $2 AND h.host_last_health_check >= $3";

const DELETE_PLACEMENT: &str =
    "DELETE FROM francis_active_actors WHERE actor_type = $1 AND actor_id = $2";

const INSERT_PLACEMENT: &str = "INSERT INTO francis_active_actors
     (actor_type, actor_id, host_id, actor_idle_timeout_ms, actor_activation)
     VALUES ($1, $2, $3, $4, $5)";

/// [`INSERT_PLACEMENT`] that replaces an existing row in place (no delete, so the
/// lease-releasing trigger does not run).
const UPSERT_PLACEMENT: &str = "INSERT INTO francis_active_actors
     (actor_type, actor_id, host_id, actor_idle_timeout_ms, actor_activation)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (actor_type, actor_id) DO UPDATE SET
         host_id = excluded.host_id,
         actor_idle_timeout_ms = excluded.actor_idle_timeout_ms,
         actor_activation = excluded.actor_activation";

/// An actor's placement row with whether its host is healthy; binds `$3` the health threshold.
const CURRENT_PLACEMENT: &str =
    "SELECT a.host_id, COALESCE(h.host_last_health_check >= $3, FALSE) AS healthy
     FROM francis_active_actors a LEFT JOIN francis_hosts h ON h.host_id = a.host_id
     WHERE a.actor_type = $1 AND a.actor_id = $2";

/// The statements that take a dialect's fragments, written out once per store.
struct Statements {
    /// Healthy hosts' capacity per actor type; `$2` one type or NULL, `$3` a host list or NULL.
    load_slots: String,
    /// Due, unleased alarms a fetch may take, locked for the fetching transaction.
    fetch_candidates: String,
    /// Lock a stale placement row (`$1` type, `$2` ID, `$3` its host).
    lock_stale_placement: String,
    /// Release the leases of one actor's alarms that nobody else holds right now.
    release_actor_leases: String,
    /// Lease the alarms of list `$1` with the lease IDs of list `$2`, expiring at `$3`.
    lease_alarms: String,
    /// Read the cluster admission row, locking it until the transaction ends.
    lock_admission: String,
}

impl Statements {
    fn new<D: Dialect>() -> Self {
        Statements {
            load_slots: format!(
                "SELECT t.host_id, h.host_address AS address, t.actor_type,
                        t.actor_idle_timeout_ms AS idle_timeout_ms,
                        t.actor_concurrency_limit AS concurrency_limit,
                        CASE WHEN t.actor_concurrency_limit > 0
                             THEN (SELECT COUNT(*) FROM francis_active_actors a
                                   WHERE a.host_id = t.host_id AND a.actor_type = t.actor_type)
                             ELSE 0 END AS active
                 FROM francis_host_actor_types t JOIN francis_hosts h ON h.host_id = t.host_id
                 WHERE h.host_last_health_check >= $1 AND h.host_draining = 0
                   AND ($2 IS NULL OR t.actor_type = $2)
                   AND ($3 IS NULL OR {})
                 ORDER BY t.host_id, t.actor_type",
                D::member("t.host_id", "$3")
            ),
            // `live_host` is NULL when the actor is unplaced or on an unhealthy host (free to
            // place); otherwise it is one of the requested hosts. Rows another fetch has locked
            // are skipped, not waited for; once a concurrent lease commits, its row no longer
            // matches (the database re-checks locked rows against their latest version).
            fetch_candidates: format!(
                "SELECT al.alarm_id, al.actor_type, al.actor_id, h.host_id AS live_host
                 FROM francis_alarms al
                 LEFT JOIN francis_active_actors a
                     ON a.actor_type = al.actor_type AND a.actor_id = al.actor_id
                 LEFT JOIN francis_hosts h
                     ON h.host_id = a.host_id AND h.host_last_health_check >= $1
                 WHERE al.alarm_due_time <= $2
                   AND (al.alarm_lease_id IS NULL OR al.alarm_lease_expiration_time < $3)
                   AND {}
                   AND (h.host_id IS NULL OR {})
                 ORDER BY al.alarm_due_time, al.alarm_id
                 LIMIT $6
                 {}",
                D::member("al.actor_type", "$4"),
                D::member("h.host_id", "$5"),
                D::skip_locked("al"),
            ),
            lock_stale_placement: format!(
                "SELECT host_id FROM francis_active_actors
                 WHERE actor_type = $1 AND actor_id = $2 AND host_id = $3
                 {}",
                D::skip_locked("francis_active_actors")
            ),
            release_actor_leases: format!(
                "UPDATE francis_alarms SET alarm_lease_id = NULL, alarm_lease_expiration_time = NULL
                 WHERE alarm_id IN (
                     SELECT alarm_id FROM francis_alarms
                     WHERE actor_type = $1 AND actor_id = $2 AND alarm_lease_id IS NOT NULL
                     {})",
                D::skip_locked("francis_alarms")
            ),
            lease_alarms: format!(
                "UPDATE francis_alarms
                 SET alarm_lease_id = v.v_second, alarm_lease_expiration_time = $3
                 FROM {}
                 WHERE alarm_id = v.v_first
                 RETURNING {}",
                D::pairs("$1", "$2", "v"),
                lease_columns!()
            ),
            lock_admission: format!(
                "SELECT max_hosts FROM francis_cluster_admission WHERE admission_id = 1 {}",
                D::row_lock()
            ),
        }
    }
}

/// A [`Store`] on a SQL database: [`crate::store::sqlite::SqliteStore`] or
/// [`crate::store::postgres::PostgresStore`].
///
/// Every operation of the [`Store`] contract is bounded by [`SqlOptions::timeout`] and, when
/// the [`OperationLog`](crate::store::OperationLog) is enabled, logged with its duration.
pub struct SqlStore<D: Dialect> {
    options: StoreOptions,
    tuning: SqlOptions,
    pool: Pool<D::Db>,
    dialect: D,
    sql: Statements,
}

impl<D: Dialect> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &D::Db::NAME)
            .field("options", &self.options)
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

impl<D: Dialect> SqlStore<D> {
    /// A store over an open, migrated pool, bounded and logged as `tuning` says.
    pub(crate) fn new(
        pool: Pool<D::Db>,
        dialect: D,
        options: StoreOptions,
        tuning: SqlOptions,
    ) -> Self {
        SqlStore {
            options,
            tuning,
            pool,
            dialect,
            sql: Statements::new::<D>(),
        }
    }

    /// The connection pool.
    #[cfg(feature = "sqlite")]
    pub(crate) fn pool(&self) -> &Pool<D::Db> {
        &self.pool
    }

    /// The dialect.
    #[cfg(feature = "sqlite")]
    pub(crate) fn dialect(&self) -> &D {
        &self.dialect
    }

    /// Close the connection pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// How this store bounds and logs its operations.
    pub fn sql_options(&self) -> &SqlOptions {
        &self.tuning
    }

    fn now(&self) -> i64 {
        self.options.clock.now_ms()
    }

    /// Run store operation `op`: bounded by the store timeout (a late operation fails, and its
    /// transaction, dropped, rolls back) and, when the operation log is enabled, logged with
    /// its duration. A disabled log costs one branch.
    async fn operation<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.tuning.timeout;
        let bounded = async {
            tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "{op}: the {} database did not answer within {limit:?} (the store timeout)",
                    D::Db::NAME
                )))
            })
        };
        let log = self.tuning.operation_log;
        if !log.enabled {
            return bounded.await;
        }
        let started = std::time::Instant::now();
        let result = bounded.await;
        log_operation(
            op,
            started.elapsed(),
            result.as_ref().err(),
            log.slow_threshold,
        );
        result
    }

    fn now_and_threshold(&self) -> (i64, i64) {
        let now = self.now();
        (now, health_threshold(&self.options, now))
    }
}

/// A `maxHosts` value as stored.
fn stored_max_hosts(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value)
        .map_err(|_| StoreError::Invalid(format!("stored maxHosts out of range: {value}")))
}

/// `connect` with its statement logging set as `log` says: off when disabled; otherwise every
/// statement at debug level and, with a slow threshold, the slower ones at warn level. (sqlx's
/// own default, debug and warn above 1 s, is not used: the log is off unless asked for.)
pub(crate) fn with_query_log<O: sqlx::ConnectOptions>(connect: O, log: QueryLog) -> O {
    use log::LevelFilter;
    if !log.enabled {
        return connect.disable_statement_logging();
    }
    let connect = connect.log_statements(LevelFilter::Debug);
    match log.slow_threshold {
        Some(threshold) => connect.log_slow_statements(LevelFilter::Warn, threshold),
        None => connect.log_slow_statements(LevelFilter::Debug, Duration::from_secs(1)),
    }
}

/// The operation log's line for one operation: debug, or warn when slower than `slow`.
fn log_operation(
    op: &'static str,
    elapsed: Duration,
    error: Option<&StoreError>,
    slow: Option<Duration>,
) {
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    let error = error.map(tracing::field::display);
    match slow {
        Some(threshold) if elapsed > threshold => tracing::warn!(
            operation = op,
            elapsed_ms,
            slow_threshold = ?threshold,
            error,
            "slow store operation"
        ),
        _ => tracing::debug!(operation = op, elapsed_ms, error, "store operation"),
    }
}

/// Run `attempt` until it succeeds, fails for good, or [`MAX_ATTEMPTS`] runs failed retryably.
async fn retrying<D: Dialect, T, F, Fut>(what: &str, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut run = 1;
    loop {
        match attempt().await {
            Err(e) if run < MAX_ATTEMPTS && D::is_retryable(&e) => {
                tracing::debug!(operation = what, run, error = %e, "retrying a transaction");
                run += 1;
                tokio::task::yield_now().await;
            }
            result => return result,
        }
    }
}

// The bounds of the two impl blocks below say what the shared SQL needs of a sqlx driver:
// running statements on its connections, binding and decoding these types, reading these row
// shapes. Both drivers meet them. (Rust cannot name such a set of bounds once, so each block
// states it.) The row shapes are internal, hence `private_bounds`: only the two sealed dialects
// can meet these bounds anyway.

#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    for<'q> Option<&'q [u8]>: Encode<'q, D::Db>,
    for<'q> Option<D::List<'q>>: Encode<'q, D::Db>,
    for<'r> String: Decode<'r, D::Db> + Type<D::Db>,
    for<'r> Vec<u8>: Decode<'r, D::Db> + Type<D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    for<'r> AlarmRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> LeaseRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> SlotRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> HostRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> PlacementRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> StateRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> CandidateRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> CurrentPlacementRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> ObservedHostRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> HostTypeRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> PlacementCountRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> DueAlarmCountRow: FromRow<'r, <D::Db as Database>::Row>,
{
    /// Insert or refresh the registration of `host_id`; `true` when a healthy row was refreshed.
    async fn register(
        &self,
        host_id: &str,
        registration: &HostRegistration,
    ) -> Result<bool, StoreError> {
        retrying::<D, _, _, _>("register_host", || {
            self.register_once(host_id, registration)
        })
        .await
    }

    async fn register_once(
        &self,
        host_id: &str,
        registration: &HostRegistration,
    ) -> Result<bool, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let address = registration.address.as_str();
        let taken = || StoreError::HostAlreadyRegistered {
            address: registration.address.clone(),
        };
        let (_turn, mut tx) = self.dialect.begin_write(&self.pool).await?;
        // Taken first, before any host row: registrations are admitted one at a time, and
        // nothing else locks this row, so no lock cycle can form around it.
        let stored = self.lock_admission(&mut tx, now).await?;
        sqlx::query(PRUNE_EXPIRED_HOSTS)
            .bind(threshold)
            .execute(&mut *tx)
            .await?;
        // Every remaining host is healthy; a live reattach already holds its place.
        let live: Option<String> =
            sqlx::query_scalar("SELECT host_id FROM francis_hosts WHERE host_id = $1")
                .bind(host_id)
                .fetch_optional(&mut *tx)
                .await?;
        if live.is_none() {
            let healthy: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM francis_hosts")
                .fetch_one(&mut *tx)
                .await?;
            let healthy = u64::try_from(healthy).unwrap_or(0);
            if let Some(record) = admit_host(stored, healthy, registration.max_hosts)? {
                sqlx::query(
                    "UPDATE francis_cluster_admission SET max_hosts = $1, updated_at = $2
                     WHERE admission_id = 1",
                )
                .bind(i64::from(record))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        let holder: Option<String> =
            sqlx::query_scalar("SELECT host_id FROM francis_hosts WHERE host_address = $1")
                .bind(address)
                .fetch_optional(&mut *tx)
                .await?;
        if holder.is_some_and(|holder| holder != host_id) {
            return Err(taken());
        }
        let version = Some(registration.version.as_str()).filter(|v| !v.is_empty());
        let refreshed = sqlx::query(
            "UPDATE francis_hosts
             SET host_address = $2, host_last_health_check = $3, host_version = $4
             WHERE host_id = $1",
        )
        .bind(host_id)
        .bind(address)
        .bind(now)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        let refreshed = D::rows_affected(&refreshed) > 0;
        if refreshed {
            sqlx::query("DELETE FROM francis_host_actor_types WHERE host_id = $1")
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
        } else {
            let inserted = sqlx::query(
                "INSERT INTO francis_hosts
                     (host_id, host_address, host_last_health_check, host_version)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (host_address) DO NOTHING",
            )
            .bind(host_id)
            .bind(address)
            .bind(now)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            if D::rows_affected(&inserted) == 0 {
                // Another healthy host took the address since the check above.
                return Err(taken());
            }
        }
        for t in &registration.actor_types {
            sqlx::query(
                "INSERT INTO francis_host_actor_types
                     (host_id, actor_type, actor_idle_timeout_ms, actor_concurrency_limit)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (host_id, actor_type) DO UPDATE SET
                     actor_idle_timeout_ms = excluded.actor_idle_timeout_ms,
                     actor_concurrency_limit = excluded.actor_concurrency_limit",
            )
            .bind(host_id)
            .bind(t.actor_type.as_str())
            .bind(t.idle_timeout.map(duration_ms))
            .bind(i64::from(t.concurrency_limit))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(refreshed)
    }

    /// Lock the cluster admission row for this transaction (creating it if it went missing)
    /// and read the recorded `maxHosts`.
    async fn lock_admission(&self, tx: &mut Tx<D>, now: i64) -> Result<Option<u32>, StoreError> {
        let row: Option<Option<i64>> = sqlx::query_scalar(&self.sql.lock_admission)
            .fetch_optional(&mut **tx)
            .await?;
        let stored = match row {
            Some(stored) => stored,
            None => {
                sqlx::query(
                    "INSERT INTO francis_cluster_admission (admission_id, max_hosts, updated_at)
                     VALUES (1, NULL, $1) ON CONFLICT (admission_id) DO NOTHING",
                )
                .bind(now)
                .execute(&mut **tx)
                .await?;
                sqlx::query_scalar(&self.sql.lock_admission)
                    .fetch_one(&mut **tx)
                    .await?
            }
        };
        stored.map(stored_max_hosts).transpose()
    }

    /// The recorded `maxHosts`, without locking.
    async fn recorded_max_hosts<'e, E>(executor: E) -> Result<Option<u32>, StoreError>
    where
        E: Executor<'e, Database = D::Db>,
    {
        let row: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT max_hosts FROM francis_cluster_admission WHERE admission_id = 1",
        )
        .fetch_optional(executor)
        .await?;
        row.flatten().map(stored_max_hosts).transpose()
    }

    /// An actor's placement, if it is on a healthy host.
    async fn live_placement<'e, E>(
        executor: E,
        key: &ActorKey,
        threshold: i64,
    ) -> Result<Option<Placement>, StoreError>
    where
        E: Executor<'e, Database = D::Db>,
    {
        let row: Option<PlacementRow> = sqlx::query_as(LIVE_PLACEMENT)
            .bind(key.actor_type.as_str())
            .bind(key.actor_id.as_str())
            .bind(threshold)
            .fetch_optional(executor)
            .await?;
        row.map(Placement::try_from).transpose()
    }

    /// Capacity of healthy hosts per actor type, optionally narrowed to one type and some hosts.
    async fn load_slots(
        &self,
        tx: &mut Tx<D>,
        threshold: i64,
        actor_type: Option<&str>,
        hosts: Option<&[HostId]>,
    ) -> Result<Vec<HostSlot>, StoreError> {
        let hosts = hosts.map(D::list).transpose()?;
        let rows: Vec<SlotRow> = sqlx::query_as(&self.sql.load_slots)
            .bind(threshold)
            .bind(actor_type)
            .bind(hosts)
            .fetch_all(&mut **tx)
            .await?;
        rows.into_iter().map(HostSlot::try_from).collect()
    }

    /// Place an actor on a slot's host for a lookup, replacing any stale placement (whose
    /// deletion releases the actor's alarm leases through the schema's trigger, waiting for rows
    /// others hold if need be: a lookup holds no alarm rows, so it can wait safely). The caller
    /// holds the actor's placement lock.
    async fn place(
        tx: &mut Tx<D>,
        key: &ActorKey,
        slot: &HostSlot,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(DELETE_PLACEMENT)
            .bind(key.actor_type.as_str())
            .bind(key.actor_id.as_str())
            .execute(&mut **tx)
            .await?;
        sqlx::query(INSERT_PLACEMENT)
            .bind(key.actor_type.as_str())
            .bind(key.actor_id.as_str())
            .bind(slot.host_id.as_str())
            .bind(slot.idle_timeout.map(duration_ms))
            .bind(now)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Place an actor that has no live placement, under its placement lock.
    async fn allocate(
        &self,
        key: &ActorKey,
        options: &LookupOptions,
    ) -> Result<Placement, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let (_turn, mut tx) = self.dialect.begin_write(&self.pool).await?;
        self.dialect.lock_actor(&mut tx, key).await?;
        // Another host may have placed the actor since the caller's check.
        if let Some(placement) = Self::live_placement(&mut *tx, key, threshold).await? {
            return check_allowed(key, placement, options);
        }
        let mut slots = self
            .load_slots(
                &mut tx,
                threshold,
                Some(&key.actor_type),
                options.allowed_hosts.as_deref(),
            )
            .await?;
        without_avoided(&mut slots, options);
        let slot = reserve_slot(&mut slots, &key.actor_type).ok_or_else(|| StoreError::NoHost {
            actor_type: key.actor_type.clone(),
        })?;
        Self::place(&mut tx, key, &slot, now).await?;
        tx.commit().await?;
        Ok(slot.into_placement())
    }

    /// Decide, inside a fetch, whether an actor without a live placement can run on one of
    /// `hosts`, and place it if so. Nothing here waits for a lock, because the fetch already
    /// holds alarm rows that placement removals (host pruning, `remove_actor`, lookups) may be
    /// waiting for:
    ///
    /// 1. claim the actor without waiting (skip it if a lookup or another fetch is placing it);
    /// 2. re-read its placement under that claim: a live one decides at once;
    /// 3. lock a stale placement row, skipping it if someone is deleting it;
    /// 4. upsert the placement onto a requested host with capacity (an upsert, not the delete
    ///    and insert of [`Self::place`], so the schema's lease-releasing trigger, which would
    ///    wait for alarm rows other fetches hold, does not run), then release the actor's other
    ///    leases here, skipping rows locked at that instant (a racing `complete_leased_alarm`
    ///    of the old holder may then keep its lease until it expires).
    #[allow(clippy::too_many_arguments)]
    async fn claim_actor(
        &self,
        tx: &mut Tx<D>,
        key: &ActorKey,
        slots: &mut [HostSlot],
        hosts: &[HostId],
        now: i64,
        threshold: i64,
    ) -> Result<bool, StoreError> {
        if !self.dialect.try_lock_actor(tx, key).await? {
            return Ok(false);
        }
        let current: Option<CurrentPlacementRow> = sqlx::query_as(CURRENT_PLACEMENT)
            .bind(key.actor_type.as_str())
            .bind(key.actor_id.as_str())
            .bind(threshold)
            .fetch_optional(&mut **tx)
            .await?;
        let replacing = match current {
            Some(CurrentPlacementRow {
                host_id,
                healthy: true,
            }) => return Ok(hosts.contains(&host_id)),
            Some(CurrentPlacementRow { host_id, .. }) => {
                let locked: Option<String> = sqlx::query_scalar(&self.sql.lock_stale_placement)
                    .bind(key.actor_type.as_str())
                    .bind(key.actor_id.as_str())
                    .bind(host_id.as_str())
                    .fetch_optional(&mut **tx)
                    .await?;
                if locked.is_none() {
                    return Ok(false);
                }
                true
            }
            None => false,
        };
        let Some(slot) = reserve_slot(slots, &key.actor_type) else {
            return Ok(false);
        };
        sqlx::query(UPSERT_PLACEMENT)
            .bind(key.actor_type.as_str())
            .bind(key.actor_id.as_str())
            .bind(slot.host_id.as_str())
            .bind(slot.idle_timeout.map(duration_ms))
            .bind(now)
            .execute(&mut **tx)
            .await?;
        if replacing {
            sqlx::query(&self.sql.release_actor_leases)
                .bind(key.actor_type.as_str())
                .bind(key.actor_id.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(true)
    }

    async fn fetch_once(&self, request: &FetchAlarms) -> Result<Vec<AlarmLease>, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let expires_ms = now.saturating_add(duration_ms(request.lease_duration));
        let (_turn, mut tx) = self.dialect.begin_write(&self.pool).await?;
        let mut slots = self
            .load_slots(&mut tx, threshold, None, Some(&request.hosts))
            .await?;
        let supported: Vec<String> = slots
            .iter()
            .map(|s| s.actor_type.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if supported.is_empty() {
            return Ok(Vec::new());
        }
        let candidates: Vec<CandidateRow> = sqlx::query_as(&self.sql.fetch_candidates)
            .bind(threshold)
            .bind(request.horizon_ms)
            .bind(now)
            .bind(D::list(&supported)?)
            .bind(D::list(&request.hosts)?)
            .bind(i64::from(request.batch_size))
            .fetch_all(&mut *tx)
            .await?;

        // Whether each actor may run here, decided once per actor (placing it if needed).
        let mut usable: HashMap<ActorKey, bool> = HashMap::new();
        let mut alarm_ids = Vec::with_capacity(candidates.len());
        let mut lease_ids = Vec::with_capacity(candidates.len());
        for c in candidates {
            let key = ActorKey::new(c.actor_type, c.actor_id);
            let ok = match usable.get(&key) {
                Some(&ok) => ok,
                None if c.live_host.is_some() => true,
                None => {
                    let hosts = &request.hosts;
                    self.claim_actor(&mut tx, &key, &mut slots, hosts, now, threshold)
                        .await?
                }
            };
            usable.insert(key, ok);
            if ok {
                alarm_ids.push(c.alarm_id);
                lease_ids.push(new_lease_id());
            }
        }
        if alarm_ids.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let rows: Vec<LeaseRow> = sqlx::query_as(&self.sql.lease_alarms)
            .bind(D::list(&alarm_ids)?)
            .bind(D::list(&lease_ids)?)
            .bind(expires_ms)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut leases: Vec<AlarmLease> = rows.into_iter().map(AlarmLease::from).collect();
        sort_leases(&mut leases);
        Ok(leases)
    }

    /// Run a statement that reads or changes one alarm by its lease, binding the lease first.
    async fn by_lease(&self, sql: &'static str, lease: &AlarmLease) -> Result<u64, StoreError> {
        let done = sqlx::query(sql)
            .bind(lease.alarm_id.as_str())
            .bind(lease.lease_id.as_str())
            .bind(self.now())
            .execute(&self.pool)
            .await?;
        Ok(D::rows_affected(&done))
    }
}

#[async_trait]
#[allow(private_bounds)]
impl<D: Dialect> Store for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    for<'q> Option<&'q [u8]>: Encode<'q, D::Db>,
    for<'q> Option<D::List<'q>>: Encode<'q, D::Db>,
    for<'r> String: Decode<'r, D::Db> + Type<D::Db>,
    for<'r> Vec<u8>: Decode<'r, D::Db> + Type<D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    for<'r> AlarmRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> LeaseRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> SlotRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> HostRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> PlacementRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> StateRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> CandidateRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> CurrentPlacementRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> ObservedHostRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> HostTypeRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> PlacementCountRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> DueAlarmCountRow: FromRow<'r, <D::Db as Database>::Row>,
    Self: OperationsStore + jobs::SqlJobs,
{
    fn options(&self) -> &StoreOptions {
        &self.options
    }

    async fn reattach_host(
        &self,
        host_id: &str,
        registration: &HostRegistration,
    ) -> Result<bool, StoreError> {
        self.operation("reattach_host", async {
            let reattached = self.register(host_id, registration).await?;
            tracing::debug!(%host_id, address = %registration.address, reattached, "registered host");
            Ok(reattached)
        })
        .await
    }

    async fn heartbeat(&self, host_id: &str) -> Result<(), StoreError> {
        self.operation("heartbeat", async {
            let (now, threshold) = self.now_and_threshold();
            let done = sqlx::query(
                "UPDATE francis_hosts SET host_last_health_check = $1
                 WHERE host_id = $2 AND host_last_health_check >= $3",
            )
            .bind(now)
            .bind(host_id)
            .bind(threshold)
            .execute(&self.pool)
            .await?;
            if D::rows_affected(&done) > 0 {
                Ok(())
            } else {
                Err(StoreError::HostUnregistered {
                    host_id: host_id.to_owned(),
                })
            }
        })
        .await
    }

    async fn unregister_host(&self, host_id: &str) -> Result<(), StoreError> {
        self.operation("unregister_host", async {
            let (_, threshold) = self.now_and_threshold();
            let last: Option<i64> = retrying::<D, _, _, _>("unregister_host", || async {
                Ok(sqlx::query_scalar(
                    "DELETE FROM francis_hosts WHERE host_id = $1 RETURNING host_last_health_check",
                )
                .bind(host_id)
                .fetch_optional(&self.pool)
                .await?)
            })
            .await?;
            match last {
                Some(last) if last >= threshold => Ok(()),
                _ => Err(StoreError::HostUnregistered {
                    host_id: host_id.to_owned(),
                }),
            }
        })
        .await
    }

    async fn list_hosts(&self) -> Result<Vec<HostInfo>, StoreError> {
        self.operation("list_hosts", async {
            let (_, threshold) = self.now_and_threshold();
            let rows: Vec<HostRow> = sqlx::query_as(
                "SELECT host_id, host_address AS address, host_last_health_check AS last_heartbeat_ms
                 FROM francis_hosts WHERE host_last_health_check >= $1 ORDER BY host_id",
            )
            .bind(threshold)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(HostInfo::from).collect())
        })
        .await
    }

    async fn lookup_actor(
        &self,
        key: &ActorKey,
        options: &LookupOptions,
    ) -> Result<Placement, StoreError> {
        self.operation("lookup_actor", async {
            let (_, threshold) = self.now_and_threshold();
            // Most lookups find a live placement: answer those without a transaction or a lock.
            if let Some(placement) = Self::live_placement(&self.pool, key, threshold).await? {
                return check_allowed(key, placement, options);
            }
            if options.active_only {
                return Err(StoreError::NotActive { key: key.clone() });
            }
            retrying::<D, _, _, _>("lookup_actor", || self.allocate(key, options)).await
        })
        .await
    }

    async fn remove_actor(&self, key: &ActorKey, host_id: &str) -> Result<bool, StoreError> {
        self.operation("remove_actor", async {
            retrying::<D, _, _, _>("remove_actor", || async {
                let done = sqlx::query(
                    "DELETE FROM francis_active_actors
                     WHERE actor_type = $1 AND actor_id = $2 AND host_id = $3",
                )
                .bind(key.actor_type.as_str())
                .bind(key.actor_id.as_str())
                .bind(host_id)
                .execute(&self.pool)
                .await?;
                Ok(D::rows_affected(&done) > 0)
            })
            .await
        })
        .await
    }

    async fn get_state(&self, key: &ActorKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.operation("get_state", async {
            Ok(sqlx::query_scalar(
                "SELECT actor_state_data FROM francis_actor_state
                 WHERE actor_type = $1 AND actor_id = $2
                   AND (actor_state_expiration_time IS NULL OR actor_state_expiration_time > $3)",
            )
            .bind(key.actor_type.as_str())
            .bind(key.actor_id.as_str())
            .bind(self.now())
            .fetch_optional(&self.pool)
            .await?)
        })
        .await
    }

    async fn set_state(
        &self,
        key: &ActorKey,
        data: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.operation("set_state", async {
            sqlx::query(
                "INSERT INTO francis_actor_state
                     (actor_type, actor_id, actor_state_data, actor_state_expiration_time)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (actor_type, actor_id) DO UPDATE SET
                     actor_state_data = excluded.actor_state_data,
                     actor_state_expiration_time = excluded.actor_state_expiration_time",
            )
            .bind(key.actor_type.as_str())
            .bind(key.actor_id.as_str())
            .bind(data)
            .bind(expiry_after(self.now(), ttl))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn delete_state(&self, key: &ActorKey) -> Result<bool, StoreError> {
        self.operation("delete_state", async {
            let deleted: Option<Option<i64>> = sqlx::query_scalar(
                "DELETE FROM francis_actor_state WHERE actor_type = $1 AND actor_id = $2
                 RETURNING actor_state_expiration_time",
            )
            .bind(key.actor_type.as_str())
            .bind(key.actor_id.as_str())
            .fetch_optional(&self.pool)
            .await?;
            let now = self.now();
            Ok(deleted.is_some_and(|expires| expires.is_none_or(|e| e > now)))
        })
        .await
    }

    async fn list_states(
        &self,
        actor_type: &str,
        options: &ListStatesOptions,
    ) -> Result<StateList, StoreError> {
        self.operation("list_states", async {
            let limit = page_limit(options.limit);
            let rows: Vec<StateRow> = sqlx::query_as(
                "SELECT actor_id, CASE WHEN $4 THEN actor_state_data END AS data
                 FROM francis_actor_state
                 WHERE actor_type = $1 AND ($2 IS NULL OR actor_id > $2)
                   AND (actor_state_expiration_time IS NULL OR actor_state_expiration_time > $3)
                 ORDER BY actor_id LIMIT $5",
            )
            .bind(actor_type)
            .bind(options.after.as_deref())
            .bind(self.now())
            .bind(options.include_data)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1))
            .fetch_all(&self.pool)
            .await?;
            let entries = rows.into_iter().map(StateEntry::from).collect();
            Ok(state_page(entries, limit))
        })
        .await
    }

    async fn set_alarm(
        &self,
        key: &ActorKey,
        name: &str,
        alarm: &AlarmRecord,
    ) -> Result<(), StoreError> {
        self.operation("set_alarm", async {
            sqlx::query(SET_ALARM)
                .bind(new_alarm_id().as_str())
                .bind(key.actor_type.as_str())
                .bind(key.actor_id.as_str())
                .bind(name)
                .bind(alarm.handler.as_str())
                .bind(alarm.due_ms)
                .bind(alarm.scheduled_ms)
                .bind(alarm.interval.as_deref())
                .bind(alarm.ttl_ms)
                .bind(alarm.data.as_deref())
                .bind(i64::from(alarm.attempts))
                .bind(alarm.cron.as_deref())
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn get_alarm(
        &self,
        key: &ActorKey,
        name: &str,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        self.operation("get_alarm", async {
            let row: Option<AlarmRow> = sqlx::query_as(concat!(
                "SELECT ",
                alarm_columns!(),
                " FROM francis_alarms WHERE actor_type = $1 AND actor_id = $2 AND alarm_name = $3"
            ))
            .bind(key.actor_type.as_str())
            .bind(key.actor_id.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
            row.map(AlarmRecord::try_from).transpose()
        })
        .await
    }

    async fn delete_alarm(&self, key: &ActorKey, name: &str) -> Result<bool, StoreError> {
        self.operation("delete_alarm", async {
            let done = sqlx::query(
                "DELETE FROM francis_alarms WHERE actor_type = $1 AND actor_id = $2 AND alarm_name = $3",
            )
            .bind(key.actor_type.as_str())
            .bind(key.actor_id.as_str())
            .bind(name)
            .execute(&self.pool)
            .await?;
            Ok(D::rows_affected(&done) > 0)
        })
        .await
    }

    async fn fetch_and_lease_alarms(
        &self,
        request: &FetchAlarms,
    ) -> Result<Vec<AlarmLease>, StoreError> {
        self.operation("fetch_and_lease_alarms", async {
            if request.hosts.is_empty() || request.batch_size == 0 {
                return Ok(Vec::new());
            }
            retrying::<D, _, _, _>("fetch_and_lease_alarms", || self.fetch_once(request)).await
        })
        .await
    }

    async fn get_leased_alarm(
        &self,
        lease: &AlarmLease,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        self.operation("get_leased_alarm", async {
            let row: Option<AlarmRow> = sqlx::query_as(concat!(
                "SELECT ",
                alarm_columns!(),
                " FROM francis_alarms WHERE ",
                valid_lease!()
            ))
            .bind(lease.alarm_id.as_str())
            .bind(lease.lease_id.as_str())
            .bind(self.now())
            .fetch_optional(&self.pool)
            .await?;
            row.map(AlarmRecord::try_from).transpose()
        })
        .await
    }

    async fn complete_leased_alarm(
        &self,
        lease: &AlarmLease,
        completion: &AlarmCompletion,
        lease_duration: Duration,
    ) -> Result<Option<AlarmLease>, StoreError> {
        self.operation("complete_leased_alarm", async {
            let Some(update) = CompletionUpdate::of(completion) else {
                let delete = concat!("DELETE FROM francis_alarms WHERE ", valid_lease!());
                let deleted = if *completion == AlarmCompletion::Succeeded {
                    // A job that succeeded leaves its result, in the same transaction.
                    let now = self.now();
                    let (_turn, mut tx) = self.dialect.begin_write(&self.pool).await?;
                    for sql in [jobs::REMEMBER_SUCCESS, delete] {
                        let done = sqlx::query(sql)
                            .bind(lease.alarm_id.as_str())
                            .bind(lease.lease_id.as_str())
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        if sql == delete {
                            tx.commit().await?;
                            return Ok((D::rows_affected(&done) > 0).then(|| lease.clone()));
                        }
                    }
                    0
                } else {
                    self.by_lease(delete, lease).await?
                };
                return Ok((deleted > 0).then(|| lease.clone()));
            };
            let now = self.now();
            let updated = update.lease_after(lease, now, lease_duration);
            let kept = update
                .keep_lease
                .then_some((updated.lease_id.as_str(), updated.expires_ms));
            let done = sqlx::query(concat!(
                "UPDATE francis_alarms SET alarm_due_time = $4,
                     alarm_scheduled_time = COALESCE($5, alarm_scheduled_time), alarm_attempts = $6,
                     alarm_lease_id = $7, alarm_lease_expiration_time = $8
                 WHERE ",
                valid_lease!()
            ))
            .bind(lease.alarm_id.as_str())
            .bind(lease.lease_id.as_str())
            .bind(now)
            .bind(update.due_ms)
            .bind(update.scheduled_ms)
            .bind(i64::from(update.attempts))
            .bind(kept.map(|(id, _)| id))
            .bind(kept.map(|(_, expires)| expires))
            .execute(&self.pool)
            .await?;
            Ok((D::rows_affected(&done) > 0).then_some(updated))
        })
        .await
    }

    async fn release_alarm_lease(&self, lease: &AlarmLease) -> Result<bool, StoreError> {
        self.operation("release_alarm_lease", async {
            let released = self
                .by_lease(
                    concat!(
                        "UPDATE francis_alarms
                         SET alarm_lease_id = NULL, alarm_lease_expiration_time = NULL WHERE ",
                        valid_lease!()
                    ),
                    lease,
                )
                .await?;
            Ok(released > 0)
        })
        .await
    }

    async fn renew_alarm_leases(
        &self,
        host_id: &str,
        lease_duration: Duration,
    ) -> Result<Vec<AlarmLease>, StoreError> {
        self.operation("renew_alarm_leases", async {
            let (now, threshold) = self.now_and_threshold();
            let rows: Vec<LeaseRow> = retrying::<D, _, _, _>("renew_alarm_leases", || async {
                Ok(sqlx::query_as(concat!(
                    "UPDATE francis_alarms SET alarm_lease_expiration_time = $1
                     WHERE alarm_lease_id IS NOT NULL AND alarm_lease_expiration_time >= $2
                       AND EXISTS (SELECT 1 FROM francis_active_actors a
                                   JOIN francis_hosts h ON h.host_id = a.host_id
                                   WHERE a.actor_type = francis_alarms.actor_type
                                     AND a.actor_id = francis_alarms.actor_id
                                     AND a.host_id = $3 AND h.host_last_health_check >= $4)
                     RETURNING ",
                    lease_columns!()
                ))
                .bind(now.saturating_add(duration_ms(lease_duration)))
                .bind(now)
                .bind(host_id)
                .bind(threshold)
                .fetch_all(&self.pool)
                .await?)
            })
            .await?;
            let mut leases: Vec<AlarmLease> = rows.into_iter().map(AlarmLease::from).collect();
            sort_leases(&mut leases);
            Ok(leases)
        })
        .await
    }

    async fn claim_cluster_identity(
        &self,
        fingerprints: &[String],
    ) -> Result<ClusterIdentity, StoreError> {
        self.operation("claim_cluster_identity", async {
            retrying::<D, _, _, _>("claim_cluster_identity", || async {
                let (_turn, mut tx) = self.dialect.begin_write(&self.pool).await?;
                let recorded: Option<String> = sqlx::query_scalar(
                    "SELECT ca_fingerprints FROM francis_cluster WHERE cluster_key = 'ca'",
                )
                .fetch_optional(&mut *tx)
                .await?;
                let recorded = recorded.as_deref().map(split_fingerprints);
                let (outcome, record) = judge_cluster_identity(recorded.as_deref(), fingerprints)?;
                if let Some(record) = record {
                    sqlx::query(
                        "INSERT INTO francis_cluster (cluster_key, ca_fingerprints, updated_at)
                         VALUES ('ca', $1, $2)
                         ON CONFLICT (cluster_key) DO UPDATE SET
                             ca_fingerprints = excluded.ca_fingerprints,
                             updated_at = excluded.updated_at",
                    )
                    .bind(record.as_str())
                    .bind(self.now())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(outcome)
            })
            .await
        })
        .await
    }

    async fn observe_cluster(&self) -> Result<ClusterObservation, StoreError> {
        self.operation("observe_cluster", async {
            let (now, threshold) = self.now_and_threshold();
            // One read-only snapshot, so the counts agree with the hosts they are reported under.
            let mut tx = self.dialect.begin_snapshot(&self.pool).await?;
            let host_rows: Vec<ObservedHostRow> = sqlx::query_as(
                "SELECT host_id, host_address AS address, host_version AS version,
                    host_last_health_check AS last_heartbeat_ms, host_draining AS draining
             FROM francis_hosts ORDER BY host_id",
            )
            .fetch_all(&mut *tx)
            .await?;
            let type_rows: Vec<HostTypeRow> = sqlx::query_as(
                "SELECT host_id, actor_type, actor_idle_timeout_ms AS idle_timeout_ms,
                    actor_concurrency_limit AS concurrency_limit
             FROM francis_host_actor_types ORDER BY host_id, actor_type",
            )
            .fetch_all(&mut *tx)
            .await?;
            let placement_rows: Vec<PlacementCountRow> = sqlx::query_as(
                "SELECT host_id, actor_type, COUNT(*) AS actors
             FROM francis_active_actors GROUP BY host_id, actor_type",
            )
            .fetch_all(&mut *tx)
            .await?;
            let due_rows: Vec<DueAlarmCountRow> = sqlx::query_as(
                "SELECT a.host_id, COUNT(*) AS alarms
             FROM francis_alarms al
             LEFT JOIN francis_active_actors a
                 ON a.actor_type = al.actor_type AND a.actor_id = al.actor_id
             WHERE al.alarm_due_time <= $1
             GROUP BY a.host_id",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let max_hosts = Self::recorded_max_hosts(&mut *tx).await?;
            tx.commit().await?;

            let mut types: HashMap<String, Vec<ActorTypeRegistration>> = HashMap::new();
            for row in type_rows {
                let (host_id, registration) = row.into_parts()?;
                types.entry(host_id).or_default().push(registration);
            }
            let hosts = host_rows
                .into_iter()
                .map(|row| ObservedHost {
                    actor_types: types.remove(&row.host_id).unwrap_or_default(),
                    healthy: row.last_heartbeat_ms >= threshold,
                    draining: row.draining != 0,
                    host_id: row.host_id,
                    address: row.address,
                    version: row.version,
                    last_heartbeat_ms: row.last_heartbeat_ms,
                })
                .collect();
            let mut placements = placement_rows
                .into_iter()
                .map(PlacementCount::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            // Sorted here rather than in SQL: the databases order NULLs differently.
            placements
                .sort_by(|a, b| (&a.host_id, &a.actor_type).cmp(&(&b.host_id, &b.actor_type)));
            let mut due_alarms = due_rows
                .into_iter()
                .map(DueAlarmCount::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            due_alarms.sort_by(|a, b| a.host_id.cmp(&b.host_id));
            Ok(ClusterObservation {
                observed_at_ms: now,
                health_check_deadline_ms: duration_ms(self.options.health_check_deadline)
                    .unsigned_abs(),
                max_hosts,
                hosts,
                placements,
                due_alarms,
            })
        })
        .await
    }

    async fn record_dead_letter(
        &self,
        lease: &AlarmLease,
        attempts: u32,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.operation("record_dead_letter", async {
            // Copied from the alarm row itself, under its lease; a second record of the same
            // occurrence is ignored.
            let done = sqlx::query(concat!(
                "INSERT INTO francis_dead_letters (dead_letter_id, actor_type, actor_id,
                     alarm_name, alarm_handler, alarm_data, alarm_scheduled_time,
                     dead_letter_attempts, dead_letter_error, dead_letter_dropped_at, job_id)
                 SELECT $4, actor_type, actor_id, alarm_name, alarm_handler, alarm_data,
                     alarm_scheduled_time, $5, $6, $3,
                     CASE WHEN alarm_name LIKE 'job/%' THEN alarm_id END
                 FROM francis_alarms WHERE ",
                valid_lease!(),
                " ON CONFLICT DO NOTHING"
            ))
            .bind(lease.alarm_id.as_str())
            .bind(lease.lease_id.as_str())
            .bind(self.now())
            .bind(new_alarm_id().as_str())
            .bind(i64::from(attempts))
            .bind(bounded_text(error, MAX_RECORDED_ERROR_BYTES))
            .execute(&self.pool)
            .await?;
            if D::rows_affected(&done) > 0 {
                return Ok(true);
            }
            // Nothing written: a duplicate (the lease is valid), or an invalid lease.
            let valid = self
                .by_lease(
                    concat!(
                        "UPDATE francis_alarms SET alarm_lease_id = alarm_lease_id WHERE ",
                        valid_lease!()
                    ),
                    lease,
                )
                .await?;
            Ok(valid > 0)
        })
        .await
    }

    async fn dispatch_job(&self, key: &ActorKey, job: &JobRecord) -> Result<String, StoreError> {
        self.dispatch_job_sql(key, job).await
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<JobInfo>, StoreError> {
        self.get_job_sql(job_id).await
    }

    async fn list_jobs(&self, key: &ActorKey) -> Result<Vec<JobInfo>, StoreError> {
        self.list_jobs_sql(key).await
    }

    async fn cancel_job(&self, key: &ActorKey, job_id: &str) -> Result<bool, StoreError> {
        self.cancel_job_sql(key, job_id).await
    }

    async fn list_dead_jobs(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>, StoreError> {
        self.list_dead_jobs_sql(query).await
    }

    async fn get_dead_job(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        self.get_dead_job_sql(id).await
    }

    async fn delete_dead_job(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_dead_job_sql(id).await
    }

    async fn retry_dead_job(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.retry_dead_job_sql(id).await
    }

    async fn purge_dead_jobs(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.purge_dead_jobs_sql(before_ms).await
    }

    fn operations(&self) -> Option<&dyn OperationsStore> {
        Some(self)
    }

    async fn cleanup(&self) -> Result<CleanupStats, StoreError> {
        self.operation("cleanup", async {
            let (now, threshold) = self.now_and_threshold();
            let pruned = retrying::<D, _, _, _>("cleanup", || async {
                Ok(sqlx::query(PRUNE_EXPIRED_HOSTS)
                    .bind(threshold)
                    .execute(&self.pool)
                    .await?)
            })
            .await?;
            let states = sqlx::query(
                "DELETE FROM francis_actor_state
                 WHERE actor_state_expiration_time IS NOT NULL AND actor_state_expiration_time <= $1",
            )
            .bind(now)
            .execute(&self.pool)
            .await?;
            let results = sqlx::query(jobs::PRUNE_RESULTS)
                .bind(jobs::results_kept_since(now))
                .execute(&self.pool)
                .await?;
            Ok(CleanupStats {
                hosts: D::rows_affected(&pruned),
                states: D::rows_affected(&states),
                job_results: D::rows_affected(&results),
            })
        })
        .await
    }
}
