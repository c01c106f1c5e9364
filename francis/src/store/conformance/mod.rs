//! The store conformance suite: every [`Store`] implementation must pass these cases, which are
//! written once against the trait and instantiated per store (`conformance::memory::*`,
//! `conformance::sqlite::*`, `conformance::postgres::*`, and the runtime link on each SQL store,
//! `conformance::link_sqlite::*` and `conformance::link_postgres::*`, see [`link`]). Time is
//! driven by a [`ManualClock`].
//!
//! The PostgreSQL cases need a server: `source tests/postgres.sh start` exports
//! `FRANCIS_TEST_POSTGRES_URL`, and each case then runs in a fresh schema of that database.
//! Without the variable they are skipped (saying so on stderr), unless
//! `FRANCIS_REQUIRE_POSTGRES=1` (set by `tests/check.sh`) makes the skip a failure.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

mod jobs;
mod link;

use jobs::{
    jobs_cancel_delete_and_purge_touch_jobs_only, jobs_dead_letters_keep_the_job_and_retry_it_once,
    jobs_keys_win_first_and_never_meet_a_plain_alarm,
    jobs_of_one_key_and_time_keep_a_dead_letter_each, jobs_report_running_retries_and_success,
};
use link::{link_postgres_harness, link_sqlite_harness};

use super::memory::MemoryStore;
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::*;
use crate::clock::{Clock, ManualClock};
use crate::model::operations::MAX_RECORDED_ERROR_BYTES;

const DEADLINE: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_secs(60);
const LEASE: Duration = Duration::from_secs(10);

/// A store under test, its clock, and (for SQLite) the directory holding its file or (for
/// PostgreSQL) the schema holding its tables.
struct Harness {
    /// The store under test.
    store: Arc<dyn Store>,
    /// The store that keeps the data: `store` itself, or the runtime's store behind a link.
    /// Cases set some preconditions up through it (e.g. placing an actor on a chosen host).
    direct: Arc<dyn Store>,
    clock: ManualClock,
    /// Stopped before the store's file or schema goes.
    _runtime: Option<link::LinkRuntime>,
    _dir: Option<TempDir>,
    _schema: Option<PgTestSchema>,
}

impl Harness {
    fn new(store: Arc<dyn Store>, clock: ManualClock) -> Self {
        Harness {
            direct: store.clone(),
            store,
            clock,
            _dir: None,
            _schema: None,
            _runtime: None,
        }
    }
}

fn options(clock: &ManualClock) -> StoreOptions {
    StoreOptions {
        clock: Arc::new(clock.clone()),
        health_check_deadline: DEADLINE,
    }
}

async fn memory_harness() -> Harness {
    let clock = ManualClock::new(1_700_000_000_000);
    Harness::new(Arc::new(MemoryStore::new(options(&clock))), clock)
}

async fn sqlite_harness() -> Harness {
    let clock = ManualClock::new(1_700_000_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("francis.db"), options(&clock))
        .await
        .unwrap();
    Harness {
        _dir: Some(dir),
        ..Harness::new(Arc::new(store), clock)
    }
}

/// The test server's URL, or `None` (after saying so on stderr) to skip `case`. Panics if
/// `FRANCIS_REQUIRE_POSTGRES` is set but the URL is not, so a full check cannot skip silently.
pub(super) fn postgres_url(case: &str) -> Option<String> {
    use std::io::Write as _;

    match std::env::var("FRANCIS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let required =
                std::env::var("FRANCIS_REQUIRE_POSTGRES").is_ok_and(|v| !v.is_empty() && v != "0");
            assert!(
                !required,
                "FRANCIS_REQUIRE_POSTGRES is set but FRANCIS_TEST_POSTGRES_URL is not: start a \
                 server with `source tests/postgres.sh start` (PostgreSQL case {case})"
            );
            // Straight to stderr, past libtest's output capture, so a plain `cargo test` shows it
            // (one write, so it does not interleave with libtest's progress output).
            let line = format!(
                "skipping PostgreSQL conformance case {case}: set FRANCIS_TEST_POSTGRES_URL \
                 (source tests/postgres.sh start) to run it\n"
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// A schema of its own for one test, so tests can share one server in parallel; dropped (with
/// everything in it) when the harness is.
struct PgTestSchema {
    url: String,
    name: String,
}

impl PgTestSchema {
    async fn create(url: &str) -> Self {
        use sqlx::Connection as _;

        let name = format!("francis_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to FRANCIS_TEST_POSTGRES_URL {url}: {e}"));
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        PgTestSchema {
            url: url.to_owned(),
            name,
        }
    }

    /// A pool whose connections use only this schema.
    async fn pool(&self, max_connections: u32) -> sqlx::PgPool {
        let connect: sqlx::postgres::PgConnectOptions = self.url.parse().unwrap();
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(connect.options([("search_path", self.name.as_str())]))
            .await
            .unwrap()
    }
}

impl Drop for PgTestSchema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, so do the async work on a thread of its own.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                use sqlx::Connection as _;
                let mut conn = tokio::time::timeout(
                    Duration::from_secs(10),
                    sqlx::PgConnection::connect(&url),
                )
                .await
                .map_err(std::io::Error::other)?
                .map_err(std::io::Error::other)?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .execute(&mut conn)
                    .await
                    .map_err(std::io::Error::other)?;
                conn.close().await.map_err(std::io::Error::other)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}

/// A PostgreSQL store in a fresh schema, or `None` to skip `case` (see [`postgres_url`]).
async fn postgres_harness(case: &str) -> Option<Harness> {
    let url = postgres_url(case)?;
    let clock = ManualClock::new(1_700_000_000_000);
    let schema = PgTestSchema::create(&url).await;
    let pool = schema.pool(super::postgres::DEFAULT_MAX_CONNECTIONS).await;
    let store = PostgresStore::from_pool(pool, options(&clock))
        .await
        .unwrap();
    Some(Harness {
        _schema: Some(schema),
        ..Harness::new(Arc::new(store), clock)
    })
}

fn registration(address: &str, types: &[(&str, u32)]) -> HostRegistration {
    HostRegistration {
        address: address.to_owned(),
        actor_types: types
            .iter()
            .map(|&(actor_type, concurrency_limit)| ActorTypeRegistration {
                actor_type: actor_type.to_owned(),
                idle_timeout: Some(IDLE),
                concurrency_limit,
            })
            .collect(),
        version: "1.2.3-test".to_owned(),
        max_hosts: 0,
    }
}

fn key(actor_type: &str, actor_id: &str) -> ActorKey {
    ActorKey::new(actor_type, actor_id)
}

fn fetch(hosts: &[&HostId], horizon_ms: i64, batch_size: u32) -> FetchAlarms {
    FetchAlarms {
        hosts: hosts.iter().map(|h| (*h).clone()).collect(),
        horizon_ms,
        lease_duration: LEASE,
        batch_size,
    }
}

impl Harness {
    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn advance_ms(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    /// Register a host serving `types` as `(actor type, concurrency limit)`.
    async fn host(&self, address: &str, types: &[(&str, u32)]) -> HostId {
        self.store
            .register_host(&registration(address, types))
            .await
            .unwrap()
    }

    async fn lookup(&self, key: &ActorKey) -> Result<Placement, StoreError> {
        self.store
            .lookup_actor(key, &LookupOptions::default())
            .await
    }

    /// Look an actor up allowing only these hosts, on the store that keeps the data (the
    /// runtime protocol never carries `allowed_hosts`).
    async fn lookup_on(
        &self,
        key: &ActorKey,
        allowed: &[&HostId],
    ) -> Result<Placement, StoreError> {
        let options = LookupOptions {
            active_only: false,
            allowed_hosts: Some(allowed.iter().map(|h| (*h).clone()).collect()),
            ..LookupOptions::default()
        };
        self.direct.lookup_actor(key, &options).await
    }

    /// The host an actor is active on, without allocating.
    async fn active_host(&self, key: &ActorKey) -> Option<HostId> {
        let options = LookupOptions {
            active_only: true,
            ..LookupOptions::default()
        };
        match self.store.lookup_actor(key, &options).await {
            Ok(p) => Some(p.host_id),
            Err(StoreError::NotActive { .. }) => None,
            Err(e) => panic!("active-only lookup failed: {e}"),
        }
    }

    /// Set a one-shot alarm due at `due_ms`.
    async fn alarm(&self, key: &ActorKey, name: &str, due_ms: i64) {
        self.store
            .set_alarm(key, name, &AlarmRecord::new("ring", due_ms))
            .await
            .unwrap();
    }

    async fn fetch(&self, hosts: &[&HostId], batch_size: u32) -> Vec<AlarmLease> {
        self.store
            .fetch_and_lease_alarms(&fetch(hosts, self.now(), batch_size))
            .await
            .unwrap()
    }

    async fn is_valid(&self, lease: &AlarmLease) -> bool {
        self.store.get_leased_alarm(lease).await.unwrap().is_some()
    }
}

// ---- hosts -------------------------------------------------------------------------------------

async fn host_register_lists_healthy_hosts(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    h.advance_ms(5);
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    assert_ne!(a, b);
    let hosts = h.store.list_hosts().await.unwrap();
    let listed: HashMap<_, _> = hosts
        .iter()
        .map(|i| (i.host_id.clone(), (i.address.as_str(), i.last_heartbeat_ms)))
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[&a], ("127.0.0.1:7000", h.now() - 5));
    assert_eq!(listed[&b], ("127.0.0.2:7000", h.now()));
}

async fn host_duplicate_address_rejected_until_expired(h: Harness) {
    let first = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let dup = h
        .store
        .register_host(&registration("127.0.0.1:7000", &[]))
        .await;
    assert!(
        matches!(dup, Err(StoreError::HostAlreadyRegistered { address }) if address == "127.0.0.1:7000")
    );

    // Once the first registration's heartbeat expired, the address is free again.
    h.advance_ms(DEADLINE.as_millis() as u64 + 1);
    let second = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    assert_ne!(first, second);
    let hosts = h.store.list_hosts().await.unwrap();
    assert_eq!(
        hosts.iter().map(|i| &i.host_id).collect::<Vec<_>>(),
        vec![&second]
    );
}

async fn reattach_refreshes_a_healthy_host_and_reregisters_an_expired_one(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    h.lookup(&k).await.unwrap();
    h.advance_ms(10_000);
    // Healthy: refreshed in place (new address and types), placements kept.
    let moved = registration("127.0.0.1:7001", &[("counter", 0), ("other", 0)]);
    assert!(h.store.reattach_host(&a, &moved).await.unwrap());
    let hosts = h.store.list_hosts().await.unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].host_id, a);
    assert_eq!(hosts[0].address, "127.0.0.1:7001");
    assert_eq!(hosts[0].last_heartbeat_ms, h.now());
    assert_eq!(h.active_host(&k).await, Some(a.clone()));
    assert_eq!(h.lookup(&key("other", "x")).await.unwrap().host_id, a);

    // Another healthy host's address is refused.
    let b = h.host("127.0.0.1:7002", &[("counter", 0)]).await;
    let taken = h
        .store
        .reattach_host(&a, &registration("127.0.0.1:7002", &[]))
        .await;
    assert!(matches!(
        taken,
        Err(StoreError::HostAlreadyRegistered { .. })
    ));

    // Expired: registered anew under the same ID, without its old placements.
    h.advance_ms(DEADLINE.as_millis() as u64 + 1);
    h.store.heartbeat(&b).await.unwrap_err();
    assert!(!h.store.reattach_host(&a, &moved).await.unwrap());
    assert_eq!(h.store.list_hosts().await.unwrap().len(), 1);
    assert_eq!(h.active_host(&k).await, None);
    h.store.heartbeat(&a).await.unwrap();

    // An ID never seen before is simply registered.
    assert!(
        !h.store
            .reattach_host(
                "fresh-id",
                &registration("127.0.0.1:7003", &[("counter", 0)])
            )
            .await
            .unwrap()
    );
    h.store.heartbeat("fresh-id").await.unwrap();
}

async fn heartbeat_keeps_host_alive_and_expired_host_cannot_revive(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    h.advance_ms(20_000);
    h.store.heartbeat(&a).await.unwrap();
    h.advance_ms(20_000);
    // 40s after registering, but only 20s after the heartbeat: still healthy.
    assert_eq!(h.store.list_hosts().await.unwrap().len(), 1);
    h.store.heartbeat(&a).await.unwrap();

    h.advance_ms(DEADLINE.as_millis() as u64 + 1);
    assert!(h.store.list_hosts().await.unwrap().is_empty());
    assert!(
        matches!(h.store.heartbeat(&a).await, Err(StoreError::HostUnregistered { host_id }) if host_id == a)
    );
    assert!(matches!(
        h.store.heartbeat("no-such-host").await,
        Err(StoreError::HostUnregistered { .. })
    ));
}

async fn unregister_host_removes_host_and_placements(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    h.lookup(&k).await.unwrap();
    h.store.unregister_host(&a).await.unwrap();
    assert!(h.store.list_hosts().await.unwrap().is_empty());
    assert_eq!(h.active_host(&k).await, None);
    assert!(matches!(
        h.store.unregister_host(&a).await,
        Err(StoreError::HostUnregistered { .. })
    ));

    // An expired host is reported as unregistered, and is deleted anyway.
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    h.advance_ms(DEADLINE.as_millis() as u64 + 1);
    assert!(matches!(
        h.store.unregister_host(&b).await,
        Err(StoreError::HostUnregistered { .. })
    ));
    assert_eq!(h.store.cleanup().await.unwrap().hosts, 0);
}

// ---- cluster observation -----------------------------------------------------------------------

async fn observe_an_empty_store(h: Harness) {
    let observed = h.store.observe_cluster().await.unwrap();
    assert_eq!(
        observed,
        ClusterObservation {
            observed_at_ms: h.now(),
            health_check_deadline_ms: DEADLINE.as_millis() as u64,
            ..ClusterObservation::default()
        }
    );
}

async fn observe_reports_hosts_types_versions_and_placements(h: Harness) {
    let a = h
        .host("127.0.0.1:7000", &[("counter", 0), ("timer", 5)])
        .await;
    h.advance_ms(7);
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    // A host that did not say its version.
    let quiet = h
        .direct
        .register_host(&HostRegistration {
            address: "127.0.0.3:7000".into(),
            ..HostRegistration::default()
        })
        .await
        .unwrap();
    for id in ["1", "2", "3"] {
        h.lookup_on(&key("counter", id), &[&a]).await.unwrap();
    }
    h.lookup_on(&key("timer", "t"), &[&a]).await.unwrap();
    h.lookup_on(&key("counter", "4"), &[&b]).await.unwrap();

    let observed = h.store.observe_cluster().await.unwrap();
    assert_eq!(observed.observed_at_ms, h.now());
    let hosts: HashMap<_, _> = observed
        .hosts
        .iter()
        .map(|host| (host.host_id.clone(), host))
        .collect();
    assert_eq!(hosts.len(), 3, "{:?}", observed.hosts);
    let ids: Vec<_> = observed.hosts.iter().map(|h| h.host_id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "hosts are ordered by ID");

    let host_a = hosts[&a];
    assert_eq!(host_a.address, "127.0.0.1:7000");
    assert_eq!(host_a.version.as_deref(), Some("1.2.3-test"));
    assert_eq!(host_a.last_heartbeat_ms, h.now() - 7);
    assert!(host_a.healthy);
    assert_eq!(
        host_a.actor_types,
        registration("", &[("counter", 0), ("timer", 5)]).actor_types
    );
    assert_eq!(hosts[&b].actor_types.len(), 1);
    assert_eq!(hosts[&b].version.as_deref(), Some("1.2.3-test"));
    assert!(hosts[&quiet].version.is_none());
    assert!(hosts[&quiet].actor_types.is_empty());

    let count = |host: &HostId, actor_type: &str, actors: u64| PlacementCount {
        host_id: host.clone(),
        actor_type: actor_type.to_owned(),
        actors,
    };
    let mut expected = vec![
        count(&a, "counter", 3),
        count(&a, "timer", 1),
        count(&b, "counter", 1),
    ];
    expected.sort_by(|x, y| (&x.host_id, &x.actor_type).cmp(&(&y.host_id, &y.actor_type)));
    assert_eq!(observed.placements, expected);
    assert!(observed.due_alarms.is_empty());
}

async fn observe_reports_an_expired_host_as_unhealthy_until_cleanup(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    h.lookup_on(&key("counter", "1"), &[&a]).await.unwrap();
    h.advance_ms(DEADLINE.as_millis() as u64 / 2);
    h.store.heartbeat(&b).await.unwrap();
    h.advance_ms(DEADLINE.as_millis() as u64 / 2 + 1);

    let observed = h.store.observe_cluster().await.unwrap();
    let health: HashMap<_, _> = observed
        .hosts
        .iter()
        .map(|host| (host.host_id.clone(), host.healthy))
        .collect();
    assert_eq!(
        health,
        HashMap::from([(a.clone(), false), (b.clone(), true)])
    );
    assert_eq!(
        observed.placements,
        vec![PlacementCount {
            host_id: a.clone(),
            actor_type: "counter".into(),
            actors: 1,
        }],
        "an expired host's placements stay until it is pruned"
    );
    // Observing changed nothing.
    assert_eq!(h.store.observe_cluster().await.unwrap(), observed);

    h.store.cleanup().await.unwrap();
    let observed = h.store.observe_cluster().await.unwrap();
    assert_eq!(
        observed
            .hosts
            .iter()
            .map(|host| &host.host_id)
            .collect::<Vec<_>>(),
        vec![&b]
    );
    assert!(observed.placements.is_empty());
}

async fn observe_counts_due_alarms_per_placement_host(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    let on_a = key("counter", "on-a");
    let on_b = key("counter", "on-b");
    h.lookup_on(&on_a, &[&a]).await.unwrap();
    h.lookup_on(&on_b, &[&b]).await.unwrap();
    let now = h.now();
    h.alarm(&on_a, "past", now - 1_000).await;
    h.alarm(&on_a, "exactly-now", now).await;
    h.alarm(&on_a, "later", now + 1).await;
    h.alarm(&on_b, "later", now + 5_000).await;
    h.alarm(&key("counter", "unplaced"), "past", now - 1).await;
    h.alarm(&key("counter", "unplaced"), "later", now + 1).await;
    h.alarm(&key("counter", "unplaced-2"), "past", now - 2)
        .await;

    let due = |observed: &ClusterObservation| {
        observed
            .due_alarms
            .iter()
            .map(|d| (d.host_id.clone(), d.alarms))
            .collect::<Vec<_>>()
    };
    let observed = h.store.observe_cluster().await.unwrap();
    assert_eq!(due(&observed), vec![(None, 2), (Some(a.clone()), 2)]);

    // A millisecond later the next ones are due. The fetch places the unplaced actors on `a`,
    // and a leased alarm still counts as due.
    h.advance_ms(1);
    assert_eq!(h.fetch(&[&a], 10).await.len(), 6);
    let observed = h.store.observe_cluster().await.unwrap();
    assert_eq!(due(&observed), vec![(Some(a.clone()), 6)]);
}

// ---- cluster admission -------------------------------------------------------------------------

/// A registration at `address` under cluster admission with `max_hosts`.
fn admitted(address: &str, max_hosts: u32) -> HostRegistration {
    HostRegistration {
        max_hosts,
        ..registration(address, &[("counter", 0)])
    }
}

async fn admission_refuses_a_host_beyond_max_hosts(h: Harness) {
    assert_eq!(h.store.observe_cluster().await.unwrap().max_hosts, None);
    h.store
        .register_host(&admitted("127.0.0.1:7000", 2))
        .await
        .unwrap();
    h.store
        .register_host(&admitted("127.0.0.2:7000", 2))
        .await
        .unwrap();
    let third = h.store.register_host(&admitted("127.0.0.3:7000", 2)).await;
    assert!(
        matches!(third, Err(StoreError::ClusterFull { max_hosts: 2 })),
        "{third:?}"
    );
    // The refused host left no trace.
    let observed = h.store.observe_cluster().await.unwrap();
    assert_eq!(observed.hosts.len(), 2);
    assert_eq!(observed.max_hosts, Some(2));
}

async fn admission_frees_a_place_when_a_host_leaves_or_expires(h: Harness) {
    let a = h
        .store
        .register_host(&admitted("127.0.0.1:7000", 2))
        .await
        .unwrap();
    let b = h
        .store
        .register_host(&admitted("127.0.0.2:7000", 2))
        .await
        .unwrap();
    // A live reattach keeps its place rather than taking another.
    assert!(
        h.store
            .reattach_host(&a, &admitted("127.0.0.1:7000", 2))
            .await
            .unwrap()
    );
    // Unregistering frees a place.
    h.store.unregister_host(&a).await.unwrap();
    let c = h
        .store
        .register_host(&admitted("127.0.0.3:7000", 2))
        .await
        .unwrap();
    assert!(matches!(
        h.store.register_host(&admitted("127.0.0.4:7000", 2)).await,
        Err(StoreError::ClusterFull { .. })
    ));
    // So does expiring: `b` stops heartbeating, `c` does not.
    h.advance_ms(DEADLINE.as_millis() as u64 / 2);
    h.store.heartbeat(&c).await.unwrap();
    h.advance_ms(DEADLINE.as_millis() as u64 / 2 + 1);
    // An expired host reattaching registers anew, so it needs a place too: it takes the one
    // its own expiry freed.
    assert!(
        !h.store
            .reattach_host(&b, &admitted("127.0.0.2:7000", 2))
            .await
            .unwrap()
    );
    assert!(matches!(
        h.store.register_host(&admitted("127.0.0.4:7000", 2)).await,
        Err(StoreError::ClusterFull { .. })
    ));
    h.store.unregister_host(&b).await.unwrap();
    h.store
        .register_host(&admitted("127.0.0.4:7000", 2))
        .await
        .unwrap();
}

async fn admission_rejects_another_max_hosts_until_the_cluster_is_empty(h: Harness) {
    let a = h
        .store
        .register_host(&admitted("127.0.0.1:7000", 3))
        .await
        .unwrap();
    for other in [5, 0] {
        let refused = h
            .store
            .register_host(&admitted("127.0.0.2:7000", other))
            .await;
        assert!(
            matches!(
                refused,
                Err(StoreError::MaxHostsMismatch { stored: 3, configured }) if configured == other
            ),
            "{refused:?}"
        );
    }
    // A live host reattaching with another value is not admitted anew, so not refused.
    assert!(
        h.store
            .reattach_host(&a, &admitted("127.0.0.1:7000", 5))
            .await
            .unwrap()
    );
    assert_eq!(h.store.observe_cluster().await.unwrap().max_hosts, Some(3));

    // Once no host is healthy (expired, not even pruned yet), the next one sets the value.
    h.advance_ms(DEADLINE.as_millis() as u64 + 1);
    let b = h
        .store
        .register_host(&admitted("127.0.0.2:7000", 5))
        .await
        .unwrap();
    assert_eq!(h.store.observe_cluster().await.unwrap().max_hosts, Some(5));
    assert!(matches!(
        h.store.register_host(&admitted("127.0.0.3:7000", 3)).await,
        Err(StoreError::MaxHostsMismatch {
            stored: 5,
            configured: 3
        })
    ));
    // And after the last host unregistered; 0 (unlimited) is a value like any other.
    h.store.unregister_host(&b).await.unwrap();
    for i in 0..5 {
        h.store
            .register_host(&admitted(&format!("127.0.1.{i}:7000"), 0))
            .await
            .unwrap();
    }
    assert_eq!(h.store.observe_cluster().await.unwrap().max_hosts, Some(0));
}

async fn admission_admits_exactly_max_hosts_of_concurrent_registrations(h: Harness) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = h.store.clone();
            tokio::spawn(async move {
                store
                    .register_host(&admitted(&format!("127.0.0.{i}:7000"), 3))
                    .await
            })
        })
        .collect();
    let (mut admitted_hosts, mut full) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => admitted_hosts += 1,
            Err(StoreError::ClusterFull { max_hosts: 3 }) => full += 1,
            Err(e) => panic!("unexpected refusal: {e}"),
        }
    }
    assert_eq!((admitted_hosts, full), (3, 5));
    assert_eq!(h.store.list_hosts().await.unwrap().len(), 3);
}

// ---- placement ---------------------------------------------------------------------------------

async fn lookup_allocates_then_returns_existing(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    assert_eq!(h.active_host(&k).await, None);
    let placed = h.lookup(&k).await.unwrap();
    assert_eq!(
        placed,
        Placement {
            host_id: a.clone(),
            address: "127.0.0.1:7000".into(),
            idle_timeout: Some(IDLE)
        }
    );

    // Another host joining does not move the actor.
    h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    for _ in 0..10 {
        assert_eq!(h.lookup(&k).await.unwrap(), placed);
    }
    assert_eq!(h.active_host(&k).await, Some(a));
}

async fn lookup_active_only_does_not_allocate(h: Harness) {
    h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    let options = LookupOptions {
        active_only: true,
        ..LookupOptions::default()
    };
    assert!(
        matches!(h.store.lookup_actor(&k, &options).await, Err(StoreError::NotActive { key }) if key == k)
    );
    assert!(matches!(
        h.store.lookup_actor(&k, &options).await,
        Err(StoreError::NotActive { .. })
    ));
}

async fn lookup_unsupported_type_is_no_host(h: Harness) {
    h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let err = h.lookup(&key("greeter", "1")).await;
    assert!(matches!(err, Err(StoreError::NoHost { actor_type }) if actor_type == "greeter"));
}

async fn lookup_respects_allowed_hosts(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    for i in 0..20 {
        let placed = h
            .lookup_on(&key("counter", &i.to_string()), &[&b])
            .await
            .unwrap();
        assert_eq!(placed.host_id, b);
    }
    // An existing placement outside the allowed hosts is not reported as usable.
    assert!(matches!(
        h.lookup_on(&key("counter", "0"), &[&a]).await,
        Err(StoreError::NoHost { .. })
    ));
    assert!(matches!(
        h.lookup_on(&key("counter", "new"), &[]).await,
        Err(StoreError::NoHost { .. })
    ));
    assert_eq!(h.active_host(&key("counter", "0")).await, Some(b));
}

async fn lookup_never_places_on_avoided_hosts(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    let avoiding_a = LookupOptions {
        avoid_hosts: vec![a.clone()],
        ..LookupOptions::default()
    };
    for i in 0..20 {
        let placed = h
            .store
            .lookup_actor(&key("counter", &i.to_string()), &avoiding_a)
            .await
            .unwrap();
        assert_eq!(placed.host_id, b, "a new placement avoids the host");
    }
    // An existing placement on an avoided host is still reported (its calls may recover).
    let on_a = h.lookup_on(&key("counter", "on-a"), &[&a]).await.unwrap();
    assert_eq!(on_a.host_id, a);
    let again = h
        .store
        .lookup_actor(&key("counter", "on-a"), &avoiding_a)
        .await
        .unwrap();
    assert_eq!(again.host_id, a);
    // Avoiding every host leaves nowhere to go.
    let avoiding_all = LookupOptions {
        avoid_hosts: vec![a, b],
        ..LookupOptions::default()
    };
    assert!(matches!(
        h.store
            .lookup_actor(&key("counter", "new"), &avoiding_all)
            .await,
        Err(StoreError::NoHost { .. })
    ));
}

async fn cluster_identity_is_recorded_on_first_use_and_follows_a_rotation(h: Harness) {
    let set = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let claim = |fingerprints: Vec<String>| {
        let store = h.store.clone();
        async move { store.claim_cluster_identity(&fingerprints).await.unwrap() }
    };
    assert_eq!(claim(set(&["OLD"])).await, ClusterIdentity::Recorded);
    assert_eq!(claim(set(&["OLD"])).await, ClusterIdentity::Matched);
    // Another cluster's key is refused, and does not change the record.
    assert_eq!(
        claim(set(&["OTHER"])).await,
        ClusterIdentity::Mismatch {
            recorded: set(&["OLD"])
        }
    );
    // A rotation: the new key is added, then signs, then the old one goes.
    assert_eq!(claim(set(&["OLD", "NEW"])).await, ClusterIdentity::Matched);
    assert_eq!(claim(set(&["NEW", "OLD"])).await, ClusterIdentity::Matched);
    assert_eq!(claim(set(&["NEW"])).await, ClusterIdentity::Matched);
    // Once the cluster moved on, the retired key alone no longer matches.
    assert_eq!(
        claim(set(&["OLD"])).await,
        ClusterIdentity::Mismatch {
            recorded: set(&["NEW"])
        }
    );
    assert!(matches!(
        h.store.claim_cluster_identity(&[]).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn lookup_replaces_placement_on_unhealthy_host(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    assert_eq!(h.lookup(&k).await.unwrap().host_id, a);
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    h.advance_ms(20_000);
    h.store.heartbeat(&b).await.unwrap();
    h.advance_ms(20_000);
    // a is now dead, b is alive: the stale placement is neither active nor kept.
    assert_eq!(h.active_host(&k).await, None);
    let placed = h.lookup(&k).await.unwrap();
    assert_eq!(placed.host_id, b);
    assert_eq!(placed.address, "127.0.0.2:7000");
    assert_eq!(h.active_host(&k).await, Some(b));
}

async fn capacity_limit_gives_no_host_until_freed(h: Harness) {
    let a = h
        .host("127.0.0.1:7000", &[("counter", 2), ("greeter", 0)])
        .await;
    h.lookup(&key("counter", "1")).await.unwrap();
    h.lookup(&key("counter", "2")).await.unwrap();
    assert!(matches!(
        h.lookup(&key("counter", "3")).await,
        Err(StoreError::NoHost { .. })
    ));
    // The limit is per type: other types still fit, and existing actors are still found.
    h.lookup(&key("greeter", "1")).await.unwrap();
    assert_eq!(h.lookup(&key("counter", "1")).await.unwrap().host_id, a);

    assert!(
        h.store
            .remove_actor(&key("counter", "1"), &a)
            .await
            .unwrap()
    );
    assert_eq!(h.lookup(&key("counter", "3")).await.unwrap().host_id, a);
    assert!(matches!(
        h.lookup(&key("counter", "1")).await,
        Err(StoreError::NoHost { .. })
    ));
}

async fn remove_actor_is_host_scoped(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    assert_eq!(h.lookup(&k).await.unwrap().host_id, a);
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    assert!(!h.store.remove_actor(&k, &b).await.unwrap());
    assert_eq!(h.active_host(&k).await, Some(a.clone()));
    assert!(h.store.remove_actor(&k, &a).await.unwrap());
    assert_eq!(h.active_host(&k).await, None);
    assert!(!h.store.remove_actor(&k, &a).await.unwrap());
}

async fn concurrent_lookups_are_single_activation(h: Harness) {
    let mut hosts = Vec::new();
    for i in 0..20 {
        hosts.push(
            h.host(&format!("127.0.0.{i}:7000"), &[("counter", 0)])
                .await,
        );
    }
    let k = key("counter", "hot");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = Arc::clone(&h.store);
            let k = k.clone();
            tokio::spawn(async move { store.lookup_actor(&k, &LookupOptions::default()).await })
        })
        .collect();
    let mut owners = HashSet::new();
    for task in tasks {
        owners.insert(task.await.unwrap().unwrap().host_id);
    }
    assert_eq!(
        owners.len(),
        1,
        "one actor was placed on several hosts: {owners:?}"
    );
    assert!(hosts.contains(owners.iter().next().unwrap()));
}

// ---- state -------------------------------------------------------------------------------------

async fn state_set_get_delete(h: Harness) {
    let k = key("counter", "1");
    assert_eq!(h.store.get_state(&k).await.unwrap(), None);
    h.store.set_state(&k, b"one", None).await.unwrap();
    h.store
        .set_state(&key("counter", "2"), b"other", None)
        .await
        .unwrap();
    assert_eq!(
        h.store.get_state(&k).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    h.store.set_state(&k, b"two", None).await.unwrap();
    assert_eq!(
        h.store.get_state(&k).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert!(h.store.delete_state(&k).await.unwrap());
    assert_eq!(h.store.get_state(&k).await.unwrap(), None);
    assert!(!h.store.delete_state(&k).await.unwrap());
    assert_eq!(
        h.store
            .get_state(&key("counter", "2"))
            .await
            .unwrap()
            .as_deref(),
        Some(&b"other"[..])
    );
}

async fn state_ttl_hides_expired_and_overwrite_clears_it(h: Harness) {
    let k = key("counter", "1");
    h.store
        .set_state(&k, b"short", Some(Duration::from_secs(5)))
        .await
        .unwrap();
    h.advance_ms(4_999);
    assert!(h.store.get_state(&k).await.unwrap().is_some());
    h.advance_ms(1);
    assert_eq!(h.store.get_state(&k).await.unwrap(), None);
    assert!(
        !h.store.delete_state(&k).await.unwrap(),
        "expired state counts as absent"
    );

    h.store
        .set_state(&k, b"ttl", Some(Duration::from_secs(5)))
        .await
        .unwrap();
    h.store.set_state(&k, b"forever", None).await.unwrap();
    h.advance_ms(3_600_000);
    assert_eq!(
        h.store.get_state(&k).await.unwrap().as_deref(),
        Some(&b"forever"[..])
    );
}

async fn list_states_pages_live_states_in_id_order(h: Harness) {
    for i in (0..25).rev() {
        h.store
            .set_state(&key("counter", &format!("c{i:02}")), &[i as u8], None)
            .await
            .unwrap();
    }
    h.store
        .set_state(
            &key("counter", "c05"),
            b"gone",
            Some(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    h.store
        .set_state(&key("greeter", "c00"), b"other type", None)
        .await
        .unwrap();
    h.advance_ms(1_000);

    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let options = ListStatesOptions {
            include_data: false,
            after: after.clone(),
            limit: 10,
        };
        let page = h.store.list_states("counter", &options).await.unwrap();
        assert!(page.entries.len() <= 10);
        assert!(page.entries.iter().all(|e| e.data.is_none()));
        ids.extend(page.entries.iter().map(|e| e.actor_id.clone()));
        if !page.has_more {
            break;
        }
        after = page.entries.last().map(|e| e.actor_id.clone());
    }
    let expected: Vec<String> = (0..25)
        .filter(|&i| i != 5)
        .map(|i| format!("c{i:02}"))
        .collect();
    assert_eq!(ids, expected);

    let options = ListStatesOptions {
        include_data: true,
        after: Some("c22".into()),
        limit: 10,
    };
    let page = h.store.list_states("counter", &options).await.unwrap();
    assert!(!page.has_more);
    assert_eq!(
        page.entries,
        vec![
            StateEntry {
                actor_id: "c23".into(),
                data: Some(vec![23])
            },
            StateEntry {
                actor_id: "c24".into(),
                data: Some(vec![24])
            },
        ]
    );
    // Exactly a full last page has nothing more.
    let options = ListStatesOptions {
        include_data: false,
        after: Some("c21".into()),
        limit: 3,
    };
    assert!(
        !h.store
            .list_states("counter", &options)
            .await
            .unwrap()
            .has_more
    );
}

async fn list_states_limit_defaults_and_cap(h: Harness) {
    for i in 0..1_005 {
        h.store
            .set_state(&key("counter", &format!("{i:04}")), b"x", None)
            .await
            .unwrap();
    }
    let page = |limit| ListStatesOptions {
        include_data: false,
        after: None,
        limit,
    };
    let default = h.store.list_states("counter", &page(0)).await.unwrap();
    assert_eq!(default.entries.len(), 100);
    assert!(default.has_more);
    let capped = h.store.list_states("counter", &page(5_000)).await.unwrap();
    assert_eq!(capped.entries.len(), 1_000);
    assert!(capped.has_more);
    assert_eq!(capped.entries.last().unwrap().actor_id, "0999");
}

async fn cleanup_removes_expired_hosts_and_state(h: Harness) {
    let old = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    h.lookup(&key("counter", "1")).await.unwrap();
    h.store
        .set_state(&key("counter", "1"), b"ttl", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    h.store
        .set_state(&key("counter", "2"), b"keep", None)
        .await
        .unwrap();
    h.advance_ms(DEADLINE.as_millis() as u64 + 1);
    let live = h.host("127.0.0.2:7000", &[("other", 0)]).await;
    h.store
        .set_state(&key("counter", "3"), b"ttl", Some(Duration::from_secs(1)))
        .await
        .unwrap();

    // Registering already pruned the dead host; cleanup finds the expired state.
    let stats = h.store.cleanup().await.unwrap();
    assert_eq!(
        stats,
        CleanupStats {
            hosts: 0,
            states: 1,
            job_results: 0,
        }
    );
    assert!(matches!(
        h.store.heartbeat(&old).await,
        Err(StoreError::HostUnregistered { .. })
    ));

    h.advance_ms(DEADLINE.as_millis() as u64 + 1);
    let stats = h.store.cleanup().await.unwrap();
    assert_eq!(
        stats,
        CleanupStats {
            hosts: 1,
            states: 1,
            job_results: 0,
        }
    );
    assert_eq!(h.store.cleanup().await.unwrap(), CleanupStats::default());
    assert!(matches!(
        h.store.unregister_host(&live).await,
        Err(StoreError::HostUnregistered { .. })
    ));
    assert!(
        h.store
            .get_state(&key("counter", "2"))
            .await
            .unwrap()
            .is_some()
    );
}

// ---- alarms ------------------------------------------------------------------------------------

async fn alarm_set_get_delete(h: Harness) {
    let k = key("counter", "1");
    let mut record = AlarmRecord::new("tick", h.now() + 1_000);
    record.interval = Some("PT1M".into());
    record.ttl_ms = Some(h.now() + 3_600_000);
    record.data = Some(vec![1, 2, 3]);
    record.scheduled_ms = h.now() + 500;
    record.attempts = 2;
    h.store.set_alarm(&k, "a", &record).await.unwrap();
    assert_eq!(h.store.get_alarm(&k, "a").await.unwrap(), Some(record));
    assert_eq!(h.store.get_alarm(&k, "b").await.unwrap(), None);
    assert_eq!(
        h.store.get_alarm(&key("counter", "2"), "a").await.unwrap(),
        None
    );
    assert!(h.store.delete_alarm(&k, "a").await.unwrap());
    assert!(!h.store.delete_alarm(&k, "a").await.unwrap());
    assert_eq!(h.store.get_alarm(&k, "a").await.unwrap(), None);
}

async fn alarm_set_identical_keeps_id_and_lease_changed_replaces(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    let record = AlarmRecord {
        data: Some(vec![7]),
        ..AlarmRecord::new("tick", h.now())
    };
    h.store.set_alarm(&k, "a", &record).await.unwrap();
    let lease = h.fetch(&[&a], 10).await.remove(0);

    // Same properties (attempts and nominal time are not compared): nothing changes.
    let same = AlarmRecord {
        attempts: 3,
        scheduled_ms: record.due_ms - 1,
        ..record.clone()
    };
    h.store.set_alarm(&k, "a", &same).await.unwrap();
    assert_eq!(
        h.store.get_leased_alarm(&lease).await.unwrap(),
        Some(record.clone())
    );

    // Changed data: a new alarm ID, the lease is gone, attempts come from the record.
    let changed = AlarmRecord {
        data: Some(vec![8]),
        attempts: 1,
        ..record.clone()
    };
    h.store.set_alarm(&k, "a", &changed).await.unwrap();
    assert!(!h.is_valid(&lease).await);
    assert_eq!(h.store.get_alarm(&k, "a").await.unwrap(), Some(changed));
    let again = h.fetch(&[&a], 10).await;
    assert_eq!(again.len(), 1, "the replaced alarm is free to lease again");
    assert_ne!(again[0].alarm_id, lease.alarm_id);
}

async fn fetch_respects_horizon_batch_order_and_leases(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let now = h.now();
    h.alarm(&key("counter", "late"), "a", now + 10).await;
    h.alarm(&key("counter", "first"), "a", now - 10).await;
    h.alarm(&key("counter", "second"), "a", now).await;
    h.alarm(&key("counter", "future"), "a", now + 11).await;

    let batch = h
        .store
        .fetch_and_lease_alarms(&fetch(&[&a], now + 10, 2))
        .await
        .unwrap();
    let ids: Vec<_> = batch
        .iter()
        .map(|l| (l.key.actor_id.as_str(), l.due_ms))
        .collect();
    assert_eq!(ids, vec![("first", now - 10), ("second", now)]);
    assert!(
        batch
            .iter()
            .all(|l| l.expires_ms == now + LEASE.as_millis() as i64 && l.name == "a")
    );

    let rest = h
        .store
        .fetch_and_lease_alarms(&fetch(&[&a], now + 10, 10))
        .await
        .unwrap();
    assert_eq!(
        rest.iter()
            .map(|l| l.key.actor_id.as_str())
            .collect::<Vec<_>>(),
        vec!["late"]
    );
    assert!(
        h.store
            .fetch_and_lease_alarms(&fetch(&[&a], now + 10, 10))
            .await
            .unwrap()
            .is_empty()
    );

    // At its expiry instant a lease still holds; just after, the alarms can be leased again.
    h.store.heartbeat(&a).await.unwrap();
    h.advance_ms(LEASE.as_millis() as u64);
    assert!(h.is_valid(&batch[0]).await);
    assert!(
        h.store
            .fetch_and_lease_alarms(&fetch(&[&a], now + 10, 10))
            .await
            .unwrap()
            .is_empty()
    );
    h.advance_ms(1);
    let again = h
        .store
        .fetch_and_lease_alarms(&fetch(&[&a], now + 10, 10))
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|l| {
        batch
            .iter()
            .chain(&rest)
            .all(|old| old.lease_id != l.lease_id)
    }));
    assert!(!h.is_valid(&batch[0]).await);
}

async fn fetch_places_unplaced_actors_on_fetching_host(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    h.alarm(&k, "a", h.now()).await;
    let leases = h.fetch(&[&b], 10).await;
    assert_eq!(leases.len(), 1);
    assert_eq!(h.active_host(&k).await, Some(b));
    assert!(h.fetch(&[&a], 10).await.is_empty());
}

async fn fetch_skips_actors_active_on_another_healthy_host(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    h.lookup_on(&k, &[&b]).await.unwrap();
    h.alarm(&k, "a", h.now()).await;
    assert!(h.fetch(&[&a], 10).await.is_empty());
    assert_eq!(h.active_host(&k).await, Some(b.clone()));
    assert_eq!(h.fetch(&[&b], 10).await.len(), 1);
}

async fn fetch_takes_actors_on_unhealthy_hosts(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    h.lookup_on(&k, &[&b]).await.unwrap();
    h.alarm(&k, "a", h.now()).await;
    h.advance_ms(20_000);
    h.store.heartbeat(&a).await.unwrap();
    h.advance_ms(20_000);
    let leases = h.fetch(&[&a], 10).await;
    assert_eq!(leases.len(), 1);
    assert_eq!(h.active_host(&k).await, Some(a));
}

async fn fetch_needs_a_supporting_host_with_capacity(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 1)]).await;
    h.alarm(&key("greeter", "1"), "a", h.now() - 4).await;
    h.alarm(&key("counter", "1"), "a", h.now() - 3).await;
    h.alarm(&key("counter", "2"), "a", h.now() - 2).await;
    h.alarm(&key("counter", "1"), "b", h.now() - 1).await;
    assert!(h.fetch(&[], 10).await.is_empty());

    // Only one counter fits on a; both its alarms can run there; the greeter has no host.
    let leases = h.fetch(&[&a], 10).await;
    let leased: Vec<_> = leases
        .iter()
        .map(|l| (l.key.actor_id.as_str(), l.name.as_str()))
        .collect();
    assert_eq!(leased, vec![("1", "a"), ("1", "b")]);
    assert_eq!(h.active_host(&key("counter", "1")).await, Some(a.clone()));
    assert_eq!(h.active_host(&key("counter", "2")).await, None);
    assert!(h.fetch(&[&a], 10).await.is_empty());
    assert!(h.fetch(&[&"no-such-host".to_owned()], 10).await.is_empty());
}

async fn concurrent_fetches_lease_each_alarm_once(h: Harness) {
    let mut hosts = Vec::new();
    for i in 0..20 {
        hosts.push(
            h.host(&format!("127.0.0.{i}:7000"), &[("counter", 0)])
                .await,
        );
    }
    for i in 0..50 {
        h.alarm(&key("counter", &i.to_string()), "a", h.now() - 1_000 + i)
            .await;
    }
    let horizon = h.now();
    let tasks: Vec<_> = hosts
        .iter()
        .map(|host| {
            let store = Arc::clone(&h.store);
            let request = fetch(&[host], horizon, 5);
            tokio::spawn(async move { store.fetch_and_lease_alarms(&request).await })
        })
        .collect();
    let mut leased: HashMap<ActorKey, HostId> = HashMap::new();
    for (host, task) in hosts.iter().zip(tasks) {
        for lease in task.await.unwrap().unwrap() {
            assert!(
                leased.insert(lease.key.clone(), host.clone()).is_none(),
                "{} leased twice",
                lease.key
            );
        }
    }
    assert_eq!(leased.len(), 50);
    for (k, host) in &leased {
        assert_eq!(
            h.active_host(k).await.as_ref(),
            Some(host),
            "{k} is placed where its alarm was leased"
        );
    }
}

async fn leased_ops_reject_foreign_expired_and_replaced_leases(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    h.alarm(&k, "a", h.now()).await;
    let lease = h.fetch(&[&a], 10).await.remove(0);
    let reschedule = AlarmCompletion::Reschedule {
        due_ms: h.now() + 60_000,
        keep_lease: true,
    };

    let foreign = AlarmLease {
        lease_id: uuid::Uuid::new_v4().to_string(),
        ..lease.clone()
    };
    let other_alarm = AlarmLease {
        alarm_id: uuid::Uuid::now_v7().to_string(),
        ..lease.clone()
    };
    for bad in [&foreign, &other_alarm] {
        assert_eq!(h.store.get_leased_alarm(bad).await.unwrap(), None);
        assert_eq!(
            h.store
                .complete_leased_alarm(bad, &AlarmCompletion::Delete, LEASE)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            h.store
                .complete_leased_alarm(bad, &reschedule, LEASE)
                .await
                .unwrap(),
            None
        );
        assert!(!h.store.release_alarm_lease(bad).await.unwrap());
    }
    assert_eq!(
        h.store.get_leased_alarm(&lease).await.unwrap(),
        Some(AlarmRecord::new("ring", lease.due_ms))
    );

    // Expired.
    h.advance_ms(LEASE.as_millis() as u64 + 1);
    assert_eq!(h.store.get_leased_alarm(&lease).await.unwrap(), None);
    assert_eq!(
        h.store
            .complete_leased_alarm(&lease, &AlarmCompletion::Delete, LEASE)
            .await
            .unwrap(),
        None
    );
    assert!(!h.store.release_alarm_lease(&lease).await.unwrap());
    assert!(h.store.get_alarm(&k, "a").await.unwrap().is_some());

    // Replaced by a different alarm under the same name.
    let lease = h.fetch(&[&a], 10).await.remove(0);
    h.alarm(&k, "a", h.now() - 1).await;
    assert_eq!(
        h.store
            .complete_leased_alarm(&lease, &reschedule, LEASE)
            .await
            .unwrap(),
        None
    );
    assert!(!h.store.release_alarm_lease(&lease).await.unwrap());
    assert_eq!(
        h.store.get_alarm(&k, "a").await.unwrap().map(|r| r.due_ms),
        Some(h.now() - 1)
    );

    // Released: valid once, then no more.
    let lease = h.fetch(&[&a], 10).await.remove(0);
    assert!(h.store.release_alarm_lease(&lease).await.unwrap());
    assert!(!h.store.release_alarm_lease(&lease).await.unwrap());
    assert_eq!(
        h.fetch(&[&a], 10).await.len(),
        1,
        "a released alarm can be leased again"
    );
}

async fn complete_delete_removes_alarm(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    h.alarm(&k, "a", h.now()).await;
    let lease = h.fetch(&[&a], 10).await.remove(0);
    let done = h
        .store
        .complete_leased_alarm(&lease, &AlarmCompletion::Delete, LEASE)
        .await
        .unwrap();
    assert_eq!(done, Some(lease.clone()));
    assert_eq!(h.store.get_alarm(&k, "a").await.unwrap(), None);
    assert!(!h.store.delete_alarm(&k, "a").await.unwrap());
}

async fn complete_retry_then_reschedule_updates_fields(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    let nominal = h.now();
    h.alarm(&k, "a", nominal).await;
    let lease = h.fetch(&[&a], 10).await.remove(0);
    h.advance_ms(1_000);

    // Retry, keeping the lease: new due time and attempts, same nominal time, lease refreshed.
    let retry = AlarmCompletion::Retry {
        due_ms: h.now() + 5_000,
        attempts: 1,
        keep_lease: true,
    };
    let kept = h
        .store
        .complete_leased_alarm(&lease, &retry, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.lease_id, lease.lease_id);
    assert_eq!(kept.due_ms, h.now() + 5_000);
    assert_eq!(kept.expires_ms, h.now() + LEASE.as_millis() as i64);
    let record = h.store.get_leased_alarm(&kept).await.unwrap().unwrap();
    assert_eq!(
        (record.due_ms, record.scheduled_ms, record.attempts),
        (h.now() + 5_000, nominal, 1)
    );

    // Retry, releasing the lease: the old lease is dead and another fetch may take it when due.
    let retry = AlarmCompletion::Retry {
        due_ms: h.now() + 5_000,
        attempts: 2,
        keep_lease: false,
    };
    let released = h
        .store
        .complete_leased_alarm(&kept, &retry, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(released.due_ms, h.now() + 5_000);
    assert!(!h.is_valid(&kept).await);
    assert!(h.fetch(&[&a], 10).await.is_empty(), "not due yet");
    h.advance_ms(5_000);
    let lease = h.fetch(&[&a], 10).await.remove(0);
    assert_eq!(
        h.store
            .get_leased_alarm(&lease)
            .await
            .unwrap()
            .map(|r| r.attempts),
        Some(2)
    );

    // Reschedule: next occurrence is also the nominal time, attempts reset.
    let next = h.now() + 60_000;
    let kept = h
        .store
        .complete_leased_alarm(
            &lease,
            &AlarmCompletion::Reschedule {
                due_ms: next,
                keep_lease: true,
            },
            LEASE,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kept.due_ms, kept.expires_ms),
        (next, h.now() + LEASE.as_millis() as i64)
    );
    let record = h.store.get_leased_alarm(&kept).await.unwrap().unwrap();
    assert_eq!(
        (record.due_ms, record.scheduled_ms, record.attempts),
        (next, next, 0)
    );

    let reschedule = AlarmCompletion::Reschedule {
        due_ms: next + 1,
        keep_lease: false,
    };
    assert!(
        h.store
            .complete_leased_alarm(&kept, &reschedule, LEASE)
            .await
            .unwrap()
            .is_some()
    );
    assert!(!h.is_valid(&kept).await);
    let record = h.store.get_alarm(&k, "a").await.unwrap().unwrap();
    assert_eq!((record.due_ms, record.scheduled_ms), (next + 1, next + 1));
}

async fn renew_extends_only_live_leases_of_actors_on_host(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    let (on_a, expiring, on_b) = (
        key("counter", "a"),
        key("counter", "expiring"),
        key("counter", "b"),
    );
    h.lookup_on(&on_a, &[&a]).await.unwrap();
    h.lookup_on(&expiring, &[&a]).await.unwrap();
    h.lookup_on(&on_b, &[&b]).await.unwrap();
    h.alarm(&expiring, "x", h.now() - 1).await;
    h.alarm(&on_a, "x", h.now()).await;
    h.alarm(&on_b, "x", h.now()).await;
    let short = FetchAlarms {
        lease_duration: Duration::from_secs(1),
        ..fetch(&[&a], h.now(), 1)
    };
    let expired_lease = h
        .store
        .fetch_and_lease_alarms(&short)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(expired_lease.key, expiring);
    let lease_a = h.fetch(&[&a], 10).await.remove(0);
    let lease_b = h.fetch(&[&b], 10).await.remove(0);

    h.advance_ms(2_000);
    let renewed = h
        .store
        .renew_alarm_leases(&a, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        renewed,
        vec![AlarmLease {
            expires_ms: h.now() + 30_000,
            ..lease_a.clone()
        }]
    );
    assert!(!h.is_valid(&expired_lease).await);

    // b's lease kept its original expiry.
    h.advance_ms(LEASE.as_millis() as u64);
    assert!(!h.is_valid(&lease_b).await);
    assert!(h.is_valid(&lease_a).await);
    assert!(
        h.store
            .renew_alarm_leases("no-such-host", LEASE)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn removing_placement_releases_alarm_leases(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    let (k1, k2) = (key("counter", "1"), key("counter", "2"));
    h.alarm(&k1, "a", h.now() - 1).await;
    h.alarm(&k2, "a", h.now()).await;
    let leases = h.fetch(&[&a], 10).await;
    assert_eq!(leases.len(), 2);

    assert!(h.store.remove_actor(&k1, &a).await.unwrap());
    assert!(!h.is_valid(&leases[0]).await);
    assert!(h.is_valid(&leases[1]).await);
    let taken = h.fetch(&[&b], 10).await;
    assert_eq!(taken.iter().map(|l| &l.key).collect::<Vec<_>>(), vec![&k1]);

    h.store.unregister_host(&a).await.unwrap();
    assert!(!h.is_valid(&leases[1]).await);
    let taken = h.fetch(&[&b], 10).await;
    assert_eq!(taken.iter().map(|l| &l.key).collect::<Vec<_>>(), vec![&k2]);
}

// ---- operations plane --------------------------------------------------------------------------

fn ops(h: &Harness) -> &dyn OperationsStore {
    h.store
        .operations()
        .expect("a store a process owns has the operations plane")
}

async fn a_drained_host_takes_no_new_placements_until_resumed(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let b = h.host("127.0.0.2:7000", &[("counter", 0)]).await;
    let placed_before = h.lookup(&key("counter", "0")).await.unwrap().host_id;
    let drained = if placed_before == a {
        a.clone()
    } else {
        b.clone()
    };
    let other = if drained == a { b.clone() } else { a.clone() };
    assert!(ops(&h).set_host_draining(&drained, true).await.unwrap());
    assert!(
        !ops(&h)
            .set_host_draining("no-such-host", true)
            .await
            .unwrap()
    );
    for i in 1..20 {
        let placed = h.lookup(&key("counter", &i.to_string())).await.unwrap();
        assert_eq!(
            placed.host_id, other,
            "nothing new goes to the drained host"
        );
    }
    // What was placed before stays until its host lets it go.
    assert_eq!(
        h.lookup(&key("counter", "0")).await.unwrap().host_id,
        drained
    );
    let observed = h.direct.observe_cluster().await.unwrap();
    let draining: Vec<(&str, bool)> = observed
        .hosts
        .iter()
        .map(|host| (host.host_id.as_str(), host.draining))
        .collect();
    assert!(draining.contains(&(drained.as_str(), true)), "{draining:?}");
    assert!(draining.contains(&(other.as_str(), false)), "{draining:?}");
    // A drained host's alarm fetch places nothing on it.
    h.alarm(&key("counter", "alarmed"), "a", h.now()).await;
    assert!(h.fetch(&[&drained], 10).await.is_empty());
    // Resumed, it takes placements again.
    assert!(ops(&h).set_host_draining(&drained, false).await.unwrap());
    assert_eq!(h.fetch(&[&drained], 10).await.len(), 1);
}

async fn audit_keeps_the_first_record_of_a_request_and_target(h: Harness) {
    // Times near the store's now: a runtime's cleanup prunes records past their retention.
    let t0 = h.now();
    let record = |id: &str, request: &str, target: &str, at: i64| AuditRecord {
        audit_id: id.to_owned(),
        request_id: request.to_owned(),
        action: "drain_host".to_owned(),
        target: target.to_owned(),
        principal: "token:admin:0123abcd".to_owned(),
        started_ms: t0 + at,
        finished_ms: None,
        result: AuditResult::Pending,
        error: None,
        detail: None,
    };
    let first = record("a1", "r1", "h1", 100);
    let begun = ops(&h)
        .begin_audit(std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(begun, std::slice::from_ref(&first));
    // The same request and target again, with a new one: the first record comes back, the
    // new target's is written.
    let again = record("a2", "r1", "h1", 200);
    let second_target = record("a3", "r1", "h2", 150);
    assert_eq!(
        ops(&h)
            .begin_audit(&[again, second_target.clone()])
            .await
            .unwrap(),
        [first.clone(), second_target.clone()]
    );
    let other = record("a4", "r2", "h1", 300);
    ops(&h).begin_audit(&[other]).await.unwrap();

    let long_error = "x".repeat(MAX_RECORDED_ERROR_BYTES + 10);
    assert!(
        ops(&h)
            .finish_audit("a1", t0 + 400, AuditResult::Failed, Some(&long_error), None)
            .await
            .unwrap()
    );
    assert!(
        !ops(&h)
            .finish_audit("a1", t0 + 500, AuditResult::Ok, None, None)
            .await
            .unwrap(),
        "a finished record is not finished again"
    );
    assert!(
        ops(&h)
            .finish_audit(
                "a3",
                t0 + 450,
                AuditResult::Ok,
                None,
                Some("{\"actors\":3}")
            )
            .await
            .unwrap()
    );
    assert!(
        !ops(&h)
            .finish_audit("nope", 1, AuditResult::Ok, None, None)
            .await
            .unwrap()
    );

    let all = ops(&h).list_audit(&AuditQuery::default()).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.audit_id.as_str()).collect();
    assert_eq!(ids, ["a4", "a3", "a1"], "newest first");
    let a1 = all.iter().find(|r| r.audit_id == "a1").unwrap();
    assert_eq!(a1.result, AuditResult::Failed);
    assert_eq!(a1.finished_ms, Some(t0 + 400));
    assert_eq!(
        a1.error.as_ref().map(String::len),
        Some(MAX_RECORDED_ERROR_BYTES)
    );
    let a3 = all.iter().find(|r| r.audit_id == "a3").unwrap();
    assert_eq!(a3.detail.as_deref(), Some("{\"actors\":3}"));

    let r1 = ops(&h)
        .list_audit(&AuditQuery {
            request_id: Some("r1".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(r1.len(), 2);
    let page = ops(&h)
        .list_audit(&AuditQuery {
            before_ms: Some(t0 + 300),
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.audit_id.as_str()).collect::<Vec<_>>(),
        ["a3"]
    );
}

async fn a_dead_letter_keeps_the_failed_occurrence_and_replays_it(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let k = key("counter", "1");
    let mut alarm = AlarmRecord::new("ring", h.now());
    alarm.data = Some(vec![1, 2, 3]);
    h.store.set_alarm(&k, "a", &alarm).await.unwrap();
    let lease = h.fetch(&[&a], 10).await.remove(0);

    let foreign = AlarmLease {
        lease_id: uuid::Uuid::new_v4().to_string(),
        ..lease.clone()
    };
    assert!(
        !h.store
            .record_dead_letter(&foreign, 3, "boom")
            .await
            .unwrap()
    );
    assert!(h.store.record_dead_letter(&lease, 3, "boom").await.unwrap());
    assert!(
        h.store
            .record_dead_letter(&lease, 3, "again")
            .await
            .unwrap(),
        "the lease is still valid; the occurrence is kept once"
    );
    let done = h
        .store
        .complete_leased_alarm(&lease, &AlarmCompletion::Delete, LEASE)
        .await
        .unwrap();
    assert!(done.is_some());

    let letters = ops(&h)
        .list_dead_letters(&DeadLetterQuery::default())
        .await
        .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.key, k);
    assert_eq!(letter.name, "a");
    assert_eq!(letter.handler, "ring");
    assert_eq!(letter.data, Some(vec![1, 2, 3]));
    assert_eq!(letter.scheduled_ms, lease.due_ms);
    assert_eq!(letter.attempts, 3);
    assert_eq!(letter.last_error, "boom");
    assert!(
        ops(&h)
            .list_dead_letters(&DeadLetterQuery {
                actor_type: Some("other".into()),
                limit: 0,
            })
            .await
            .unwrap()
            .is_empty()
    );

    let due = h.now() + 5;
    // Two replays at once: one wins.
    let (first, second) = tokio::join!(
        ops(&h).replay_dead_letter(&letter.id, due),
        ops(&h).replay_dead_letter(&letter.id, due)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(
        first.is_some() != second.is_some(),
        "exactly one replay takes the letter: {first:?} {second:?}"
    );
    let replayed = first.or(second).map(|(letter, _)| letter);
    assert_eq!(replayed.as_ref(), Some(letter));
    let again = h.store.get_alarm(&k, "a").await.unwrap().unwrap();
    assert_eq!(again.handler, "ring");
    assert_eq!(again.due_ms, due);
    assert_eq!(again.data, Some(vec![1, 2, 3]));
    assert_eq!(again.attempts, 0);
    assert_eq!(again.interval, None);
    assert_eq!(
        ops(&h).replay_dead_letter(&letter.id, due).await.unwrap(),
        None
    );
    assert!(
        ops(&h)
            .list_dead_letters(&DeadLetterQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn old_operations_records_are_pruned(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("counter", 0)]).await;
    let t0 = h.now();
    let record = |id: &str, target: &str, at: i64, result: AuditResult| AuditRecord {
        audit_id: id.to_owned(),
        request_id: format!("r-{id}"),
        action: "halt_type".to_owned(),
        target: target.to_owned(),
        principal: "cert:alice".to_owned(),
        started_ms: at,
        finished_ms: None,
        result,
        error: None,
        detail: None,
    };
    ops(&h)
        .begin_audit(&[
            record("old", "t", t0 - 10, AuditResult::Ok),
            record("old-pending", "t2", t0 - 10, AuditResult::Pending),
            record("new", "t3", t0 + 100_000, AuditResult::Ok),
        ])
        .await
        .unwrap();
    // Two dead letters, dropped now and 20 seconds later.
    let first_dropped = h.now();
    for name in ["a", "b"] {
        let k = key("counter", name);
        h.alarm(&k, "x", h.now()).await;
        let lease = h.fetch(&[&a], 10).await.remove(0);
        assert_eq!(lease.key, k);
        assert!(h.store.record_dead_letter(&lease, 3, "boom").await.unwrap());
        h.store
            .complete_leased_alarm(&lease, &AlarmCompletion::Delete, LEASE)
            .await
            .unwrap();
        h.advance_ms(20_000);
        h.store.heartbeat(&a).await.unwrap();
    }
    let cut = first_dropped + 10_000;
    assert_eq!(ops(&h).prune_records(t0).await.unwrap().0, 1);
    assert_eq!(ops(&h).prune_records(cut).await.unwrap(), (0, 1));
    let left: Vec<String> = ops(&h)
        .list_audit(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.audit_id)
        .collect();
    assert_eq!(left, ["new", "old-pending"], "pending records are kept");
    let letters = ops(&h)
        .list_dead_letters(&DeadLetterQuery::default())
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].key, key("counter", "b"));
}

/// Instantiate every case for one store, as `$store::$case` tests. With `?$harness`, the
/// harness takes the case's name and returns `None` when the case must be skipped.
macro_rules! store_cases {
    ($store:ident, $harness:ident, [$($case:ident),* $(,)?]) => {
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(super::$harness().await).await;
                }
            )*
        }
    };
    ($store:ident, ?$harness:ident, [$($case:ident),* $(,)?]) => {
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let name = concat!(stringify!($store), "::", stringify!($case));
                    if let Some(harness) = super::$harness(name).await {
                        super::$case(harness).await;
                    }
                }
            )*
        }
    };
}

/// Instantiate every case for every store; the `store_only` cases need what the runtime
/// protocol does not carry, so they do not run on the runtime link.
macro_rules! conformance_suite {
    ([$($case:ident),* $(,)?], store_only: [$($store_case:ident),* $(,)?] $(,)?) => {
        store_cases!(memory, memory_harness, [$($case,)* $($store_case),*]);
        store_cases!(sqlite, sqlite_harness, [$($case,)* $($store_case),*]);
        store_cases!(postgres, ?postgres_harness, [$($case,)* $($store_case),*]);
        store_cases!(link_sqlite, link_sqlite_harness, [$($case),*]);
        store_cases!(link_postgres, ?link_postgres_harness, [$($case),*]);
    };
}

conformance_suite!(
    [
    host_register_lists_healthy_hosts,
    host_duplicate_address_rejected_until_expired,
    heartbeat_keeps_host_alive_and_expired_host_cannot_revive,
    reattach_refreshes_a_healthy_host_and_reregisters_an_expired_one,
    unregister_host_removes_host_and_placements,
    observe_an_empty_store,
    observe_reports_hosts_types_versions_and_placements,
    observe_reports_an_expired_host_as_unhealthy_until_cleanup,
    observe_counts_due_alarms_per_placement_host,
    lookup_allocates_then_returns_existing,
    lookup_active_only_does_not_allocate,
    lookup_unsupported_type_is_no_host,
    lookup_replaces_placement_on_unhealthy_host,
    capacity_limit_gives_no_host_until_freed,
    remove_actor_is_host_scoped,
    concurrent_lookups_are_single_activation,
    state_set_get_delete,
    state_ttl_hides_expired_and_overwrite_clears_it,
    list_states_pages_live_states_in_id_order,
    list_states_limit_defaults_and_cap,
    cleanup_removes_expired_hosts_and_state,
    alarm_set_get_delete,
    alarm_set_identical_keeps_id_and_lease_changed_replaces,
    fetch_respects_horizon_batch_order_and_leases,
    fetch_places_unplaced_actors_on_fetching_host,
    fetch_skips_actors_active_on_another_healthy_host,
    fetch_takes_actors_on_unhealthy_hosts,
    fetch_needs_a_supporting_host_with_capacity,
    concurrent_fetches_lease_each_alarm_once,
    leased_ops_reject_foreign_expired_and_replaced_leases,
    complete_delete_removes_alarm,
    complete_retry_then_reschedule_updates_fields,
    renew_extends_only_live_leases_of_actors_on_host,
    removing_placement_releases_alarm_leases,
    a_drained_host_takes_no_new_placements_until_resumed,
    audit_keeps_the_first_record_of_a_request_and_target,
    a_dead_letter_keeps_the_failed_occurrence_and_replays_it,
    old_operations_records_are_pruned,
    jobs_keys_win_first_and_never_meet_a_plain_alarm,
    jobs_report_running_retries_and_success,
    jobs_dead_letters_keep_the_job_and_retry_it_once,
    jobs_cancel_delete_and_purge_touch_jobs_only,
    jobs_of_one_key_and_time_keep_a_dead_letter_each,
    ],
    // `allowed_hosts` is the runtime's own option: a worker cannot narrow placement.
    // So are `avoid_hosts` and the cluster identity, which the runtime checks for itself, and
    // `max_hosts`, which the runtime sets from its own configuration.
    store_only: [
        lookup_respects_allowed_hosts,
        lookup_never_places_on_avoided_hosts,
        cluster_identity_is_recorded_on_first_use_and_follows_a_rotation,
        admission_refuses_a_host_beyond_max_hosts,
        admission_frees_a_place_when_a_host_leaves_or_expires,
        admission_rejects_another_max_hosts_until_the_cluster_is_empty,
        admission_admits_exactly_max_hosts_of_concurrent_registrations,
    ],
);

#[tokio::test]
async fn sqlite_state_and_alarms_survive_reopening() {
    let clock = ManualClock::new(1_700_000_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("francis.db");
    let k = key("counter", "1");
    let record = AlarmRecord {
        data: Some(vec![1]),
        ..AlarmRecord::new("tick", clock.now_ms() + 1_000)
    };
    let host = {
        let store = SqliteStore::open(&path, options(&clock)).await.unwrap();
        let host = store
            .register_host(&registration("127.0.0.1:7000", &[("counter", 0)]))
            .await
            .unwrap();
        store.set_state(&k, b"durable", None).await.unwrap();
        store.set_alarm(&k, "a", &record).await.unwrap();
        store.close().await;
        host
    };
    let store = SqliteStore::open(&path, options(&clock)).await.unwrap();
    assert_eq!(
        store.get_state(&k).await.unwrap().as_deref(),
        Some(&b"durable"[..])
    );
    assert_eq!(store.get_alarm(&k, "a").await.unwrap(), Some(record));
    store.heartbeat(&host).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_handles_sharing_one_file_agree() {
    let clock = ManualClock::new(1_700_000_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("francis.db");
    // Several handles open one fresh file at once, as processes of one cluster starting together.
    let opens: Vec<_> = (0..4)
        .map(|_| tokio::spawn(SqliteStore::open(path.clone(), options(&clock))))
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(Arc::new(open.await.unwrap().unwrap()));
    }
    for (i, store) in stores.iter().enumerate() {
        let address = format!("127.0.0.{i}:7000");
        store
            .register_host(&registration(&address, &[("counter", 0)]))
            .await
            .unwrap();
    }
    assert_eq!(stores[0].list_hosts().await.unwrap().len(), 4);

    let k = key("counter", "hot");
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            let k = k.clone();
            tokio::spawn(async move { store.lookup_actor(&k, &LookupOptions::default()).await })
        })
        .collect();
    let mut owners = HashSet::new();
    for task in tasks {
        owners.insert(task.await.unwrap().unwrap().host_id);
    }
    assert_eq!(
        owners.len(),
        1,
        "one actor was placed on several hosts: {owners:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_handles_sharing_one_database_agree() {
    let Some(url) = postgres_url("postgres_handles_sharing_one_database_agree") else {
        return;
    };
    let clock = ManualClock::new(1_700_000_000_000);
    let schema = PgTestSchema::create(&url).await;
    // Several handles migrate one fresh schema at once, as processes of one cluster starting
    // together; each has a pool of its own, as separate processes would.
    let mut opens = Vec::new();
    for _ in 0..4 {
        let pool = schema.pool(4).await;
        opens.push(tokio::spawn(PostgresStore::from_pool(
            pool,
            options(&clock),
        )));
    }
    let mut stores = Vec::new();
    for open in opens {
        stores.push(Arc::new(open.await.unwrap().unwrap()));
    }
    let mut hosts = Vec::new();
    for (i, store) in stores.iter().enumerate() {
        let address = format!("127.0.0.{i}:7000");
        hosts.push(
            store
                .register_host(&registration(&address, &[("counter", 0)]))
                .await
                .unwrap(),
        );
    }
    assert_eq!(stores[0].list_hosts().await.unwrap().len(), 4);

    let k = key("counter", "hot");
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            let k = k.clone();
            tokio::spawn(async move { store.lookup_actor(&k, &LookupOptions::default()).await })
        })
        .collect();
    let mut owners = HashSet::new();
    for task in tasks {
        owners.insert(task.await.unwrap().unwrap().host_id);
    }
    assert_eq!(
        owners.len(),
        1,
        "one actor was placed on several hosts: {owners:?}"
    );

    // Each handle fetches for its own host: every alarm is leased exactly once.
    for i in 0..30 {
        stores[0]
            .set_alarm(
                &key("counter", &i.to_string()),
                "a",
                &AlarmRecord::new("ring", clock.now_ms() - 100 + i),
            )
            .await
            .unwrap();
    }
    let tasks: Vec<_> = stores
        .iter()
        .zip(&hosts)
        .map(|(store, host)| {
            let store = Arc::clone(store);
            let request = fetch(&[host], clock.now_ms(), 30);
            tokio::spawn(async move { store.fetch_and_lease_alarms(&request).await })
        })
        .collect();
    let mut leased = HashSet::new();
    for task in tasks {
        for lease in task.await.unwrap().unwrap() {
            assert!(
                leased.insert(lease.key.clone()),
                "{} leased twice",
                lease.key
            );
        }
    }
    assert_eq!(leased.len(), 30);
    for store in &stores {
        store.close().await;
    }
}

#[tokio::test]
async fn postgres_connect_by_url_migrates_once_and_data_survives_reopening() {
    let Some(url) =
        postgres_url("postgres_connect_by_url_migrates_once_and_data_survives_reopening")
    else {
        return;
    };
    let clock = ManualClock::new(1_700_000_000_000);
    let schema = PgTestSchema::create(&url).await;
    // The schema goes in the URL (libpq's `options` parameter), as a deployment could do it.
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}options=-c%20search_path%3D{}", schema.name);
    let k = key("counter", "1");
    let record = AlarmRecord {
        data: Some(vec![1]),
        ..AlarmRecord::new("tick", clock.now_ms() + 1_000)
    };
    let host = {
        let store = PostgresStore::connect(&url, options(&clock)).await.unwrap();
        let host = store
            .register_host(&registration("127.0.0.1:7000", &[("counter", 0)]))
            .await
            .unwrap();
        store.set_state(&k, b"durable", None).await.unwrap();
        store.set_alarm(&k, "a", &record).await.unwrap();
        store.close().await;
        host
    };
    let store = PostgresStore::connect(&url, options(&clock)).await.unwrap();
    assert_eq!(
        store.get_state(&k).await.unwrap().as_deref(),
        Some(&b"durable"[..])
    );
    assert_eq!(store.get_alarm(&k, "a").await.unwrap(), Some(record));
    store.heartbeat(&host).await.unwrap();
    store.close().await;
}
