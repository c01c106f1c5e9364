//! The SQLite dialect: one database file, shareable by several processes on one machine.
//!
//! Every write transaction is `BEGIN IMMEDIATE`, which takes SQLite's single write lock up
//! front, so concurrent hosts (in this process or in others) serialize instead of racing; a
//! process-wide mutex in front of it turns the waiting into a cheap async wait instead of sleeps
//! in SQLite's busy handler. Holding the database's only write lock, a transaction needs no
//! placement or row locks. A dropped future never leaves a transaction open: sqlx rolls back a
//! dropped transaction before its connection is reused. Lists travel as JSON arrays read with
//! `json_each`.
//!
//! The file is in WAL mode. How hard each commit is pushed to disk is [`Synchronous`]: by
//! default `NORMAL`, which survives a crash of the process but may lose the last commits on a
//! power loss or OS crash (the database itself stays consistent); `FULL` syncs the WAL on every
//! commit, so nothing committed is lost, at the cost of slower writes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::OwnedMutexGuard;

use super::SqlOptions;
use super::sql::dialect::{Dialect, Tx, sealed};
use super::sql::{SqlStore, with_query_log};
use crate::model::{ActorKey, StoreError, StoreOptions};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long opening a new file keeps retrying while another process switches it to WAL mode.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How hard SQLite pushes each commit to disk (its `synchronous` pragma, in WAL mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Synchronous {
    /// `synchronous=NORMAL` (the default): the WAL is synced at checkpoints, not at every
    /// commit. A crash of the process loses nothing, but a power loss or OS crash can undo the
    /// last commits (state saves, alarms, placements) made before it; the file stays
    /// consistent.
    #[default]
    Normal,
    /// `synchronous=FULL`: the WAL is synced at every commit, so a commit that returned
    /// survives a power loss. Writes are slower (one `fsync` each).
    Full,
}

impl Synchronous {
    fn to_sqlx(self) -> SqliteSynchronous {
        match self {
            Synchronous::Normal => SqliteSynchronous::Normal,
            Synchronous::Full => SqliteSynchronous::Full,
        }
    }
}

/// A [`crate::model::Store`] backed by one SQLite database file.
pub type SqliteStore = SqlStore<SqliteDialect>;

/// The SQLite side of the SQL store's seam (see [`SqliteStore`]).
#[derive(Debug, Default)]
pub struct SqliteDialect {
    /// Serializes this process's write transactions.
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

impl sealed::Sealed for SqliteDialect {}

impl Dialect for SqliteDialect {
    type Db = sqlx::Sqlite;
    type List<'q> = String;
    type Turn = OwnedMutexGuard<()>;

    fn list(items: &[String]) -> Result<String, StoreError> {
        serde_json::to_string(items)
            .map_err(|e| StoreError::Invalid(format!("cannot encode a list: {e}")))
    }

    fn member(column: &str, param: &str) -> String {
        format!("{column} IN (SELECT value FROM json_each({param}))")
    }

    fn pairs(first: &str, second: &str, alias: &str) -> String {
        format!(
            "(SELECT a.value AS v_first, b.value AS v_second
              FROM json_each({first}) AS a JOIN json_each({second}) AS b ON b.key = a.key) AS {alias}"
        )
    }

    fn skip_locked(_table: &str) -> String {
        String::new()
    }

    fn row_lock() -> &'static str {
        ""
    }

    async fn begin_write(
        &self,
        pool: &sqlx::Pool<sqlx::Sqlite>,
    ) -> Result<(OwnedMutexGuard<()>, Tx<Self>), StoreError> {
        let turn = self.write_lock.clone().lock_owned().await;
        Ok((turn, pool.begin_with("BEGIN IMMEDIATE").await?))
    }

    async fn begin_snapshot(
        &self,
        pool: &sqlx::Pool<sqlx::Sqlite>,
    ) -> Result<Tx<Self>, StoreError> {
        // A deferred transaction reads one snapshot of the WAL from its first read on.
        Ok(pool.begin().await?)
    }

    async fn lock_actor(&self, _tx: &mut Tx<Self>, _key: &ActorKey) -> Result<(), StoreError> {
        Ok(())
    }

    async fn try_lock_actor(
        &self,
        _tx: &mut Tx<Self>,
        _key: &ActorKey,
    ) -> Result<bool, StoreError> {
        Ok(true)
    }

    fn is_retryable(_error: &StoreError) -> bool {
        false
    }

    fn rows_affected(result: &<sqlx::Sqlite as sqlx::Database>::QueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Whether an error is SQLite's "database is locked" (SQLITE_BUSY and its extended codes).
fn is_busy(e: &StoreError) -> bool {
    let busy = |code: Option<std::borrow::Cow<'_, str>>| {
        code.is_some_and(|code| code.parse::<i32>().is_ok_and(|c| c & 0xff == 5))
    };
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => busy(db.code()),
        StoreError::Migration(sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(db))) => {
            busy(db.code())
        }
        _ => false,
    }
}

impl SqlStore<SqliteDialect> {
    /// Open (creating it if missing) the database at `path` and bring its schema up to date,
    /// with the default durability ([`Synchronous::Normal`]).
    ///
    /// Several processes may open one new file at the same moment; switching it to WAL mode
    /// can then report "database is locked" at once instead of waiting, so opening is retried
    /// briefly on that error alone.
    pub async fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        Self::open_with(path, Synchronous::default(), options).await
    }

    /// [`open`](Self::open) with the given durability: [`Synchronous::Full`] so that no
    /// returned commit is lost on a power loss.
    pub async fn open_with(
        path: impl AsRef<Path>,
        synchronous: Synchronous,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        Self::open_configured(path, synchronous, options, SqlOptions::default()).await
    }

    /// [`open_with`](Self::open_with), its operations bounded and logged as `sql` says (the
    /// timeout also bounds the wait for another connection's write lock).
    pub async fn open_configured(
        path: impl AsRef<Path>,
        synchronous: Synchronous,
        options: StoreOptions,
        sql: SqlOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let mut delay = Duration::from_millis(10);
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match Self::open_once(path, synchronous, options.clone(), sql).await {
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(250));
                }
                other => return other,
            }
        }
    }

    async fn open_once(
        path: &Path,
        synchronous: Synchronous,
        options: StoreOptions,
        sql: SqlOptions,
    ) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous.to_sqlx())
            .foreign_keys(true)
            .busy_timeout(sql.timeout);
        let pool: SqlitePool = SqlitePoolOptions::new()
            .acquire_timeout(sql.timeout)
            .connect_with(with_query_log(connect, sql.query_log))
            .await?;
        let store = SqlStore::new(pool, SqliteDialect::default(), options, sql);
        // Migrate under the write lock, so processes opening the same new file at once do not
        // both try to create the schema. `run_direct` rather than `run(&mut *tx)`: the latter
        // makes this future unusable with `tokio::spawn` ("implementation of `Acquire` is not
        // general enough").
        let (_turn, mut tx) = store.dialect().begin_write(store.pool()).await?;
        MIGRATOR.run_direct(&mut *tx).await?;
        tx.commit().await?;
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OperationLog;

    /// What `PRAGMA synchronous` reads back on every connection of the store's pool.
    async fn synchronous_of(store: &SqliteStore) -> Vec<i64> {
        let pool = store.pool();
        let mut connections = Vec::new();
        let mut values = Vec::new();
        // Hold several connections at once, so more than one is checked.
        for _ in 0..3 {
            let mut conn = pool.acquire().await.unwrap();
            let (value,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            values.push(value);
            connections.push(conn);
        }
        values
    }

    fn options() -> StoreOptions {
        StoreOptions {
            clock: Arc::new(crate::clock::SystemClock),
            health_check_deadline: Duration::from_secs(20),
        }
    }

    #[tokio::test]
    async fn a_power_loss_cannot_undo_commits_of_a_full_synchronous_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.db");
        let store = SqliteStore::open_with(&path, Synchronous::Full, options())
            .await
            .unwrap();
        // 2 is FULL: the WAL is synced at every commit.
        assert_eq!(synchronous_of(&store).await, vec![2, 2, 2]);
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn the_default_synchronous_is_normal_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("normal.db"), options())
            .await
            .unwrap();
        // 1 is NORMAL.
        assert_eq!(synchronous_of(&store).await, vec![1, 1, 1]);
    }

    /// The store operations' log lines: (level, operation, message).
    type Lines = Arc<std::sync::Mutex<Vec<(tracing::Level, String, String)>>>;

    /// A subscriber that keeps the events carrying an `operation` field.
    struct Recorder(Lines);

    impl tracing::Subscriber for Recorder {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            #[derive(Default)]
            struct Fields {
                operation: Option<String>,
                message: String,
            }
            impl tracing::field::Visit for Fields {
                fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                    if field.name() == "operation" {
                        self.operation = Some(value.to_owned());
                    }
                }
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    if field.name() == "message" {
                        self.message = format!("{value:?}");
                    }
                }
            }
            let mut fields = Fields::default();
            event.record(&mut fields);
            if let Some(operation) = fields.operation {
                let level = *event.metadata().level();
                self.0
                    .lock()
                    .unwrap()
                    .push((level, operation, fields.message));
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    fn registration() -> crate::model::HostRegistration {
        crate::model::HostRegistration {
            address: "127.0.0.1:7571".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn an_operation_that_outlasts_the_store_timeout_fails_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let sql = SqlOptions {
            timeout: Duration::from_millis(100),
            ..SqlOptions::default()
        };
        let store = SqliteStore::open_configured(
            dir.path().join("slow.db"),
            Synchronous::Normal,
            options(),
            sql,
        )
        .await
        .unwrap();
        assert_eq!(store.sql_options().timeout, Duration::from_millis(100));
        // Another writer of this process holds the write lock: registering must wait for it,
        // and gives up at the store timeout.
        let turn = store.dialect().write_lock.clone().lock_owned().await;
        let err = crate::model::Store::register_host(&store, &registration())
            .await
            .unwrap_err();
        match &err {
            StoreError::Unavailable(message) => assert_eq!(
                message,
                "reattach_host: the SQLite database did not answer within 100ms (the store \
                 timeout)"
            ),
            other => panic!("expected the store timeout, got {other:?}"),
        }
        drop(turn);
        // The abandoned registration was rolled back; the store works on.
        assert!(
            crate::model::Store::list_hosts(&store)
                .await
                .unwrap()
                .is_empty()
        );
        crate::model::Store::register_host(&store, &registration())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_operation_log_names_each_operation_and_warns_about_slow_ones() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str, log: OperationLog| {
            let path = dir.path().join(name);
            async move {
                let sql = SqlOptions {
                    operation_log: log,
                    ..SqlOptions::default()
                };
                SqliteStore::open_configured(path, Synchronous::Normal, options(), sql)
                    .await
                    .unwrap()
            }
        };
        let lines: Lines = Arc::default();
        let _guard = tracing::subscriber::set_default(Recorder(lines.clone()));

        // Off: nothing.
        let quiet = open("quiet.db", OperationLog::default()).await;
        crate::model::Store::list_hosts(&quiet).await.unwrap();
        assert!(
            lines.lock().unwrap().is_empty(),
            "{:?}",
            lines.lock().unwrap()
        );

        // On: one debug line per operation.
        let logged = open(
            "logged.db",
            OperationLog {
                enabled: true,
                slow_threshold: None,
            },
        )
        .await;
        crate::model::Store::list_hosts(&logged).await.unwrap();
        assert_eq!(
            lines.lock().unwrap().drain(..).collect::<Vec<_>>(),
            [(
                tracing::Level::DEBUG,
                "list_hosts".to_owned(),
                "store operation".to_owned()
            )]
        );

        // Above the threshold: a warning. An operation held up behind the write lock is slow.
        let slow = open(
            "slow.db",
            OperationLog {
                enabled: true,
                slow_threshold: Some(Duration::from_millis(1)),
            },
        )
        .await;
        let turn = slow.dialect().write_lock.clone().lock_owned().await;
        let registration = registration();
        let waiting = crate::model::Store::register_host(&slow, &registration);
        let release = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(turn);
        };
        let (registered, ()) = tokio::join!(waiting, release);
        registered.unwrap();
        let lines = lines.lock().unwrap().clone();
        assert!(
            lines.contains(&(
                tracing::Level::WARN,
                "reattach_host".to_owned(),
                "slow store operation".to_owned()
            )),
            "{lines:?}"
        );
    }
}
