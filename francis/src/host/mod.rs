//! One process's actor host: [`Host::local()`] builds it (address, store, PSKs, actor types),
//! [`Host::service`] hands out the [`Service`], and [`Host::run`] drives the background work
//! (heartbeats, alarms, idle deactivation, cleanup) until shutdown.

mod activation;
pub(crate) mod alarms;
pub(crate) mod core;
mod options;
mod peer_calls;
mod placement;
mod registry;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::actor::dispatch::Actor;
use crate::actor::service::{Service, Topology};
use crate::clock::{SharedClock, SystemClock, duration_ms};
use crate::error::Error;
use crate::model::{HostRegistration, Store, StoreError, StoreOptions};
use crate::store::StoreSpec;

pub use options::ActorOptions;
pub(crate) use options::HostTimings;

use self::core::{AppData, CoreParts, HostCore};
use self::peer_calls::PeerCalls;
use self::registry::{ActorTypeEntry, Registry};
use crate::net::peer::{PeerClient, PeerLimits, PeerServer};
use crate::net::pki::ClusterCa;
use crate::net::runtime::client::{ConnectError, Credential, LinkOptions, RuntimeLink};
use crate::net::tls::{CertSlot, Trust};
use std::net::SocketAddr;

/// The shortest runtime PSK accepted, in bytes.
pub const MIN_PSK_LEN: usize = 32;

/// A running actor host.
pub struct Host {
    core: Arc<HostCore>,
    peer_server: Option<PeerServer>,
    ca: Option<ClusterCa>,
    /// The runtime link of a remote host.
    link: Option<RuntimeLink>,
    /// This host's workload identity (renewed in place on a remote host).
    identity: Option<Arc<CertSlot>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("host_id", &self.core.host_id)
            .finish_non_exhaustive()
    }
}

/// The remote-topology settings of a [`HostBuilder`].
#[derive(Default)]
struct RemoteSettings {
    runtime_addresses: Vec<String>,
    credentials: Vec<Credential>,
    pinned_ca: Option<String>,
    unsafe_no_pin: bool,
    connect_timeout: Option<Duration>,
}

/// Builds a [`Host`]. Errors are collected and reported together by [`HostBuilder::build`].
#[must_use = "a host builder does nothing until `.build().await`"]
pub struct HostBuilder {
    address: Option<String>,
    /// `Some` for a host of the remote topology.
    remote: Option<RemoteSettings>,
    store: Option<StoreSpec>,
    psks: Vec<Vec<u8>>,
    types: Vec<ActorTypeEntry>,
    timings: HostTimings,
    clock: Option<SharedClock>,
    app_data: AppData,
    network: bool,
    errors: Vec<String>,
    /// Setters called that only a local host accepts (a remote host takes these from its
    /// runtime), reported if the builder is remote.
    local_only: Vec<&'static str>,
}

impl Host {
    /// Start building a host of the local topology: it embeds its store (in-memory or a SQLite
    /// file) and coordinates through it.
    pub fn local() -> HostBuilder {
        HostBuilder {
            address: None,
            remote: None,
            store: None,
            psks: Vec::new(),
            types: Vec::new(),
            timings: HostTimings::default(),
            clock: None,
            app_data: AppData::new(),
            network: true,
            errors: Vec::new(),
            local_only: Vec::new(),
        }
    }

    /// Start building a worker of the remote topology: a stateless host that connects to a
    /// runtime (the control plane), which owns the store and admits it with a bootstrap
    /// credential. Actor code and calls are the same as on a local host.
    ///
    /// Required: [`address`](HostBuilder::address), at least one
    /// [`runtime_address`](HostBuilder::runtime_address), exactly one credential
    /// ([`host_bootstrap_psk`](HostBuilder::host_bootstrap_psk),
    /// [`host_bootstrap_jwt`](HostBuilder::host_bootstrap_jwt) or
    /// [`host_bootstrap_jwt_file`](HostBuilder::host_bootstrap_jwt_file)) and exactly one of
    /// [`pinned_ca`](HostBuilder::pinned_ca) or
    /// [`unsafe_no_pinned_ca`](HostBuilder::unsafe_no_pinned_ca).
    pub fn remote() -> HostBuilder {
        HostBuilder {
            remote: Some(RemoteSettings::default()),
            ..Host::local()
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

    /// The coordination store this host uses: its own store (local topology) or its link to
    /// the runtime (remote topology), which implements the same trait. For tools and
    /// measurements; actors and callers go through the [`Service`].
    pub fn store(&self) -> Arc<dyn Store> {
        self.core.store.clone()
    }

    pub(crate) fn core(&self) -> &Arc<HostCore> {
        &self.core
    }

    /// The cluster CA derived from the runtime PSKs (`None` for a remote host, which knows no
    /// PSK, and for a host without networking).
    pub fn cluster_ca(&self) -> Option<&ClusterCa> {
        self.ca.as_ref()
    }

    /// When this host's current workload certificate expires (including the 5-minute clock
    /// skew allowance). A remote host renews it at half its lifetime, so this moves forward
    /// while the host runs. `None` for a host without networking.
    pub fn certificate_not_after(&self) -> Option<std::time::SystemTime> {
        self.identity
            .as_ref()
            .and_then(|slot| slot.identity())
            .map(|identity| identity.not_after())
    }

    /// The runtime a remote host is connected to now (`None` for a local host, or while a
    /// remote host is reconnecting).
    pub fn runtime_address(&self) -> Option<String> {
        self.link.as_ref().and_then(RuntimeLink::runtime_address)
    }

    /// The address the peer server listens on (`None` for a host without networking).
    pub fn peer_address(&self) -> Option<SocketAddr> {
        self.peer_server.as_ref().map(PeerServer::local_addr)
    }

    /// Run the host until `shutdown` completes (e.g. `tokio::signal::ctrl_c()`), then shut down
    /// gracefully: stop taking calls, let running alarms finish, halt every activation (running
    /// turns get the grace period), and leave the cluster. Returns an error if the host lost
    /// its registration (it stops serving first, so its actors can move elsewhere safely).
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let core = self.core.clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let peers = self.peer_server.take().map(|server| {
            let mut stop = stop_rx.clone();
            tokio::spawn(server.serve(async move { stopped(&mut stop).await }))
        });
        let alarms = tokio::spawn(alarms::alarm_loop(core.clone(), stop_rx.clone()));
        let idle = tokio::spawn(idle_loop(core.clone(), stop_rx.clone()));
        let cleanup = tokio::spawn(cleanup_loop(core.clone(), stop_rx.clone()));
        let result = tokio::select! {
            _ = shutdown => Ok(()),
            failure = heartbeat_loop(core.clone(), self.link.clone()) => Err(failure),
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
        if let Some(link) = &self.link {
            link.close();
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
        self.store = Some(StoreSpec::Memory);
        self
    }

    /// Keep state and alarms in a SQLite file (created, and migrated, if needed).
    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(StoreSpec::Sqlite(path.into()));
        self
    }

    /// Keep state and alarms in a PostgreSQL database (migrated if needed): what hosts on
    /// several machines share to form one cluster.
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.store = Some(StoreSpec::Postgres(url.into()));
        self
    }

    /// Use an already opened store (its clock and health deadline are used).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(StoreSpec::Shared(store));
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
        self.local_only.push("health_check_deadline");
        self
    }

    /// How often due alarms are polled (default 1.5 s).
    pub fn alarms_poll_interval(mut self, interval: Duration) -> Self {
        self.timings.alarms_poll_interval = interval;
        self.local_only.push("alarms_poll_interval");
        self
    }

    /// How long an alarm lease lasts without renewal (default 20 s).
    pub fn alarms_lease_duration(mut self, lease: Duration) -> Self {
        self.timings.alarms_lease_duration = lease;
        self.local_only.push("alarms_lease_duration");
        self
    }

    /// A runtime this remote host may connect to (`host:port`); call it once per replica. The
    /// host connects to one at a time, starting at a random one, and rolls over to the next
    /// with backoff when it fails.
    pub fn runtime_address(self, address: impl Into<String>) -> Self {
        self.with_remote("runtime_address", |r| {
            r.runtime_addresses.push(address.into())
        })
    }

    /// Several runtime addresses at once (see [`runtime_address`](Self::runtime_address)).
    pub fn runtime_addresses<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for address in addresses {
            self = self.runtime_address(address);
        }
        self
    }

    /// Join with the host bootstrap PSK (the runtime's `bootstrap.hostPSK`, at least 16 bytes),
    /// proven by a challenge-response bound to the TLS session, in which the runtime proves
    /// knowledge of the PSK first.
    pub fn host_bootstrap_psk(mut self, psk: impl AsRef<[u8]>) -> Self {
        let psk = psk.as_ref().to_vec();
        if psk.len() < crate::net::runtime::bootstrap::MIN_HOST_PSK_LEN {
            self.errors.push(format!(
                "the host bootstrap PSK is {} bytes; it must be at least {} bytes",
                psk.len(),
                crate::net::runtime::bootstrap::MIN_HOST_PSK_LEN
            ));
        }
        self.with_remote("host_bootstrap_psk", |r| {
            r.credentials.push(Credential::Psk(psk))
        })
    }

    /// Join with this JWT (a bearer token: pin the CA so it cannot be shown to an impostor).
    pub fn host_bootstrap_jwt(self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.with_remote("host_bootstrap_jwt", |r| {
            r.credentials.push(Credential::Jwt(token))
        })
    }

    /// Join with the JWT in this file, read again at every bootstrap so rotated tokens (e.g.
    /// Kubernetes projected service-account tokens) are picked up.
    pub fn host_bootstrap_jwt_file(self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        self.with_remote("host_bootstrap_jwt_file", |r| {
            r.credentials.push(Credential::JwtFile(path))
        })
    }

    /// Trust only runtimes whose certificate chains to this CA (the PEM that
    /// `francis ca print` writes; several CAs may be concatenated). Recommended.
    pub fn pinned_ca(self, pem: impl Into<String>) -> Self {
        let pem = pem.into();
        self.with_remote("pinned_ca", |r| r.pinned_ca = Some(pem))
    }

    /// Trust the first runtime reached without checking its certificate, and from then on the
    /// CA bundle it sends. Only for local testing: with a PSK the runtime still has to prove
    /// it knows the PSK, but a JWT would be handed to whoever answers.
    pub fn unsafe_no_pinned_ca(self) -> Self {
        self.with_remote("unsafe_no_pinned_ca", |r| r.unsafe_no_pin = true)
    }

    /// Give up building if no runtime accepts this host within `limit` (default: keep trying,
    /// logging each failure). Refusals that retrying cannot fix (a wrong credential, an
    /// unpinned CA) fail at once either way.
    pub fn runtime_connect_timeout(self, limit: Duration) -> Self {
        self.with_remote("runtime_connect_timeout", |r| {
            r.connect_timeout = Some(limit)
        })
    }

    /// Apply a remote-only setting, or record that a local builder was given one.
    fn with_remote(mut self, setter: &str, apply: impl FnOnce(&mut RemoteSettings)) -> Self {
        match self.remote.as_mut() {
            Some(remote) => apply(remote),
            None => self.errors.push(format!(
                ".{setter}(..) is for remote hosts: build with Host::remote() to connect to a runtime"
            )),
        }
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
            remote,
            store,
            psks,
            types,
            mut timings,
            clock,
            app_data,
            network,
            mut errors,
            local_only,
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
        match &remote {
            None => check_local(&store, &psks, &timings, &mut errors),
            Some(remote) => check_remote(remote, &store, &psks, &local_only, &mut errors),
        }
        if !errors.is_empty() {
            return Err(Error::Config(errors.join("; ")));
        }
        let clock = clock.unwrap_or_else(|| Arc::new(SystemClock));
        let registration = HostRegistration {
            address,
            actor_types: types.iter().map(ActorTypeEntry::registration).collect(),
        };
        let (store, host_id, tls, link, ca) = match remote {
            None => {
                let options = StoreOptions {
                    clock: clock.clone(),
                    health_check_deadline: timings.health_check_deadline,
                };
                let store = store
                    .ok_or_else(|| Error::Config("no store".into()))?
                    .open(options)
                    .await?;
                let ca = ClusterCa::from_psks(&psks).map_err(|e| Error::Config(e.to_string()))?;
                let host_id = store.register_host(&registration).await?;
                // A local host certifies itself with the CA its PSKs derive.
                let tls = if network {
                    let identity = ca
                        .issue_host_identity(&host_id, LOCAL_CERT_TTL)
                        .map_err(|e| Error::Config(e.to_string()))?;
                    let slot =
                        CertSlot::new(&identity).map_err(|e| Error::Config(e.to_string()))?;
                    Some((ca.trust(), slot))
                } else {
                    None
                };
                (store, host_id, tls, None, Some(ca))
            }
            Some(remote) => {
                let pinned = match &remote.pinned_ca {
                    Some(pem) => Some(Trust::from_pem(pem).map_err(|e| {
                        Error::Config(format!("the pinned CA is not usable PEM: {e}"))
                    })?),
                    None => {
                        tracing::warn!(
                            "no pinned CA: this host will trust whichever runtime answers first (unsafe_no_pinned_ca); pin the output of `francis ca print` in production"
                        );
                        None
                    }
                };
                let established = RuntimeLink::connect(LinkOptions {
                    runtime_addresses: remote.runtime_addresses,
                    credential: remote
                        .credentials
                        .into_iter()
                        .next()
                        .ok_or_else(|| Error::Config("no bootstrap credential".into()))?,
                    pinned,
                    registration: registration.clone(),
                    clock: clock.clone(),
                    connect_timeout: remote.connect_timeout,
                })
                .await
                .map_err(|e| match e {
                    ConnectError::Fatal(reason) => Error::Bootstrap(reason),
                    ConnectError::Transient(reason) => Error::Bootstrap(reason),
                })?;
                // The runtime's settings govern every host of the cluster.
                timings.health_check_deadline = established.health_check_deadline;
                timings.alarms_poll_interval = established.alarms_poll_interval;
                timings.alarms_lease_duration = established.alarms_lease_duration;
                let store: Arc<dyn Store> = Arc::new(established.link.clone());
                (
                    store,
                    established.host_id,
                    Some((established.trust, established.identity)),
                    Some(established.link),
                    None,
                )
            }
        };
        let clock = store.options().clock.clone();
        tracing::info!(host = %host_id, address = %registration.address, types = registration.actor_types.len(), "host registered");
        let types: Registry = types.into_iter().map(|t| (t.name, Arc::new(t))).collect();
        // A crashed peer must be noticed well within the health deadline, by which time its
        // actors move to a survivor.
        let liveness = (timings.health_check_deadline / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(10));
        let topology = if link.is_some() {
            Topology::Remote
        } else {
            Topology::Local
        };
        let parts = |peer_client| CoreParts {
            host_id: host_id.clone(),
            address: registration.address.clone(),
            store: store.clone(),
            clock: clock.clone(),
            types,
            timings,
            app_data,
            peer_client,
            topology,
        };
        let Some((trust, identity)) = tls else {
            return Ok(Host {
                core: HostCore::new(parts(None)),
                peer_server: None,
                ca: None,
                link,
                identity: None,
            });
        };
        match start_peering(
            &trust,
            identity.clone(),
            &registration.address,
            liveness,
            parts,
        )
        .await
        {
            Ok((core, peer_server)) => Ok(Host {
                core,
                peer_server: Some(peer_server),
                ca,
                link,
                identity: Some(identity),
            }),
            Err(e) => {
                let _ = store.unregister_host(&host_id).await;
                if let Some(link) = &link {
                    link.close();
                }
                Err(e)
            }
        }
    }
}

/// What a local host's configuration must hold.
fn check_local(
    store: &Option<StoreSpec>,
    psks: &[Vec<u8>],
    timings: &HostTimings,
    errors: &mut Vec<String>,
) {
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
        errors.push("health check deadline is under 1 s; give at least 1 s (default 20 s)".into());
    }
    if timings.alarms_poll_interval < Duration::from_millis(100) {
        errors.push(
            "alarms poll interval is under 100 ms; give at least 100 ms (default 1.5 s)".into(),
        );
    }
    if timings.alarms_lease_duration < Duration::from_secs(1) {
        errors.push("alarms lease duration is under 1 s; give at least 1 s (default 20 s)".into());
    }
    if store.is_none() {
        errors.push(
            "no store: call .sqlite(\"data.db\") for durable state, or .memory_store() for tests"
                .into(),
        );
    }
}

/// What a remote host's configuration must hold.
fn check_remote(
    remote: &RemoteSettings,
    store: &Option<StoreSpec>,
    psks: &[Vec<u8>],
    local_only: &[&'static str],
    errors: &mut Vec<String>,
) {
    if !store.is_none() {
        errors.push(
            "a remote host keeps no store (the runtime owns it): remove .sqlite/.postgres/.memory_store/.store".into(),
        );
    }
    if !psks.is_empty() {
        errors.push(
            "a remote host takes no runtime PSK (the runtime holds it): remove .runtime_psk(..) and give a bootstrap credential instead".into(),
        );
    }
    for setter in local_only {
        errors.push(format!(
            ".{setter}(..) is set by the runtime's configuration for remote hosts: remove it"
        ));
    }
    if remote.runtime_addresses.is_empty() {
        errors.push("no runtime address: call .runtime_address(\"127.0.0.1:7400\") (once per runtime replica)".into());
    }
    for address in &remote.runtime_addresses {
        if let Err(e) = check_address(address) {
            errors.push(format!("runtime {e}"));
        }
    }
    match remote.credentials.len() {
        0 => errors.push("no bootstrap credential: call exactly one of .host_bootstrap_psk(..), .host_bootstrap_jwt(..) or .host_bootstrap_jwt_file(..)".into()),
        1 => {}
        _ => errors.push("more than one bootstrap credential: call only one of .host_bootstrap_psk(..), .host_bootstrap_jwt(..), .host_bootstrap_jwt_file(..)".into()),
    }
    match (&remote.pinned_ca, remote.unsafe_no_pin) {
        (None, false) => errors.push("no CA decision: call .pinned_ca(pem) with the output of `francis ca print` (recommended), or .unsafe_no_pinned_ca() for local testing".into()),
        (Some(_), true) => errors.push("both .pinned_ca(..) and .unsafe_no_pinned_ca() were called: choose one".into()),
        _ => {}
    }
}

/// How long a local host's self-issued workload certificate lasts.
const LOCAL_CERT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// How long dialling another host may take.
const PEER_DIAL_TIMEOUT: Duration = Duration::from_secs(15);

/// Build the core with a peer client, and start listening for peers.
async fn start_peering(
    trust: &Trust,
    identity: Arc<CertSlot>,
    address: &str,
    liveness: Duration,
    parts: impl FnOnce(Option<PeerClient>) -> CoreParts,
) -> Result<(Arc<HostCore>, PeerServer), Error> {
    let bind = tokio::net::lookup_host(address)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            Error::Config(format!(
                "address {address:?} does not resolve to a socket address"
            ))
        })?;
    let client = PeerClient::new(trust, identity.clone(), PEER_DIAL_TIMEOUT, liveness)
        .map_err(|e| Error::Config(e.to_string()))?;
    let core = HostCore::new(parts(Some(client)));
    let handler = Arc::new(PeerCalls::new(core.clone()));
    let draining = core.draining();
    let server = PeerServer::bind(
        bind,
        trust,
        identity,
        handler,
        PeerLimits::default(),
        draining,
    )
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

/// Heartbeat until the registration is lost for good; returns the reason. Beats every quarter
/// of the deadline. Once three quarters of the deadline pass without a successful beat, the
/// host stops serving its actors before any other host may take them over: a local host stops
/// altogether; a remote host drops its activations and keeps reconnecting to the runtime, and
/// drops them again whenever it had to register anew.
async fn heartbeat_loop(core: Arc<HostCore>, link: Option<RuntimeLink>) -> Error {
    let deadline = duration_ms(core.timings.health_check_deadline);
    let every = (deadline / 4).max(1);
    let mut last_ok = core.clock.now_ms();
    let mut lost = link.as_ref().map(RuntimeLink::registrations_lost);
    let mut failures = link.as_ref().map(RuntimeLink::failures);
    loop {
        tokio::select! {
            _ = core.clock.sleep_until(core.clock.now_ms().saturating_add(every)) => {}
            Some(()) = changed(&mut lost) => {
                core.halt_all_local(Duration::ZERO).await;
                continue;
            }
            Some(reason) = failed(&mut failures) => {
                core.halt_all_local(Duration::ZERO).await;
                return Error::Bootstrap(reason);
            }
        }
        let attempt = Duration::from_millis(every.unsigned_abs());
        let beat = tokio::time::timeout(attempt, core.store.heartbeat(&core.host_id))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "heartbeat took longer than {attempt:?}"
                )))
            });
        match (beat, &link) {
            (Ok(()), _) => last_ok = core.clock.now_ms(),
            (Err(e @ StoreError::HostUnregistered { .. }), None) => {
                tracing::error!(error = %e, "host lost its registration; stopping");
                return e.into();
            }
            (Err(StoreError::HostUnregistered { .. }), Some(link)) => {
                tracing::warn!(
                    "the runtime says this host's registration expired; dropping its activations and registering again"
                );
                core.halt_all_local(Duration::ZERO).await;
                link.reconnect();
            }
            (Err(e), link) => {
                let silent = core.clock.now_ms() - last_ok;
                tracing::warn!(error = %e, silent_ms = silent, "heartbeat failed");
                if silent >= deadline * 3 / 4 {
                    if link.is_none() {
                        tracing::error!(
                            "heartbeats failing for too long; stopping before the cluster declares this host dead"
                        );
                        return e.into();
                    }
                    if core.active_count() > 0 {
                        tracing::warn!(
                            "cannot reach the runtime for too long; dropping activations before the cluster declares this host dead"
                        );
                        core.halt_all_local(Duration::ZERO).await;
                    }
                }
            }
        }
    }
}

/// Completes when the watched counter moved (never, without a watch).
async fn changed(watch: &mut Option<watch::Receiver<u64>>) -> Option<()> {
    match watch {
        Some(rx) => rx.changed().await.ok(),
        None => std::future::pending().await,
    }
}

/// Completes with the reason once the link failed for good (never, without a link).
async fn failed(watch: &mut Option<watch::Receiver<Option<String>>>) -> Option<String> {
    match watch {
        Some(rx) => rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|reason| reason.clone()),
        None => std::future::pending().await,
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
