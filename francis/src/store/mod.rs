//! The stores: where coordination data lives. [`memory::MemoryStore`] keeps it in this process;
//! [`sqlite::SqliteStore`] and [`postgres::PostgresStore`] keep it in a database, through one SQL
//! implementation over a small dialect seam ([`sql`]). Every store implements the coordination
//! contract [`Store`] (defined in [`crate::model`], re-exported here) and passes one
//! conformance suite.
//!
//! A store knows nothing of hosts' actors in memory or of the network; it only keeps rows
//! consistent.

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
    ActorKey, ActorTypeRegistration, AlarmCompletion, AlarmLease, AlarmRecord, CleanupStats,
    ClusterIdentity, ClusterObservation, DueAlarmCount, FetchAlarms, HostId, HostInfo,
    HostRegistration, ListStatesOptions, LookupOptions, ObservedHost, Placement, PlacementCount,
    StateEntry, StateList, Store, StoreError, StoreOptions,
};

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
    /// Open (and migrate) the store.
    pub(crate) async fn open(
        self,
        options: StoreOptions,
    ) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        let store: std::sync::Arc<dyn Store> = match self {
            StoreSpec::Memory => std::sync::Arc::new(memory::MemoryStore::new(options)),
            #[cfg(feature = "sqlite")]
            StoreSpec::Sqlite(path, synchronous) => std::sync::Arc::new(
                sqlite::SqliteStore::open_with(&path, synchronous, options).await?,
            ),
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres(url) => {
                std::sync::Arc::new(postgres::PostgresStore::connect(&url, options).await?)
            }
            StoreSpec::Shared(store) => store,
        };
        Ok(observed::Observed::wrap(store))
    }
}
