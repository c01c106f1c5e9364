//! The PostgreSQL store: one database shared by every host of a cluster, on any machines.
//!
//! It keeps the same rows and the same observable behaviour as the SQLite store (both are
//! checked by the conformance suite), but PostgreSQL has no single write lock, so concurrency is
//! handled per object instead:
//!
//! - **Placement** ([`Store::lookup_actor`]) runs in a transaction that first takes
//!   `pg_advisory_xact_lock` on a 64-bit key computed from the store's schema and the actor's
//!   type and ID (a stable FNV-1a hash, see `actor_lock_key`; advisory locks are database-wide,
//!   so the schema keeps stores in different schemas apart), so concurrent lookups of one actor
//!   from any number of processes serialize and all get the same placement. Hash collisions only
//!   make two actors wait for (or, in a fetch, skip) each other; they never break correctness.
//! - **Alarm fetches** ([`Store::fetch_and_lease_alarms`]) lock their candidate alarm rows with
//!   `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent fetches take disjoint alarms instead of
//!   queueing; an actor that must be placed is claimed with `pg_try_advisory_xact_lock` (the same
//!   key as lookups) and skipped for this fetch if another transaction holds it. The leases are
//!   then set in one `UPDATE ... RETURNING`. Holding alarm rows, a fetch never waits for another
//!   lock (that is how deadlocks with host pruning would arise): an actor whose stale placement
//!   is being deleted right then is skipped for this fetch, and a stale placement is replaced
//!   with an upsert plus an explicit, `SKIP LOCKED` release of the actor's other leases rather
//!   than through the trigger below. A skipped alarm is simply left for the next fetch.
//! - **Capacity limits** (`concurrency_limit`) are best-effort under concurrency: the active
//!   count of a host is read, not locked, so two transactions placing *different* actors of one
//!   type at the same instant may both take a host's last slot. Serial use respects the limits
//!   exactly.
//! - Removing placements (directly, or through the cascade from a deleted host) releases the
//!   actors' alarm leases with an `AFTER DELETE` trigger, as in SQLite.
//! - Transactions that PostgreSQL aborts as deadlock or serialization victims, or whose host
//!   vanished under them (foreign-key violation), are retried a few times; every such
//!   transaction is all-or-nothing, so a retry is safe.
//!
//! Times are Unix milliseconds from the store's clock, bound as parameters, never the database's
//! `now()`, so tests control them. Objects live in the first schema of the connection's
//! `search_path` (the migrations create them there), so several independent stores can share a
//! database in different schemas.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{PgConnection, PgExecutor, Postgres, Transaction};

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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections [`PostgresStore::connect`] opens at most. Transactions are short, so a few
/// connections serve many concurrent callers (they queue for a connection).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// How many times a transaction aborted by PostgreSQL as a deadlock or serialization victim (or
/// a foreign-key race with a vanishing host) is run in total before the error is returned.
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

/// A [`Store`] backed by a PostgreSQL database, shareable by hosts on many machines.
#[derive(Debug)]
pub struct PostgresStore {
    options: StoreOptions,
    pool: PgPool,
    /// The schema holding the tables (`current_schema()`), part of every advisory-lock key.
    schema: String,
}

type Tx = Transaction<'static, Postgres>;

/// A due alarm a fetch may lease, locked by the fetching transaction.
#[derive(sqlx::FromRow)]
struct CandidateRow {
    alarm_id: String,
    actor_type: String,
    actor_id: String,
    /// The healthy requested host the actor is placed on; `None` if unplaced or on an unhealthy
    /// host (free to place).
    live_host: Option<String>,
}

/// The advisory-lock key of an actor of the store in `schema`: FNV-1a (64-bit) over a domain
/// tag, the schema, the type and the ID, separated by `0xff` bytes (never part of UTF-8, so
/// distinct inputs stay distinct). Stable across processes, builds and Rust versions, unlike
/// `std`'s randomized hasher.
fn actor_lock_key(schema: &str, key: &ActorKey) -> i64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = b"francis.actor\xff"
        .iter()
        .chain(schema.as_bytes())
        .chain(&[0xff])
        .chain(key.actor_type.as_bytes())
        .chain(&[0xff])
        .chain(key.actor_id.as_bytes());
    let hash = bytes.fold(OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(PRIME)
    });
    i64::from_be_bytes(hash.to_be_bytes())
}

/// Whether PostgreSQL aborted the statement in a way that running the transaction again can fix.
fn is_retryable(error: &StoreError) -> bool {
    let StoreError::Database(sqlx::Error::Database(db)) = error else {
        return false;
    };
    // 40P01 deadlock_detected, 40001 serialization_failure, 23503 foreign_key_violation (a host
    // deleted between choosing it and placing an actor on it).
    matches!(db.code().as_deref(), Some("40P01" | "40001" | "23503"))
}

/// Run `attempt` until it succeeds, fails for good, or [`MAX_ATTEMPTS`] runs failed retryably.
async fn retrying<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut run = 1;
    loop {
        match attempt().await {
            Err(e) if run < MAX_ATTEMPTS && is_retryable(&e) => {
                tracing::debug!(operation = what, run, error = %e, "retrying a PostgreSQL transaction");
                run += 1;
                tokio::task::yield_now().await;
            }
            result => return result,
        }
    }
}

impl PostgresStore {
    /// Connect to the database at `url` (`postgres://user:password@host:port/database`) with a
    /// pool of at most [`DEFAULT_MAX_CONNECTIONS`] connections, and bring its schema up to date.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .connect(url)
            .await?;
        Self::from_pool(pool, options).await
    }

    /// Use an existing pool (e.g. one configured with TLS, or with a `search_path` naming the
    /// schema to use) and create or update the tables in the first existing schema of its
    /// `search_path`.
    pub async fn from_pool(pool: PgPool, options: StoreOptions) -> Result<Self, StoreError> {
        let schema = migrate(&pool).await?;
        Ok(PostgresStore {
            options,
            pool,
            schema,
        })
    }

    /// Close the connection pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn now(&self) -> i64 {
        self.options.clock.now_ms()
    }

    fn lock_key(&self, key: &ActorKey) -> i64 {
        actor_lock_key(&self.schema, key)
    }

    fn now_and_threshold(&self) -> (i64, i64) {
        let now = self.now();
        (now, health_threshold(&self.options, now))
    }

    /// Insert or refresh the registration of `host_id`; `true` when a healthy row was refreshed.
    async fn register_once(
        &self,
        host_id: &str,
        registration: &HostRegistration,
    ) -> Result<bool, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let mut tx = self.pool.begin().await?;
        prune_expired_hosts(&mut *tx, threshold).await?;
        let holder: Option<String> =
            sqlx::query_scalar("SELECT host_id FROM francis_hosts WHERE host_address = $1")
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
                "UPDATE francis_hosts SET host_address = $2, host_last_health_check = $3
                 WHERE host_id = $1",
            )
            .bind(host_id)
            .bind(&registration.address)
            .bind(now)
            .execute(&mut *tx)
            .await?,
        );
        if refreshed {
            sqlx::query("DELETE FROM francis_host_actor_types WHERE host_id = $1")
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
        } else {
            let inserted = sqlx::query(
                "INSERT INTO francis_hosts (host_id, host_address, host_last_health_check)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (host_address) DO NOTHING",
            )
            .bind(host_id)
            .bind(&registration.address)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                // Another healthy host took the address since the check above.
                return Err(StoreError::HostAlreadyRegistered {
                    address: registration.address.clone(),
                });
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
            .bind(&t.actor_type)
            .bind(t.idle_timeout.map(duration_ms))
            .bind(i64::from(t.concurrency_limit))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(refreshed)
    }

    async fn allocate(
        &self,
        key: &ActorKey,
        options: &LookupOptions,
    ) -> Result<Placement, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let mut tx = self.pool.begin().await?;
        // Serialize with every other lookup or fetch placing this actor, in any process.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(self.lock_key(key))
            .execute(&mut *tx)
            .await?;
        // Another host may have placed the actor since the caller's check.
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

    async fn fetch_once(&self, request: &FetchAlarms) -> Result<Vec<AlarmLease>, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let expires_ms = now.saturating_add(duration_ms(request.lease_duration));
        let mut tx = self.pool.begin().await?;
        let mut slots = load_slots(&mut tx, threshold, None, Some(&request.hosts)).await?;
        let supported: Vec<String> = slots
            .iter()
            .map(|s| s.actor_type.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if supported.is_empty() {
            return Ok(Vec::new());
        }

        // Lock the candidates; rows another fetch has locked are skipped, not waited for, so
        // concurrent fetches take disjoint alarms. Once a concurrent lease commits, its row no
        // longer matches (PostgreSQL re-checks locked rows against the latest version).
        let candidates: Vec<CandidateRow> = sqlx::query_as(
            "SELECT al.alarm_id, al.actor_type, al.actor_id, h.host_id AS live_host
             FROM francis_alarms al
             LEFT JOIN francis_active_actors a
                 ON a.actor_type = al.actor_type AND a.actor_id = al.actor_id
             LEFT JOIN francis_hosts h
                 ON h.host_id = a.host_id AND h.host_last_health_check >= $1
             WHERE al.alarm_due_time <= $2
               AND (al.alarm_lease_id IS NULL OR al.alarm_lease_expiration_time < $3)
               AND al.actor_type = ANY($4)
               AND (h.host_id IS NULL OR h.host_id = ANY($5))
             ORDER BY al.alarm_due_time, al.alarm_id
             LIMIT $6
             FOR UPDATE OF al SKIP LOCKED",
        )
        .bind(threshold)
        .bind(request.horizon_ms)
        .bind(now)
        .bind(&supported)
        .bind(&request.hosts)
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
                    let lock_key = self.lock_key(&key);
                    let hosts = &request.hosts;
                    claim_actor(&mut tx, &key, lock_key, &mut slots, hosts, now, threshold).await?
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
        let rows: Vec<LeaseRow> = sqlx::query_as(concat!(
            "UPDATE francis_alarms SET alarm_lease_id = v.v_lease_id, alarm_lease_expiration_time = $3
             FROM UNNEST($1::text[], $2::text[]) AS v (v_alarm_id, v_lease_id)
             WHERE alarm_id = v.v_alarm_id
             RETURNING ",
            lease_columns!()
        ))
        .bind(&alarm_ids)
        .bind(&lease_ids)
        .bind(expires_ms)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut leases: Vec<AlarmLease> = rows.into_iter().map(AlarmLease::from).collect();
        sort_leases(&mut leases);
        Ok(leases)
    }
}

/// Apply pending migrations and return the schema they live in. sqlx's migrator holds a
/// database-wide advisory lock meanwhile, so processes opening the same new database at once do
/// not both create the schema.
async fn migrate(pool: &PgPool) -> Result<String, StoreError> {
    let mut conn = pool.acquire().await?;
    MIGRATOR.run_direct(&mut *conn).await?;
    let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *conn)
        .await?;
    schema.ok_or_else(|| {
        StoreError::Invalid("the connection's search_path names no existing schema".into())
    })
}

/// Delete hosts whose heartbeat is older than `threshold` (cascading to their placements).
async fn prune_expired_hosts<'e>(
    executor: impl PgExecutor<'e>,
    threshold: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM francis_hosts WHERE host_last_health_check < $1")
        .bind(threshold)
        .execute(executor)
        .await?;
    Ok(done.rows_affected())
}

/// Capacity of healthy hosts per actor type, optionally narrowed to one type and some hosts.
async fn load_slots(
    conn: &mut PgConnection,
    threshold: i64,
    actor_type: Option<&str>,
    hosts: Option<&[HostId]>,
) -> Result<Vec<HostSlot>, StoreError> {
    let rows: Vec<SlotRow> = sqlx::query_as(
        "SELECT t.host_id, h.host_address AS address, t.actor_type,
                t.actor_idle_timeout_ms AS idle_timeout_ms,
                t.actor_concurrency_limit AS concurrency_limit,
                CASE WHEN t.actor_concurrency_limit > 0
                     THEN (SELECT COUNT(*) FROM francis_active_actors a
                           WHERE a.host_id = t.host_id AND a.actor_type = t.actor_type)
                     ELSE 0 END AS active
         FROM francis_host_actor_types t JOIN francis_hosts h ON h.host_id = t.host_id
         WHERE h.host_last_health_check >= $1
           AND ($2::text IS NULL OR t.actor_type = $2)
           AND ($3::text[] IS NULL OR t.host_id = ANY($3))
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
    executor: impl PgExecutor<'e>,
    key: &ActorKey,
    threshold: i64,
) -> Result<Option<Placement>, StoreError> {
    let row: Option<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT a.host_id, h.host_address, a.actor_idle_timeout_ms
         FROM francis_active_actors a JOIN francis_hosts h ON h.host_id = a.host_id
         WHERE a.actor_type = $1 AND a.actor_id = $2 AND h.host_last_health_check >= $3",
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

/// Place an actor on a slot's host for a lookup, replacing any stale placement (whose deletion
/// releases the actor's alarm leases through the schema's trigger, waiting for rows others hold
/// if need be: a lookup holds no alarm rows, so it can wait safely). The caller holds the actor's
/// advisory lock, so no other transaction inserts a placement for it meanwhile.
async fn place(
    conn: &mut PgConnection,
    key: &ActorKey,
    slot: &HostSlot,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM francis_active_actors WHERE actor_type = $1 AND actor_id = $2")
        .bind(&key.actor_type)
        .bind(&key.actor_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO francis_active_actors
             (actor_type, actor_id, host_id, actor_idle_timeout_ms, actor_activation)
         VALUES ($1, $2, $3, $4, $5)",
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

/// Decide, inside a fetch, whether an actor without a live placement can run on one of `hosts`,
/// and place it if so. Nothing here waits for a lock, because the fetch already holds alarm rows
/// that placement removals (host pruning, `remove_actor`, lookups) may be waiting for:
///
/// 1. claim the actor with a non-blocking advisory lock (skip it if a lookup or another fetch is
///    placing it);
/// 2. re-read its placement under that lock: a live one decides at once;
/// 3. lock a stale placement row with `SKIP LOCKED` (skip the actor if someone is deleting it);
/// 4. upsert the placement onto a requested host with capacity (an upsert, not the delete and
///    insert of [`place`], so the schema's lease-releasing trigger, which would wait for alarm
///    rows other fetches hold, does not run), then release the actor's other leases itself,
///    skipping rows locked at that instant (a racing `complete_leased_alarm` of the old holder
///    may then keep its lease until it expires).
async fn claim_actor(
    tx: &mut Tx,
    key: &ActorKey,
    lock_key: i64,
    slots: &mut [HostSlot],
    hosts: &[HostId],
    now: i64,
    threshold: i64,
) -> Result<bool, StoreError> {
    let claimed: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(lock_key)
        .fetch_one(&mut **tx)
        .await?;
    if !claimed {
        return Ok(false);
    }
    let current: Option<(String, bool)> = sqlx::query_as(
        "SELECT a.host_id, COALESCE(h.host_last_health_check >= $3, FALSE)
         FROM francis_active_actors a LEFT JOIN francis_hosts h ON h.host_id = a.host_id
         WHERE a.actor_type = $1 AND a.actor_id = $2",
    )
    .bind(&key.actor_type)
    .bind(&key.actor_id)
    .bind(threshold)
    .fetch_optional(&mut **tx)
    .await?;
    let replacing = match current {
        Some((host_id, true)) => return Ok(hosts.contains(&host_id)),
        Some((stale_host, false)) => {
            let locked: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM francis_active_actors
                 WHERE actor_type = $1 AND actor_id = $2 AND host_id = $3
                 FOR UPDATE SKIP LOCKED",
            )
            .bind(&key.actor_type)
            .bind(&key.actor_id)
            .bind(&stale_host)
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
    sqlx::query(
        "INSERT INTO francis_active_actors
             (actor_type, actor_id, host_id, actor_idle_timeout_ms, actor_activation)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (actor_type, actor_id) DO UPDATE SET
             host_id = excluded.host_id,
             actor_idle_timeout_ms = excluded.actor_idle_timeout_ms,
             actor_activation = excluded.actor_activation",
    )
    .bind(&key.actor_type)
    .bind(&key.actor_id)
    .bind(&slot.host_id)
    .bind(slot.idle_timeout.map(duration_ms))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if replacing {
        sqlx::query(
            "UPDATE francis_alarms SET alarm_lease_id = NULL, alarm_lease_expiration_time = NULL
             WHERE alarm_id IN (
                 SELECT alarm_id FROM francis_alarms
                 WHERE actor_type = $1 AND actor_id = $2 AND alarm_lease_id IS NOT NULL
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(&key.actor_type)
        .bind(&key.actor_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(true)
}

fn bool_affected(done: sqlx::postgres::PgQueryResult) -> bool {
    done.rows_affected() > 0
}

#[async_trait]
impl Store for PostgresStore {
    fn options(&self) -> &StoreOptions {
        &self.options
    }

    async fn register_host(&self, registration: &HostRegistration) -> Result<HostId, StoreError> {
        let host_id = new_host_id();
        retrying("register_host", || {
            self.register_once(&host_id, registration)
        })
        .await?;
        tracing::debug!(%host_id, address = %registration.address, "registered host");
        Ok(host_id)
    }

    async fn reattach_host(
        &self,
        host_id: &str,
        registration: &HostRegistration,
    ) -> Result<bool, StoreError> {
        let reattached = retrying("reattach_host", || {
            self.register_once(host_id, registration)
        })
        .await?;
        tracing::debug!(%host_id, address = %registration.address, reattached, "re-registered host");
        Ok(reattached)
    }

    async fn heartbeat(&self, host_id: &str) -> Result<(), StoreError> {
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
        let last: Option<i64> = retrying("unregister_host", || async {
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
    }

    async fn list_hosts(&self) -> Result<Vec<HostInfo>, StoreError> {
        let (_, threshold) = self.now_and_threshold();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT host_id, host_address, host_last_health_check FROM francis_hosts
             WHERE host_last_health_check >= $1 ORDER BY host_id",
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
        let (_, threshold) = self.now_and_threshold();
        // Most lookups find a live placement: answer those without a transaction or a lock.
        if let Some(placement) = live_placement(&self.pool, key, threshold).await? {
            return check_allowed(key, placement, options);
        }
        if options.active_only {
            return Err(StoreError::NotActive { key: key.clone() });
        }
        retrying("lookup_actor", || self.allocate(key, options)).await
    }

    async fn remove_actor(&self, key: &ActorKey, host_id: &str) -> Result<bool, StoreError> {
        retrying("remove_actor", || async {
            let done = sqlx::query(
                "DELETE FROM francis_active_actors
                 WHERE actor_type = $1 AND actor_id = $2 AND host_id = $3",
            )
            .bind(&key.actor_type)
            .bind(&key.actor_id)
            .bind(host_id)
            .execute(&self.pool)
            .await?;
            Ok(bool_affected(done))
        })
        .await
    }

    async fn get_state(&self, key: &ActorKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT actor_state_data FROM francis_actor_state
             WHERE actor_type = $1 AND actor_id = $2
               AND (actor_state_expiration_time IS NULL OR actor_state_expiration_time > $3)",
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
            "INSERT INTO francis_actor_state
                 (actor_type, actor_id, actor_state_data, actor_state_expiration_time)
             VALUES ($1, $2, $3, $4)
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
            "DELETE FROM francis_actor_state WHERE actor_type = $1 AND actor_id = $2
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
            "SELECT actor_id, CASE WHEN $4 THEN actor_state_data END FROM francis_actor_state
             WHERE actor_type = $1 AND ($2::text IS NULL OR actor_id > $2)
               AND (actor_state_expiration_time IS NULL OR actor_state_expiration_time > $3)
             ORDER BY actor_id LIMIT $5",
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
        // equal (`IS NOT DISTINCT FROM` compares NULLs as equal), in which case the row is left
        // untouched, keeping its ID, attempts and lease.
        sqlx::query(
            "INSERT INTO francis_alarms AS al (alarm_id, actor_type, actor_id, alarm_name,
                 alarm_handler, alarm_due_time, alarm_scheduled_time, alarm_interval,
                 alarm_ttl_time, alarm_data, alarm_attempts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
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
             WHERE NOT (al.alarm_handler IS NOT DISTINCT FROM excluded.alarm_handler
                 AND al.alarm_due_time IS NOT DISTINCT FROM excluded.alarm_due_time
                 AND al.alarm_interval IS NOT DISTINCT FROM excluded.alarm_interval
                 AND al.alarm_ttl_time IS NOT DISTINCT FROM excluded.alarm_ttl_time
                 AND al.alarm_data IS NOT DISTINCT FROM excluded.alarm_data)",
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
            " FROM francis_alarms WHERE actor_type = $1 AND actor_id = $2 AND alarm_name = $3"
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
            "DELETE FROM francis_alarms WHERE actor_type = $1 AND actor_id = $2 AND alarm_name = $3",
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
        if request.hosts.is_empty() || request.batch_size == 0 {
            return Ok(Vec::new());
        }
        retrying("fetch_and_lease_alarms", || self.fetch_once(request)).await
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
            "UPDATE francis_alarms SET alarm_due_time = $4,
                 alarm_scheduled_time = COALESCE($5, alarm_scheduled_time), alarm_attempts = $6,
                 alarm_lease_id = $7, alarm_lease_expiration_time = $8
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
        let rows: Vec<LeaseRow> = retrying("renew_alarm_leases", || async {
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
    }

    async fn cleanup(&self) -> Result<CleanupStats, StoreError> {
        let (now, threshold) = self.now_and_threshold();
        let hosts = retrying("cleanup", || prune_expired_hosts(&self.pool, threshold)).await?;
        let states = sqlx::query(
            "DELETE FROM francis_actor_state
             WHERE actor_state_expiration_time IS NOT NULL AND actor_state_expiration_time <= $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(CleanupStats { hosts, states })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_lock_key_is_stable_and_separates_its_parts() {
        let counter_1 = ActorKey::new("counter", "1");
        // A fixed value: the key must never change between builds, or processes running
        // different builds would stop serializing with each other.
        assert_eq!(
            actor_lock_key("public", &counter_1),
            EXPECTED_PUBLIC_COUNTER_1
        );
        assert_eq!(
            actor_lock_key("public", &counter_1),
            actor_lock_key("public", &counter_1.clone())
        );
        assert_ne!(
            actor_lock_key("public", &counter_1),
            actor_lock_key("other", &counter_1)
        );
        assert_ne!(
            actor_lock_key("public", &ActorKey::new("ab", "c")),
            actor_lock_key("public", &ActorKey::new("a", "bc"))
        );
    }

    const EXPECTED_PUBLIC_COUNTER_1: i64 = -7_171_538_971_134_748_185;
}
