//! One process's actor host: [`Host::local()`] builds it (address, store, PSKs, actor types),
//! [`Host::service`] hands out the [`Service`], and [`Host::run`] drives the background work
//! (heartbeats, alarms, idle deactivation, cleanup) until shutdown.

mod activation;
pub(crate) mod alarms;
pub(crate) mod core;
mod options;
mod registry;
mod routing;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::actor::dispatch::Actor;
use crate::actor::service::Service;
use crate::clock::{SharedClock, SystemClock, duration_ms};
use crate::error::Error;
use crate::store::memory::MemoryStore;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{HostRegistration, Store, StoreError, StoreOptions};

pub use options::ActorOptions;
pub(crate) use options::HostTimings;

use self::core::{AppData, CoreParts, HostCore};
use self::registry::{ActorTypeEntry, Registry};
use self::routing::PeerCalls;
use crate::net::peer::{PeerClient, PeerLimits, PeerServer};
use crate::net::pki::ClusterCa;
use std::net::SocketAddr;

/// The shortest runtime PSK accepted, in bytes.
pub const MIN_PSK_LEN: usize = 32;

/// A running actor host.
pub struct Host {
    core: Arc<HostCore>,
    peer_server: Option<PeerServer>,
    ca: Option<ClusterCa>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("host_id", &self.core.host_id)
            .finish_non_exhaustive()
    }
}

enum StoreChoice {
    Unset,
    Memory,
    Sqlite(PathBuf),
    Postgres(String),
    Shared(Arc<dyn Store>),
}

/// Builds a [`Host`]. Errors are collected and reported together by [`HostBuilder::build`].
#[must_use = "a host builder does nothing until `.build().await`"]
pub struct HostBuilder {
    address: Option<String>,
    store: StoreChoice,
    psks: Vec<Vec<u8>>,
    types: Vec<ActorTypeEntry>,
    timings: HostTimings,
    clock: Option<SharedClock>,
    app_data: AppData,
    network: bool,
    errors: Vec<String>,
}

impl Host {
    /// Start building a host of the local topology: it embeds its store (in-memory or a SQLite
    /// file) and coordinates through it.
    pub fn local() -> HostBuilder {
        HostBuilder {
            address: None,
            store: StoreChoice::Unset,
            psks: Vec::new(),
            types: Vec::new(),
            timings: HostTimings::default(),
            clock: None,
            app_data: AppData::new(),
            network: true,
            errors: Vec::new(),
        }
    }

    /// The handle for calling actors and managing their state and alarms.
    pub fn service(&self) -> Service {
        Service::new(self.core.clone())
    }

    /// This host's ID in the cluster.
    pub fn host_id(&self) -> &str {
        &self.core.host_id
    }

    /// How many activations are live on this host now.
    pub fn active_actors(&self) -> usize {
        self.core.active_count()
    }

    pub(crate) fn core(&self) -> &Arc<HostCore> {
        &self.core
    }

    /// The cluster CA derived from the runtime PSKs (`None` for a host without networking).
    pub fn cluster_ca(&self) -> Option<&ClusterCa> {
        self.ca.as_ref()
    }

    /// The address the peer server listens on (`None` for a host without networking).
    pub fn peer_address(&self) -> Option<SocketAddr> {
        self.peer_server.as_ref().map(PeerServer::local_addr)
    }

    /// Run the host until `shutdown` completes (e.g. `tokio::signal::ctrl_c()`), then shut down
    /// gracefully: stop taking calls, let running alarms finish, halt every activation (running
    /// turns get the grace period), and leave the cluster. Returns an error if the host lost
    /// its registration (it stops serving first, so its actors can move elsewhere safely).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let core = self.core;
        let (stop_tx, stop_rx) = watch::channel(false);
        let peers = self.peer_server.map(|server| {
            let mut stop = stop_rx.clone();
            tokio::spawn(server.serve(async move { stopped(&mut stop).await }))
        });
        let alarms = tokio::spawn(alarms::alarm_loop(core.clone(), stop_rx.clone()));
        let idle = tokio::spawn(idle_loop(core.clone(), stop_rx.clone()));
        let cleanup = tokio::spawn(cleanup_loop(core.clone(), stop_rx.clone()));
        let result = tokio::select! {
            _ = shutdown => Ok(()),
            failure = heartbeat_loop(core.clone()) => Err(failure),
        };
        tracing::info!(host = %core.host_id, "host shutting down");
        core.begin_shutdown();
        let _ = stop_tx.send(true);
        for task in [alarms, idle, cleanup] {
            let _ = task.await;
        }
        // A host that lost its registration may already have been replaced: its turns are
        // cut short at once, so no actor runs on two hosts. A clean shutdown drains them.
        let grace = if result.is_err() {
            Duration::ZERO
        } else {
            core.timings.shutdown_grace_period
        };
        core.halt_all_local(grace).await;
        if let Some(peers) = peers {
            let _ = peers.await;
        }
        match core.store.unregister_host(&core.host_id).await {
            Ok(()) | Err(StoreError::HostUnregistered { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "could not unregister host"),
        }
        result
    }
}

impl HostBuilder {
    /// The `host:port` address other hosts use to reach this one (required).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// Keep state and alarms in memory only (lost when the process exits): for tests and
    /// throwaway single-host setups.
    pub fn memory_store(mut self) -> Self {
        self.store = StoreChoice::Memory;
        self
    }

    /// Keep state and alarms in a SQLite file (created, and migrated, if needed).
    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = StoreChoice::Sqlite(path.into());
        self
    }

    /// Keep state and alarms in a PostgreSQL database (migrated if needed): what hosts on
    /// several machines share to form one cluster.
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.store = StoreChoice::Postgres(url.into());
        self
    }

    /// Use an already opened store (its clock and health deadline are used).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = StoreChoice::Shared(store);
        self
    }

    /// Add a runtime pre-shared key (at least 32 bytes). The first key derives the cluster CA
    /// that secures host-to-host traffic; later keys are trusted too, for rotation.
    pub fn runtime_psk(mut self, psk: impl AsRef<[u8]>) -> Self {
        self.psks.push(psk.as_ref().to_vec());
        self
    }

    /// Register actor type `A` with default options.
    pub fn register<A: Actor>(self) -> Self {
        self.register_with::<A>(ActorOptions::default())
    }

    /// Register actor type `A` with options.
    pub fn register_with<A: Actor>(mut self, options: ActorOptions) -> Self {
        if let Err(e) = options.validate(A::NAME) {
            self.errors.push(e.to_string());
        }
        if self.types.iter().any(|t| t.name == A::NAME) {
            self.errors.push(format!(
                "actor type {:?} is registered twice; register each type once",
                A::NAME
            ));
        }
        self.types.push(ActorTypeEntry::new::<A>(options));
        self
    }

    /// How long running turns may take to finish at shutdown or halt before they are
    /// cancelled (default 30 s).
    pub fn shutdown_grace_period(mut self, grace: Duration) -> Self {
        self.timings.shutdown_grace_period = grace;
        self
    }

    /// A host whose heartbeat is older than this is considered dead (default 20 s, at least 1 s).
    pub fn health_check_deadline(mut self, deadline: Duration) -> Self {
        self.timings.health_check_deadline = deadline;
        self
    }

    /// How often due alarms are polled (default 1.5 s).
    pub fn alarms_poll_interval(mut self, interval: Duration) -> Self {
        self.timings.alarms_poll_interval = interval;
        self
    }

    /// How long an alarm lease lasts without renewal (default 20 s).
    pub fn alarms_lease_duration(mut self, lease: Duration) -> Self {
        self.timings.alarms_lease_duration = lease;
        self
    }

    /// Share a value with every actor: `ctx.data::<T>()` in `activate` returns it. One value
    /// per type; a second call with the same type replaces the first.
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.app_data
            .insert(std::any::TypeId::of::<T>(), Arc::new(value));
        self
    }

    /// Do not listen for peers or call them (a host that is alone by construction, as in
    /// `francis::testing`).
    pub(crate) fn without_network(mut self) -> Self {
        self.network = false;
        self
    }

    /// Use this clock instead of the system clock (for tests; see `francis::testing`).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Check the configuration, open the store, and register the host in the cluster.
    pub async fn build(self) -> Result<Host, Error> {
        let HostBuilder {
            address,
            store,
            psks,
            types,
            timings,
            clock,
            app_data,
            network,
            mut errors,
        } = self;
        let address = match address {
            Some(address) => {
                if let Err(e) = check_address(&address) {
                    errors.push(e);
                }
                address
            }
            None => {
                errors.push("no address: call .address(\"127.0.0.1:7571\") with the host:port peers use to reach this host".into());
                String::new()
            }
        };
        if psks.is_empty() {
            errors.push(format!(
                "no runtime PSK: call .runtime_psk(..) with a secret of at least {MIN_PSK_LEN} bytes shared by every host of the cluster"
            ));
        }
        for (i, psk) in psks.iter().enumerate() {
            if psk.len() < MIN_PSK_LEN {
                errors.push(format!(
                    "runtime PSK #{} is {} bytes long; it must be at least {MIN_PSK_LEN} bytes (e.g. `openssl rand -hex 32`)",
                    i + 1,
                    psk.len()
                ));
            }
        }
        if timings.health_check_deadline < Duration::from_secs(1) {
            errors.push(
                "health check deadline is under 1 s; give at least 1 s (default 20 s)".into(),
            );
        }
        if timings.alarms_poll_interval < Duration::from_millis(100) {
            errors.push(
                "alarms poll interval is under 100 ms; give at least 100 ms (default 1.5 s)".into(),
            );
        }
        if timings.alarms_lease_duration < Duration::from_secs(1) {
            errors.push(
                "alarms lease duration is under 1 s; give at least 1 s (default 20 s)".into(),
            );
        }
        if matches!(store, StoreChoice::Unset) {
            errors.push("no store: call .sqlite(\"data.db\") for durable state, or .memory_store() for tests".into());
        }
        if !errors.is_empty() {
            return Err(Error::Config(errors.join("; ")));
        }
        let clock = clock.unwrap_or_else(|| Arc::new(SystemClock));
        let options = StoreOptions {
            clock: clock.clone(),
            health_check_deadline: timings.health_check_deadline,
        };
        let store: Arc<dyn Store> = match store {
            StoreChoice::Memory => Arc::new(MemoryStore::new(options)),
            StoreChoice::Sqlite(path) => Arc::new(SqliteStore::open(&path, options).await?),
            StoreChoice::Postgres(url) => Arc::new(PostgresStore::connect(&url, options).await?),
            StoreChoice::Shared(store) => store,
            StoreChoice::Unset => return Err(Error::Config("no store".into())),
        };
        let clock = store.options().clock.clone();
        let registration = HostRegistration {
            address,
            actor_types: types.iter().map(ActorTypeEntry::registration).collect(),
        };
        let ca = ClusterCa::from_psks(&psks).map_err(|e| Error::Config(e.to_string()))?;
        let host_id = store.register_host(&registration).await?;
        tracing::info!(host = %host_id, address = %registration.address, types = registration.actor_types.len(), "host registered");
        let types: Registry = types.into_iter().map(|t| (t.name, Arc::new(t))).collect();
        // A crashed peer must be noticed well within the health deadline, by which time its
        // actors move to a survivor.
        let liveness = (timings.health_check_deadline / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(10));
        let parts = |peer_client| CoreParts {
            host_id: host_id.clone(),
            address: registration.address.clone(),
            store: store.clone(),
            clock: clock.clone(),
            types,
            timings,
            app_data,
            peer_client,
        };
        if !network {
            return Ok(Host {
                core: HostCore::new(parts(None)),
                peer_server: None,
                ca: None,
            });
        }
        match start_peering(&ca, &host_id, &registration.address, liveness, parts).await {
            Ok((core, peer_server)) => Ok(Host {
                core,
                peer_server: Some(peer_server),
                ca: Some(ca),
            }),
            Err(e) => {
                let _ = store.unregister_host(&host_id).await;
                Err(e)
            }
        }
    }
}

/// How long a local host's self-issued workload certificate lasts.
const LOCAL_CERT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// How long dialling another host may take.
const PEER_DIAL_TIMEOUT: Duration = Duration::from_secs(15);

/// Issue this host's certificate, build the core with a peer client, and start listening.
async fn start_peering(
    ca: &ClusterCa,
    host_id: &str,
    address: &str,
    liveness: Duration,
    parts: impl FnOnce(Option<PeerClient>) -> CoreParts,
) -> Result<(Arc<HostCore>, PeerServer), Error> {
    let identity = ca
        .issue_host_identity(host_id, LOCAL_CERT_TTL)
        .map_err(|e| Error::Config(e.to_string()))?;
    let bind = tokio::net::lookup_host(address)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            Error::Config(format!(
                "address {address:?} does not resolve to a socket address"
            ))
        })?;
    let client = PeerClient::new(ca, &identity, PEER_DIAL_TIMEOUT, liveness)
        .map_err(|e| Error::Config(e.to_string()))?;
    let core = HostCore::new(parts(Some(client)));
    let handler = Arc::new(PeerCalls(core.clone()));
    let server = PeerServer::bind(bind, ca, &identity, handler, PeerLimits::default())
        .map_err(|e| Error::Config(format!("cannot listen for peers on {address}: {e}")))?;
    Ok((core, server))
}

fn check_address(address: &str) -> Result<(), String> {
    let port = address
        .rsplit_once(':')
        .map(|(host, port)| (host, port.parse::<u16>()));
    match port {
        Some((host, Ok(port))) if !host.is_empty() && port != 0 => Ok(()),
        _ => Err(format!(
            "address {address:?} is not host:port with a non-zero port, e.g. \"127.0.0.1:7571\""
        )),
    }
}

/// Heartbeat until the registration is lost; returns the reason. Beats every quarter of the
/// deadline, and gives up (so the host stops serving) once three quarters of the deadline have
/// passed without a successful beat: before any other host may take its actors over.
async fn heartbeat_loop(core: Arc<HostCore>) -> Error {
    let deadline = duration_ms(core.timings.health_check_deadline);
    let every = (deadline / 4).max(1);
    let mut last_ok = core.clock.now_ms();
    loop {
        core.clock
            .sleep_until(core.clock.now_ms().saturating_add(every))
            .await;
        let attempt = Duration::from_millis(every.unsigned_abs());
        let beat = tokio::time::timeout(attempt, core.store.heartbeat(&core.host_id))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "heartbeat took longer than {attempt:?}"
                )))
            });
        match beat {
            Ok(()) => last_ok = core.clock.now_ms(),
            Err(e @ StoreError::HostUnregistered { .. }) => {
                tracing::error!(error = %e, "host lost its registration; stopping");
                return e.into();
            }
            Err(e) => {
                let silent = core.clock.now_ms() - last_ok;
                tracing::warn!(error = %e, silent_ms = silent, "heartbeat failed");
                if silent >= deadline * 3 / 4 {
                    tracing::error!(
                        "heartbeats failing for too long; stopping before the cluster declares this host dead"
                    );
                    return e.into();
                }
            }
        }
    }
}

/// Periodically deactivate idle activations.
async fn idle_loop(core: Arc<HostCore>, mut stop: watch::Receiver<bool>) {
    let every = duration_ms(core.timings.idle_scan_interval);
    loop {
        tokio::select! {
            _ = core.clock.sleep_until(core.clock.now_ms().saturating_add(every)) => { core.reap_idle().await; }
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Periodically delete expired hosts and state.
async fn cleanup_loop(core: Arc<HostCore>, mut stop: watch::Receiver<bool>) {
    let every = duration_ms(core.timings.cleanup_interval);
    loop {
        tokio::select! {
            _ = core.clock.sleep_until(core.clock.now_ms().saturating_add(every)) => {
                match core.store.cleanup().await {
                    Ok(stats) => tracing::debug!(hosts = stats.hosts, states = stats.states, "cleanup"),
                    Err(e) => tracing::warn!(error = %e, "cleanup failed"),
                }
            }
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Completes once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Completes on Ctrl-C, or on SIGTERM on Unix: pass it to [`Host::run`] (or an HTTP server's
/// graceful shutdown) to stop cleanly when the process is asked to.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
