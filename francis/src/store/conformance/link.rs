//! The conformance suite over the runtime link: a runtime, in this process and over real QUIC on
//! 127.0.0.1, owns a SQL store, and the store under test ([`LinkStore`]) is what workers use,
//! one [`RuntimeLink`] per registered host. An operation that acts for a host goes through that
//! host's own link (a host can only act for itself); the others through any link.
//!
//! Registering is the session protocol's business: `register_host` connects a new link, which
//! bootstraps with the host PSK and registers. An address held by a healthy host is reported
//! before connecting, since a link retries that refusal until its connect timeout (a restarting
//! host waits for its old registration to expire). `reattach_host` and `cleanup` are not link
//! operations and go to the runtime's store, as do operations for a host that has no link.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinHandle;

use super::*;
use crate::net::runtime::client::{Credential, LinkOptions, RuntimeLink};
use crate::net::tls::Trust;
use crate::runtime::Runtime;

const RUNTIME_PSK: &str = "conformance runtime psk, at least 32 bytes long";
const HOST_PSK: &str = "conformance host psk";
/// Where the helper host of a case that registers none is registered.
const HELPER_ADDRESS: &str = "127.0.0.254:1";

/// A runtime serving the links of one case; stopped when the case ends.
pub(super) struct LinkRuntime(JoinHandle<()>);

impl Drop for LinkRuntime {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The store workers see: every operation through the link of the host it concerns.
struct LinkStore {
    address: String,
    trust: Trust,
    clock: ManualClock,
    direct: Arc<dyn Store>,
    links: Mutex<BTreeMap<HostId, RuntimeLink>>,
    /// A host registered only to carry the operations of a case that registers none.
    helper: tokio::sync::OnceCell<(HostId, RuntimeLink)>,
}

impl LinkStore {
    async fn connect(
        &self,
        registration: &HostRegistration,
    ) -> Result<(HostId, RuntimeLink), StoreError> {
        let established = RuntimeLink::connect(LinkOptions {
            runtime_addresses: vec![self.address.clone()],
            credential: Credential::Psk(crate::net::pki::Psk::new(HOST_PSK)),
            pinned: Some(self.trust.clone()),
            registration: registration.clone(),
            clock: Arc::new(self.clock.clone()),
            connect_timeout: Some(Duration::from_secs(10)),
            request_timeout: Duration::from_secs(15),
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok((established.host_id, established.link))
    }

    fn link_of(&self, host_id: &str) -> Option<RuntimeLink> {
        self.links.lock().ok()?.get(host_id).cloned()
    }

    /// A link for operations that act for no host in particular.
    async fn any(&self) -> Result<RuntimeLink, StoreError> {
        let first = self
            .links
            .lock()
            .ok()
            .and_then(|links| links.values().next().cloned());
        if let Some(link) = first {
            return Ok(link);
        }
        let (_, link) = self
            .helper
            .get_or_try_init(|| async {
                self.connect(&HostRegistration {
                    address: HELPER_ADDRESS.into(),
                    ..HostRegistration::default()
                })
                .await
            })
            .await?;
        Ok(link.clone())
    }

    /// The store that acts for `host_id`: its link, or the runtime's store if it has none.
    fn for_host(&self, host_id: &str) -> Arc<dyn Store> {
        match self.link_of(host_id) {
            Some(link) => Arc::new(link),
            None => self.direct.clone(),
        }
    }
}

#[async_trait]
impl Store for LinkStore {
    fn options(&self) -> &StoreOptions {
        self.direct.options()
    }

    async fn register_host(&self, registration: &HostRegistration) -> Result<HostId, StoreError> {
        let hosts = self.direct.list_hosts().await?;
        if hosts.iter().any(|h| h.address == registration.address) {
            return Err(StoreError::HostAlreadyRegistered {
                address: registration.address.clone(),
            });
        }
        let (host_id, link) = self.connect(registration).await?;
        if let Ok(mut links) = self.links.lock() {
            links.insert(host_id.clone(), link);
        }
        Ok(host_id)
    }

    async fn reattach_host(
        &self,
        host_id: &str,
        registration: &HostRegistration,
    ) -> Result<bool, StoreError> {
        self.direct.reattach_host(host_id, registration).await
    }

    async fn heartbeat(&self, host_id: &str) -> Result<(), StoreError> {
        self.for_host(host_id).heartbeat(host_id).await
    }

    async fn claim_cluster_identity(
        &self,
        fingerprints: &[String],
    ) -> Result<ClusterIdentity, StoreError> {
        // The runtime's own business, as registration is.
        self.direct.claim_cluster_identity(fingerprints).await
    }

    async fn unregister_host(&self, host_id: &str) -> Result<(), StoreError> {
        self.for_host(host_id).unregister_host(host_id).await
    }

    async fn record_dead_letter(
        &self,
        lease: &AlarmLease,
        attempts: u32,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.any()
            .await?
            .record_dead_letter(lease, attempts, error)
            .await
    }

    async fn dispatch_job(&self, key: &ActorKey, job: &JobRecord) -> Result<String, StoreError> {
        self.any().await?.dispatch_job(key, job).await
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<JobInfo>, StoreError> {
        self.any().await?.get_job(job_id).await
    }

    async fn list_jobs(&self, key: &ActorKey) -> Result<Vec<JobInfo>, StoreError> {
        self.any().await?.list_jobs(key).await
    }

    async fn cancel_job(&self, key: &ActorKey, job_id: &str) -> Result<bool, StoreError> {
        self.any().await?.cancel_job(key, job_id).await
    }

    async fn list_dead_jobs(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>, StoreError> {
        self.any().await?.list_dead_jobs(query).await
    }

    async fn get_dead_job(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        self.any().await?.get_dead_job(id).await
    }

    async fn delete_dead_job(&self, id: &str) -> Result<bool, StoreError> {
        self.any().await?.delete_dead_job(id).await
    }

    async fn retry_dead_job(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.any().await?.retry_dead_job(id).await
    }

    async fn purge_dead_jobs(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.any().await?.purge_dead_jobs(before_ms).await
    }

    /// A worker's link has none: the runtime's own store answers for the operations plane.
    fn operations(&self) -> Option<&dyn crate::model::OperationsStore> {
        self.direct.operations()
    }

    async fn list_hosts(&self) -> Result<Vec<HostInfo>, StoreError> {
        let helper = self.helper.get().map(|(id, _)| id.as_str());
        let mut hosts = self.any().await?.list_hosts().await?;
        hosts.retain(|h| Some(h.host_id.as_str()) != helper);
        Ok(hosts)
    }

    async fn lookup_actor(
        &self,
        key: &ActorKey,
        options: &LookupOptions,
    ) -> Result<Placement, StoreError> {
        self.any().await?.lookup_actor(key, options).await
    }

    async fn remove_actor(&self, key: &ActorKey, host_id: &str) -> Result<bool, StoreError> {
        self.for_host(host_id).remove_actor(key, host_id).await
    }

    async fn get_state(&self, key: &ActorKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.any().await?.get_state(key).await
    }

    async fn set_state(
        &self,
        key: &ActorKey,
        data: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.any().await?.set_state(key, data, ttl).await
    }

    async fn delete_state(&self, key: &ActorKey) -> Result<bool, StoreError> {
        self.any().await?.delete_state(key).await
    }

    async fn list_states(
        &self,
        actor_type: &str,
        options: &ListStatesOptions,
    ) -> Result<StateList, StoreError> {
        self.any().await?.list_states(actor_type, options).await
    }

    async fn set_alarm(
        &self,
        key: &ActorKey,
        name: &str,
        alarm: &AlarmRecord,
    ) -> Result<(), StoreError> {
        self.any().await?.set_alarm(key, name, alarm).await
    }

    async fn get_alarm(
        &self,
        key: &ActorKey,
        name: &str,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        self.any().await?.get_alarm(key, name).await
    }

    async fn delete_alarm(&self, key: &ActorKey, name: &str) -> Result<bool, StoreError> {
        self.any().await?.delete_alarm(key, name).await
    }

    async fn fetch_and_lease_alarms(
        &self,
        request: &FetchAlarms,
    ) -> Result<Vec<AlarmLease>, StoreError> {
        match request.hosts.as_slice() {
            [] => Ok(Vec::new()),
            [host_id] => self.for_host(host_id).fetch_and_lease_alarms(request).await,
            _ => Err(StoreError::Invalid(
                "a runtime link fetches alarms for its own host only".into(),
            )),
        }
    }

    async fn get_leased_alarm(
        &self,
        lease: &AlarmLease,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        self.any().await?.get_leased_alarm(lease).await
    }

    async fn complete_leased_alarm(
        &self,
        lease: &AlarmLease,
        completion: &AlarmCompletion,
        lease_duration: Duration,
    ) -> Result<Option<AlarmLease>, StoreError> {
        self.any()
            .await?
            .complete_leased_alarm(lease, completion, lease_duration)
            .await
    }

    async fn release_alarm_lease(&self, lease: &AlarmLease) -> Result<bool, StoreError> {
        self.any().await?.release_alarm_lease(lease).await
    }

    async fn renew_alarm_leases(
        &self,
        host_id: &str,
        lease_duration: Duration,
    ) -> Result<Vec<AlarmLease>, StoreError> {
        self.for_host(host_id)
            .renew_alarm_leases(host_id, lease_duration)
            .await
    }

    async fn observe_cluster(&self) -> Result<ClusterObservation, StoreError> {
        // The runtime's own business (a worker's link refuses it); without the helper host.
        let mut observed = self.direct.observe_cluster().await?;
        if let Some((helper, _)) = self.helper.get() {
            observed.hosts.retain(|h| &h.host_id != helper);
        }
        Ok(observed)
    }

    async fn cleanup(&self) -> Result<CleanupStats, StoreError> {
        self.direct.cleanup().await
    }
}

/// A runtime on `store` and the store its workers see.
async fn link_harness(store: Arc<dyn Store>, clock: ManualClock) -> Harness {
    let runtime = Runtime::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .runtime_psk(RUNTIME_PSK)
        .host_psk(HOST_PSK)
        .store(store.clone())
        .health_check_deadline(DEADLINE)
        .alarms_lease_duration(LEASE)
        .clock(Arc::new(clock.clone()))
        .build()
        .await
        .unwrap();
    let address = runtime.local_addr().to_string();
    let trust = runtime.cluster_ca().trust();
    let task = tokio::spawn(async move {
        let _ = runtime.run(std::future::pending()).await;
    });
    let links = LinkStore {
        address,
        trust,
        clock: clock.clone(),
        direct: store.clone(),
        links: Mutex::default(),
        helper: tokio::sync::OnceCell::new(),
    };
    Harness {
        store: Arc::new(links),
        direct: store,
        clock,
        _dir: None,
        _schema: None,
        _runtime: Some(LinkRuntime(task)),
    }
}

pub(super) async fn link_sqlite_harness() -> Harness {
    let inner = sqlite_harness().await;
    let harness = link_harness(inner.store.clone(), inner.clock.clone()).await;
    Harness {
        _dir: inner._dir,
        ..harness
    }
}

pub(super) async fn link_postgres_harness(case: &str) -> Option<Harness> {
    let inner = postgres_harness(case).await?;
    let harness = link_harness(inner.store.clone(), inner.clock.clone()).await;
    Some(Harness {
        _schema: inner._schema,
        ..harness
    })
}

/// A runtime registers workers under its own `maxHosts`, whatever the worker's registration
/// says, and refuses a worker once the cluster is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_admits_workers_with_its_own_max_hosts() {
    let clock = ManualClock::new(1_700_000_000_000);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(options(&clock)));
    let runtime = Runtime::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .runtime_psk(RUNTIME_PSK)
        .host_psk(HOST_PSK)
        .store(store.clone())
        .health_check_deadline(DEADLINE)
        .max_hosts(1)
        .clock(Arc::new(clock.clone()))
        .build()
        .await
        .unwrap();
    let address = runtime.local_addr().to_string();
    let trust = runtime.cluster_ca().trust();
    let _runtime = LinkRuntime(tokio::spawn(async move {
        let _ = runtime.run(std::future::pending()).await;
    }));
    let connect = |host: &str, connect_timeout: Duration| {
        RuntimeLink::connect(LinkOptions {
            runtime_addresses: vec![address.clone()],
            credential: Credential::Psk(crate::net::pki::Psk::new(HOST_PSK)),
            pinned: Some(trust.clone()),
            // What a worker asks for does not count.
            registration: HostRegistration {
                max_hosts: 7,
                ..registration(host, &[("counter", 0)])
            },
            clock: Arc::new(clock.clone()),
            connect_timeout: Some(connect_timeout),
            request_timeout: crate::host::DEFAULT_CALL_TIMEOUT,
        })
    };
    let first = connect("127.0.0.1:7000", Duration::from_secs(10))
        .await
        .unwrap();
    let observed = store.observe_cluster().await.unwrap();
    assert_eq!(observed.max_hosts, Some(1));
    assert_eq!(observed.hosts.len(), 1);
    assert_eq!(observed.hosts[0].host_id, first.host_id);
    assert_eq!(observed.hosts[0].version.as_deref(), Some("1.2.3-test"));

    let refused = connect("127.0.0.2:7000", Duration::from_millis(300))
        .await
        .err()
        .expect("a second host joined a cluster of at most one");
    assert!(refused.to_string().contains("cluster is full"), "{refused}");
    assert_eq!(store.list_hosts().await.unwrap().len(), 1);
}
