//! The PostgreSQL dialect: one database shared by every host of a cluster, on any machines.
//!
//! PostgreSQL has no single write lock, so the SQL store's concurrency is handled per object:
//! - an actor's placement lock is `pg_advisory_xact_lock` on a 64-bit key computed from the
//!   store's schema and the actor's type and ID (a stable FNV-1a hash, see `actor_lock_key`;
//!   advisory locks are database-wide, so the schema keeps stores in different schemas apart).
//!   Hash collisions only make two actors wait for (or, in a fetch, skip) each other; they never
//!   break correctness;
//! - rows are locked with `FOR UPDATE OF … SKIP LOCKED`;
//! - transactions aborted as deadlock or serialization victims, or whose host vanished under
//!   them (a foreign-key violation), are run again.
//!
//! Lists travel as `text[]`. Objects live in the first schema of the connection's `search_path`
//! (the migrations create them there), so several independent stores can share a database in
//! different schemas.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use tracing::warn;

use super::SqlOptions;
use super::sql::dialect::{Dialect, Tx, sealed};
use super::sql::{SqlStore, with_query_log};
use crate::model::{ActorKey, StoreError, StoreOptions};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections [`PostgresStore::connect`] opens at most. Transactions are short, so a few
/// connections serve many concurrent callers (they queue for a connection).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// A [`crate::model::Store`] backed by a PostgreSQL database, shareable by hosts on many
/// machines.
pub type PostgresStore = SqlStore<PostgresDialect>;

/// The PostgreSQL side of the SQL store's seam (see [`PostgresStore`]).
#[derive(Debug)]
pub struct PostgresDialect {
    /// The schema holding the tables (`current_schema()`), part of every advisory-lock key.
    schema: String,
}

impl PostgresDialect {
    fn lock_key(&self, key: &ActorKey) -> i64 {
        actor_lock_key(&self.schema, key)
    }
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

impl sealed::Sealed for PostgresDialect {}

impl Dialect for PostgresDialect {
    type Db = sqlx::Postgres;
    type List<'q> = &'q [String];
    type Turn = ();

    fn list(items: &[String]) -> Result<&[String], StoreError> {
        Ok(items)
    }

    fn member(column: &str, param: &str) -> String {
        format!("{column} = ANY({param})")
    }

    fn pairs(first: &str, second: &str, alias: &str) -> String {
        format!("UNNEST({first}::text[], {second}::text[]) AS {alias} (v_first, v_second)")
    }

    fn skip_locked(table: &str) -> String {
        format!("FOR UPDATE OF {table} SKIP LOCKED")
    }

    fn row_lock() -> &'static str {
        "FOR UPDATE"
    }

    async fn begin_write(&self, pool: &PgPool) -> Result<((), Tx<Self>), StoreError> {
        Ok(((), pool.begin().await?))
    }

    async fn begin_snapshot(&self, pool: &PgPool) -> Result<Tx<Self>, StoreError> {
        Ok(pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?)
    }

    async fn lock_actor(&self, tx: &mut Tx<Self>, key: &ActorKey) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(self.lock_key(key))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn try_lock_actor(&self, tx: &mut Tx<Self>, key: &ActorKey) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(self.lock_key(key))
            .fetch_one(&mut **tx)
            .await?)
    }

    fn is_retryable(error: &StoreError) -> bool {
        let StoreError::Database(sqlx::Error::Database(db)) = error else {
            return false;
        };
        // 40P01 deadlock_detected, 40001 serialization_failure, 23503 foreign_key_violation (a
        // host deleted between choosing it and placing an actor on it).
        matches!(db.code().as_deref(), Some("40P01" | "40001" | "23503"))
    }

    fn rows_affected(result: &<sqlx::Postgres as sqlx::Database>::QueryResult) -> u64 {
        result.rows_affected()
    }
}

impl SqlStore<PostgresDialect> {
    /// Connect to the database at `url` (`postgres://user:password@host:port/database`) with a
    /// pool of at most [`DEFAULT_MAX_CONNECTIONS`] connections, and bring its schema up to date.
    ///
    /// TLS follows libpq's URL parameters (or `PGSSLMODE` / `PGSSLROOTCERT`): `sslmode=verify-full`
    /// with `sslrootcert=/path/ca.pem` checks the server's certificate and name (the system's
    /// roots when no file is given); `require` encrypts without checking who answers. A database
    /// on another machine reached without verified TLS is logged as a warning.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        Self::connect_configured(url, options, SqlOptions::default()).await
    }

    /// [`connect`](Self::connect), its operations bounded and logged as `sql` says (the
    /// timeout also bounds the wait for a pooled connection).
    pub async fn connect_configured(
        url: &str,
        options: StoreOptions,
        sql: SqlOptions,
    ) -> Result<Self, StoreError> {
        let connect: PgConnectOptions = url.parse().map_err(|e| {
            StoreError::Invalid(format!(
                "the PostgreSQL connection string is not valid ({e}); expected \
                 postgres://user:password@host:port/database[?sslmode=verify-full&sslrootcert=ca.pem]"
            ))
        })?;
        let tls = tls_protection(&connect);
        if let TlsProtection::None | TlsProtection::Unverified = tls {
            warn!(
                host = connect.get_host(),
                sslmode = ?connect.get_ssl_mode(),
                "the PostgreSQL database is on another machine and its traffic is {}: anyone on the \
                 path can read or change actor state, alarms and placements. Add \
                 sslmode=verify-full&sslrootcert=<the server's CA file> to the connection string",
                if tls == TlsProtection::None { "not encrypted" } else { "encrypted, but whoever answers is trusted" }
            );
        }
        let target = format!("{}:{}", connect.get_host(), connect.get_port());
        let mode = connect.get_ssl_mode();
        let pool = PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .acquire_timeout(sql.timeout)
            .connect_with(with_query_log(connect, sql.query_log))
            .await
            .map_err(|e| {
                let hint = match mode {
                    PgSslMode::VerifyCa | PgSslMode::VerifyFull
                        if e.to_string().contains("certificate") =>
                    {
                        "; sslrootcert must name the CA file that signed the database server's \
                         certificate (and, for verify-full, the certificate must name the host)"
                    }
                    _ => "",
                };
                StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL at {target} (sslmode={}): {e}{hint}",
                    ssl_mode_name(mode)
                ))
            })?;
        Self::from_pool_configured(pool, options, sql).await
    }

    /// Use an existing pool (e.g. one configured with TLS, or with a `search_path` naming the
    /// schema to use) and create or update the tables in the first existing schema of its
    /// `search_path`.
    ///
    /// sqlx's migrator holds a database-wide advisory lock while it runs, so processes opening
    /// the same new database at once do not both create the schema.
    pub async fn from_pool(pool: PgPool, options: StoreOptions) -> Result<Self, StoreError> {
        Self::from_pool_configured(pool, options, SqlOptions::default()).await
    }

    /// [`from_pool`](Self::from_pool), its operations bounded and logged as `sql` says. The
    /// pool's own settings stay as they are: its statement logging
    /// ([`SqlOptions::query_log`]) and connection wait are set when a pool is made, as
    /// [`connect_configured`](Self::connect_configured) does.
    pub async fn from_pool_configured(
        pool: PgPool,
        options: StoreOptions,
        sql: SqlOptions,
    ) -> Result<Self, StoreError> {
        let mut conn = pool.acquire().await?;
        MIGRATOR.run_direct(&mut *conn).await?;
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut *conn)
            .await?;
        drop(conn);
        let schema = schema.ok_or_else(|| {
            StoreError::Invalid("the connection's search_path names no existing schema".into())
        })?;
        Ok(SqlStore::new(
            pool,
            PostgresDialect { schema },
            options,
            sql,
        ))
    }
}

/// How well a connection's settings protect its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsProtection {
    /// The database is on this machine (loopback or a Unix socket): nothing crosses a network.
    Local,
    /// TLS with the server's certificate checked (`verify-ca`, `verify-full`).
    Verified,
    /// TLS whoever answers (`require`), or TLS only if the server offers it (`prefer`).
    Unverified,
    /// No TLS (`disable`, `allow`).
    None,
}

fn tls_protection(connect: &PgConnectOptions) -> TlsProtection {
    let host = connect.get_host();
    let local = connect.get_socket().is_some()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local {
        return TlsProtection::Local;
    }
    match connect.get_ssl_mode() {
        PgSslMode::VerifyCa | PgSslMode::VerifyFull => TlsProtection::Verified,
        PgSslMode::Require | PgSslMode::Prefer => TlsProtection::Unverified,
        PgSslMode::Disable | PgSslMode::Allow => TlsProtection::None,
    }
}

fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
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

    /// The test server's URL with these query parameters, and its CA file; `None` when no
    /// test server is configured (the case is skipped, or fails under FRANCIS_REQUIRE_POSTGRES).
    fn tls_url(case: &str, params: &[(&str, &str)]) -> Option<(String, String)> {
        let url = crate::store::conformance::postgres_url(case)?;
        let ca = std::env::var("FRANCIS_TEST_POSTGRES_CA")
            .ok()
            .filter(|ca| !ca.is_empty())
            .expect("FRANCIS_TEST_POSTGRES_CA (the test server's CA file): start the server with `source tests/postgres.sh start`");
        let mut url = url;
        for (name, value) in params {
            let separator = if url.contains('?') { '&' } else { '?' };
            url = format!("{url}{separator}{name}={}", value.replace("{ca}", &ca));
        }
        Some((url, ca))
    }

    fn options() -> StoreOptions {
        StoreOptions {
            clock: std::sync::Arc::new(crate::clock::SystemClock),
            health_check_deadline: std::time::Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn the_store_talks_to_postgres_over_verified_tls() {
        let params = [("sslmode", "verify-full"), ("sslrootcert", "{ca}")];
        let Some((url, _)) = tls_url("the_store_talks_to_postgres_over_verified_tls", &params)
        else {
            return;
        };
        let store = PostgresStore::connect(&url, options()).await.unwrap();
        let encrypted: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert!(encrypted, "the store's connection is not encrypted");
        store.close().await;
    }

    #[tokio::test]
    async fn a_database_server_the_ca_file_does_not_vouch_for_is_refused() {
        // A man in the middle (or a misconfiguration) presents a certificate of another CA.
        let dir = tempfile::tempdir().unwrap();
        let other_ca = dir.path().join("other-ca.pem");
        let other = crate::net::pki::ClusterCa::from_psks(&["another CA entirely, 32+ bytes long"])
            .unwrap();
        std::fs::write(&other_ca, other.ca_pem()).unwrap();
        let other_ca = other_ca.display().to_string();
        let params = [
            ("sslmode", "verify-full"),
            ("sslrootcert", other_ca.as_str()),
        ];
        let Some((url, _)) = tls_url(
            "a_database_server_the_ca_file_does_not_vouch_for_is_refused",
            &params,
        ) else {
            return;
        };
        let err = PostgresStore::connect(&url, options())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("sslmode=verify-full"), "{err}");
        assert!(
            err.contains("cannot connect to PostgreSQL at 127.0.0.1"),
            "{err}"
        );
    }

    #[test]
    fn a_remote_database_without_verified_tls_is_told_apart() {
        let protection = |url: &str| tls_protection(&url.parse().unwrap());
        assert_eq!(
            protection("postgres://u@127.0.0.1/db"),
            TlsProtection::Local
        );
        assert_eq!(
            protection("postgres://u@localhost/db?sslmode=disable"),
            TlsProtection::Local
        );
        assert_eq!(
            protection("postgres://u@[::1]:5432/db"),
            TlsProtection::Local
        );
        assert_eq!(
            protection("postgres://u@db.internal/db?sslmode=disable"),
            TlsProtection::None
        );
        assert_eq!(
            protection("postgres://u@10.0.0.5/db?sslmode=prefer"),
            TlsProtection::Unverified
        );
        assert_eq!(
            protection("postgres://u@10.0.0.5/db?sslmode=require"),
            TlsProtection::Unverified
        );
        assert_eq!(
            protection("postgres://u@db.internal/db?sslmode=verify-full&sslrootcert=/ca.pem"),
            TlsProtection::Verified
        );
    }
}
