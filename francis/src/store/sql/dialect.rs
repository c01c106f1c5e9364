//! The seam between the shared SQL of [`super::SqlStore`] and one database: the sqlx driver, how
//! a list travels as one parameter, how a write transaction and a snapshot read start, how an
//! actor is locked for placement, and which errors are worth running a transaction again for.
//! Everything else (the statements, with `$N` placeholders that both drivers accept, and the
//! coordination logic) is written once in [`super`].
//!
//! The trait is sealed: the two dialects are [`crate::store::sqlite::SqliteDialect`] and
//! [`crate::store::postgres::PostgresDialect`].

use std::future::Future;

use sqlx::{Database, Encode, Pool, Transaction, Type};

use crate::model::{ActorKey, StoreError};

/// A transaction of dialect `D`'s database.
pub type Tx<D> = Transaction<'static, <D as Dialect>::Db>;

pub(crate) mod sealed {
    /// Keeps [`super::Dialect`] to the dialects of this crate.
    pub trait Sealed {}
}

/// What differs between the databases a [`super::SqlStore`] runs on. Sealed.
pub trait Dialect: sealed::Sealed + Send + Sync + Sized + 'static {
    /// The sqlx driver.
    type Db: Database;

    /// A list of strings bound as one parameter (see [`Dialect::member`]).
    type List<'q>: Encode<'q, Self::Db> + Type<Self::Db> + Send + 'q;

    /// What a write transaction holds besides the transaction itself, until it ends.
    type Turn: Send;

    /// The list parameter holding `items`.
    fn list(items: &[String]) -> Result<Self::List<'_>, StoreError>;

    /// A condition: `column` is one of the items of list parameter `param` (e.g. `$5`).
    fn member(column: &str, param: &str) -> String;

    /// A `FROM` item named `alias` whose rows pair the items of list parameters `first` and
    /// `second` by position, in columns `v_first` and `v_second`.
    fn pairs(first: &str, second: &str, alias: &str) -> String;

    /// The clause that locks the rows of `table` a `SELECT` returns, skipping rows another
    /// transaction holds; empty where a write transaction already excludes every other writer.
    fn skip_locked(table: &str) -> String;

    /// The clause that locks the rows a `SELECT` returns until the transaction ends, waiting
    /// for them if another transaction holds them; empty where a write transaction already
    /// excludes every other writer.
    fn row_lock() -> &'static str;

    /// Start a transaction that will write.
    fn begin_write<'a>(
        &'a self,
        pool: &'a Pool<Self::Db>,
    ) -> impl Future<Output = Result<(Self::Turn, Tx<Self>), StoreError>> + Send + 'a;

    /// Start a read-only transaction whose statements all see one snapshot of the database.
    fn begin_snapshot<'a>(
        &'a self,
        pool: &'a Pool<Self::Db>,
    ) -> impl Future<Output = Result<Tx<Self>, StoreError>> + Send + 'a;

    /// Wait until this transaction alone may place `key` (until it ends).
    fn lock_actor<'a>(
        &'a self,
        tx: &'a mut Tx<Self>,
        key: &'a ActorKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;

    /// Take the placement lock of `key` for this transaction if nobody holds it; `false` if
    /// another transaction does (the caller skips the actor instead of waiting).
    fn try_lock_actor<'a>(
        &'a self,
        tx: &'a mut Tx<Self>,
        key: &'a ActorKey,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + 'a;

    /// Whether running the failed transaction again can succeed (a deadlock victim, say).
    fn is_retryable(error: &StoreError) -> bool;

    /// How many rows a statement changed.
    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;
}
