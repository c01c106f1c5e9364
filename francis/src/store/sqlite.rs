//! The SQLite dialect: one database file, shareable by several processes on one machine.
//!
//! Every write transaction is `BEGIN IMMEDIATE`, which takes SQLite's single write lock up
//! front, so concurrent hosts (in this process or in others) serialize instead of racing; a
//! process-wide mutex in front of it turns the waiting into a cheap async wait instead of sleeps
//! in SQLite's busy handler. Holding the database's only write lock, a transaction needs no
//! placement or row locks. A dropped future never leaves a transaction open: sqlx rolls back a
//! dropped transaction before its connection is reused. Lists travel as JSON arrays read with
//! `json_each`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::OwnedMutexGuard;

use super::sql::SqlStore;
use super::sql::dialect::{Dialect, Tx, sealed};
use crate::model::{ActorKey, StoreError, StoreOptions};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

    async fn begin_write(
        &self,
        pool: &sqlx::Pool<sqlx::Sqlite>,
    ) -> Result<(OwnedMutexGuard<()>, Tx<Self>), StoreError> {
        let turn = self.write_lock.clone().lock_owned().await;
        Ok((turn, pool.begin_with("BEGIN IMMEDIATE").await?))
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
        let pool: SqlitePool = SqlitePoolOptions::new().connect_with(connect).await?;
        let store = SqlStore::new(pool, SqliteDialect::default(), options);
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
