//! The stores: where coordination data lives. [`memory::MemoryStore`] keeps it in this process;
//! [`sqlite::SqliteStore`] and [`postgres::PostgresStore`] keep it in a database, through one SQL
//! implementation over a small dialect seam ([`sql`]). Every store implements the coordination
//! contract [`Store`] (defined in [`crate::model`], re-exported here) and passes one
//! conformance suite.
//!
//! A store knows nothing of hosts' actors in memory or of the network; it only keeps rows
//! consistent.

use std::time::Duration;

pub mod memory;
mod observed;
#[cfg(feature = "postgres")]
pub mod postgres;
mod rules;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(test)]
mod conformance;

pub use crate::model::{
    ActorKey, ActorTypeRegistration, AlarmCompletion, AlarmLease, AlarmRecord, AuditQuery,
    AuditRecord, AuditResult, CleanupStats, ClusterIdentity, ClusterObservation, DeadLetter,
    DeadLetterQuery, DueAlarmCount, FetchAlarms, HostId, HostInfo, HostRegistration, JobInfo,
    JobRecord, JobStatus, ListStatesOptions, LookupOptions, ObservedHost, OperationsStore,
    Placement, PlacementCount, StateEntry, StateList, Store, StoreError, StoreOptions,
};

/// How long one store operation may take by default ([`SqlOptions::timeout`]): 5 s, or half
/// the health check deadline when that is shorter (see [`default_store_timeout`]).
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// The store timeout used when none is given: [`DEFAULT_STORE_TIMEOUT`], or half of
/// `health_check_deadline` when that is less than 10 s, so it stays below the deadline.
pub fn default_store_timeout(health_check_deadline: Duration) -> Duration {
    DEFAULT_STORE_TIMEOUT.min(health_check_deadline / 2)
}

/// How a SQL store (SQLite, PostgreSQL) bounds and logs its work: the runtime's
/// `provider.timeout`, `provider.queryLog` and `provider.operationLog`, and the host builder's
/// `store_timeout`, `query_log` and `operation_log`. The memory store, and a store the caller
/// opened itself, do not use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlOptions {
    /// The longest one store operation may take, its statements and the retries of a
    /// transaction the database aborted included (default [`DEFAULT_STORE_TIMEOUT`], 5 s; a
    /// host or runtime builder given no timeout uses [`default_store_timeout`]). An
    /// operation that takes longer fails with [`StoreError::Unavailable`] and its transaction
    /// is rolled back. It is also how long an operation waits for a pooled connection and, on
    /// SQLite, for another process's write lock. It must be less than the health-check
    /// deadline, or one slow operation could outlast a host's registration.
    pub timeout: Duration,
    /// Logging of each SQL statement.
    pub query_log: QueryLog,
    /// Logging of each store operation.
    pub operation_log: OperationLog,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            timeout: DEFAULT_STORE_TIMEOUT,
            query_log: QueryLog::default(),
            operation_log: OperationLog::default(),
        }
    }
}

impl SqlOptions {
    /// What is wrong with these options next to this health-check deadline, if anything.
    pub(crate) fn problems(&self, health_check_deadline: Duration) -> Vec<String> {
        let mut problems = Vec::new();
        if self.timeout.is_zero() {
            problems
                .push("the store timeout is zero; give a positive duration (default 5 s)".into());
        } else if self.timeout >= health_check_deadline {
            problems.push(format!(
                "the store timeout ({:?}) must be less than the health check deadline ({:?}), or \
                 one slow store operation could outlast a host's registration",
                self.timeout, health_check_deadline
            ));
        }
        problems.extend(slow_threshold_problem(
            "query log",
            self.query_log.enabled,
            self.query_log.slow_threshold,
        ));
        problems.extend(slow_threshold_problem(
            "operation log",
            self.operation_log.enabled,
            self.operation_log.slow_threshold,
        ));
        problems
    }
}

fn slow_threshold_problem(
    what: &str,
    enabled: bool,
    threshold: Option<Duration>,
) -> Option<String> {
    match threshold {
        Some(t) if t.is_zero() => Some(format!(
            "the {what}'s slow threshold is zero; give a positive duration, or none"
        )),
        Some(_) if !enabled => Some(format!(
            "the {what} has a slow threshold but is not enabled; set enabled: true (a slow \
             threshold only applies to an enabled log)"
        )),
        _ => None,
    }
}

/// Logging of each SQL statement a store runs (`provider.queryLog`). Off by default.
///
/// Statements are logged with their text only: the values bound to them are never logged,
/// since they hold actor state, alarm data and host addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryLog {
    /// Log every statement, with its duration, at debug level (target `sqlx::query`).
    pub enabled: bool,
    /// Log a statement that took longer than this at warn level (requires `enabled`).
    pub slow_threshold: Option<Duration>,
}

/// Logging of each store operation (`provider.operationLog`): one line per call of the
/// [`Store`] contract (`lookup_actor`, `set_state`, ...), however many statements it runs. Off
/// by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationLog {
    /// Log every operation, with its duration and outcome, at debug level (target
    /// `francis::store`).
    pub enabled: bool,
    /// Log an operation that took longer than this at warn level (requires `enabled`).
    pub slow_threshold: Option<Duration>,
}

/// Which store a builder opens (hosts of the local topology and runtimes both choose one).
pub(crate) enum StoreSpec {
    /// [`memory::MemoryStore`].
    Memory,
    /// [`sqlite::SqliteStore`] on this file, with this durability.
    #[cfg(feature = "sqlite")]
    Sqlite(std::path::PathBuf, sqlite::Synchronous),
    /// [`postgres::PostgresStore`] at this URL.
    #[cfg(feature = "postgres")]
    Postgres(String),
    /// A store the caller already opened.
    Shared(std::sync::Arc<dyn Store>),
}

impl StoreSpec {
    /// Open (and migrate) the store; a SQL store is bounded and logged as `sql` says.
    pub(crate) async fn open(
        self,
        options: StoreOptions,
        #[cfg_attr(
            not(any(feature = "sqlite", feature = "postgres")),
            allow(unused_variables)
        )]
        sql: SqlOptions,
    ) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        let store: std::sync::Arc<dyn Store> = match self {
            StoreSpec::Memory => std::sync::Arc::new(memory::MemoryStore::new(options)),
            #[cfg(feature = "sqlite")]
            StoreSpec::Sqlite(path, synchronous) => std::sync::Arc::new(
                sqlite::SqliteStore::open_configured(&path, synchronous, options, sql).await?,
            ),
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres(url) => std::sync::Arc::new(
                postgres::PostgresStore::connect_configured(&url, options, sql).await?,
            ),
            StoreSpec::Shared(store) => store,
        };
        Ok(observed::Observed::wrap(store))
    }
}
