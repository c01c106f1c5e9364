//! The remote topology's control plane: a runtime owns the store (SQLite, PostgreSQL or
//! memory), admits hosts (PSK or JWT bootstrap, then mTLS), issues their short-lived workload
//! certificates from the cluster CA, and serves them the store's coordination operations
//! (placement, state, alarm leases, health) over WebTransport. It never carries actor calls:
//! hosts call each other directly.
//!
//! Several runtimes sharing the runtime PSKs (so the same CA) and one PostgreSQL database serve
//! one cluster; workers list them all and fail over. Alarms are leased in the shared store on
//! behalf of the host that asks (each worker polls the runtime for its own due alarms), so they
//! fire on the host that owns the actor and survive the loss of any one runtime or host.
//!
//! [`Runtime::builder`] configures one in code; [`Runtime::from_config`] takes the YAML
//! configuration (`francis runtime --config config.yaml` is a thin wrapper over it).
//!
//! - [`config`]: the runtime's YAML configuration file, validated with precise errors.
//! - [`JwtValidator`]: validation of the JWTs hosts present when they join with JWT bootstrap.

mod admission;
pub mod config;
mod jwt;
mod ops;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};
use crate::model::{Store, StoreError, StoreOptions};
use crate::net::gate::ConnectionLimits;
use crate::net::identity::check_cluster_identity;
use crate::net::is_development_psk;
use crate::net::peer::NetError;
use crate::net::pki::{ClusterCa, PkiError, Psk};
use crate::net::runtime::bootstrap::MIN_HOST_PSK_LEN;
use crate::net::runtime::server::{ServerSettings, SessionServer};
use crate::net::tls::CertSlot;
use crate::profile::{Endpoint, Profile, ProfileError, PskKind, Setup};
use crate::store::{OperationLog, QueryLog, SqlOptions, StoreSpec, default_store_timeout};

pub use self::admission::{Bootstrap, TokenValidator};
use self::admission::{HostSettings, Policy};
pub use self::jwt::{JwksSource, JwtClaims, JwtConfig, JwtError, JwtValidator};

/// The longest alarm lease a runtime grants: a worker asking for more (when it fetches,
/// completes or renews) gets this, so a host cannot hold alarms longer than a few minutes
/// without renewing. A runtime's configured lease (`alarmsLeaseDuration`, default 20 s) may not
/// exceed it.
pub const MAX_ALARMS_LEASE_DURATION: Duration = Duration::from_secs(5 * 60);

/// How far ahead of now a worker may fetch due alarms: a fetch whose horizon lies further is
/// cut to now plus this. Workers fetch 2.5 s ahead by default (`alarmsFetchAheadInterval`,
/// which may not exceed it).
pub const MAX_ALARMS_FETCH_AHEAD: Duration = crate::host::MAX_ALARMS_FETCH_AHEAD;

/// The most alarms one worker's fetch may lease (`alarmsFetchAheadBatchSize` may not exceed
/// it): 1000.
pub const MAX_ALARMS_FETCH_BATCH_SIZE: u32 = crate::net::runtime::server::MAX_FETCH_BATCH;

/// How long the runtime's own server certificate lives; it is re-issued well before expiry.
const RUNTIME_CERT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// How often the runtime re-issues its server certificate.
const RUNTIME_CERT_RENEW: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often expired hosts and state are deleted.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

/// Errors starting or running a runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The configuration is invalid; the message says what to change.
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    /// The profile refused an unsafe setting: every problem, each with its fix.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The cluster CA or the runtime's certificate could not be made.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// Probing a runtime's CA failed.
    #[error("cannot read the runtime's CA from {0}")]
    Probe(String),
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What a runtime builder sets: the settings hosts get, the server's deadlines and limits, and
/// the store's.
pub(crate) struct Settings {
    pub workload_cert_ttl: Duration,
    pub health_check_deadline: Duration,
    pub alarms_poll_interval: Duration,
    pub alarms_lease_duration: Duration,
    pub alarms_fetch_ahead: Duration,
    pub alarms_batch_size: u32,
    pub shutdown_grace_period: Duration,
    pub registration_timeout: Duration,
    /// How long a worker's request may take to arrive, and its store operation to run.
    pub request_timeout: Duration,
    pub max_hosts: u32,
    /// Requests one worker may have open at once.
    pub max_in_flight_requests: usize,
    /// The largest request frame a worker may send.
    pub max_request_body_size: usize,
    /// How the SQL store bounds and logs its operations.
    pub sql: SqlOptions,
    /// The store timeout given (`None`: the default for the health check deadline).
    pub store_timeout: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workload_cert_ttl: Duration::from_secs(3600),
            health_check_deadline: Duration::from_secs(20),
            alarms_poll_interval: Duration::from_millis(1500),
            alarms_lease_duration: Duration::from_secs(20),
            alarms_fetch_ahead: crate::host::DEFAULT_ALARMS_FETCH_AHEAD,
            alarms_batch_size: crate::host::DEFAULT_ALARMS_FETCH_BATCH_SIZE,
            shutdown_grace_period: Duration::from_secs(30),
            registration_timeout: Duration::from_secs(10),
            max_hosts: 0,
            request_timeout: crate::host::DEFAULT_CALL_TIMEOUT,
            max_in_flight_requests: crate::host::DEFAULT_MAX_IN_FLIGHT_REQUESTS,
            max_request_body_size: crate::host::DEFAULT_MAX_REQUEST_BODY_SIZE,
            sql: SqlOptions::default(),
            store_timeout: None,
        }
    }
}

/// Builds a [`Runtime`]. Errors are collected and reported together by [`build`](Self::build).
#[must_use = "a runtime builder does nothing until `.build().await`"]
pub struct RuntimeBuilder {
    bind: SocketAddr,
    advertise_address: Option<String>,
    runtime_id: Option<String>,
    psks: Vec<Psk>,
    bootstrap: Option<Bootstrap>,
    store: Option<StoreSpec>,
    settings: Settings,
    clock: Option<SharedClock>,
    /// Where the operations HTTP server listens, if it runs.
    http_bind: Option<SocketAddr>,
    /// Whether it speaks TLS, with client certificates of operator identities.
    http_tls: bool,
    /// The profile chosen in code or in the configuration (`None`: `FRANCIS_PROFILE`, else
    /// dev).
    profile: Option<Profile>,
    /// What the profile check knows of the configuration the builder was made from (how
    /// its PSKs and JWKS URL are given), when it was.
    config_setup: Option<Setup>,
    errors: Vec<String>,
}

/// How long the runtime waits to reach a host when relaying an operator's action.
const OPS_DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the runtime keeps an idle peer link to a host it relayed an action to.
const OPS_PEER_IDLE: Duration = Duration::from_secs(60);

/// A running control plane. Create it with [`Runtime::builder`] or [`Runtime::from_config`],
/// then [`run`](Self::run) it.
pub struct Runtime {
    server: SessionServer,
    runtime_id: String,
    /// The address the runtime is reached at, when known.
    advertise_address: Option<String>,
    cert: Arc<CertSlot>,
    policy: Arc<Policy>,
    ops: Option<ops::OpsServer>,
    /// The names the runtime's certificate carries (kept when it is re-issued).
    cert_names: Vec<String>,
    /// The security profile it runs under.
    profile: Profile,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("local_addr", &self.server.local_addr())
            .field("runtime_id", &self.runtime_id)
            .field("advertise_address", &self.advertise_address)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Start configuring a runtime. The operations HTTP server is off unless
    /// [`http_bind`](RuntimeBuilder::http_bind) is called (the configuration file turns it on
    /// at `127.0.0.1:8444` by default).
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            bind: SocketAddr::from(([0, 0, 0, 0], 8443)),
            advertise_address: None,
            runtime_id: None,
            psks: Vec::new(),
            bootstrap: None,
            store: None,
            settings: Settings::default(),
            clock: None,
            http_bind: None,
            http_tls: false,
            profile: None,
            config_setup: None,
            errors: Vec::new(),
        }
    }

    /// The address the runtime listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// This runtime's ID (in its certificate: `spiffe://francis/runtime/<id>`).
    pub fn runtime_id(&self) -> &str {
        &self.runtime_id
    }

    /// The address the runtime is reached at (`host:port`): the builder's
    /// [`advertise_address`](RuntimeBuilder::advertise_address), else the address it listens
    /// on when that is a concrete IP address (not `0.0.0.0` or `::`), else `None`. Its host is
    /// named in the runtime's server certificate.
    pub fn advertise_address(&self) -> Option<&str> {
        self.advertise_address.as_deref()
    }

    /// The cluster CA: what workers pin (`francis ca print`).
    pub fn cluster_ca(&self) -> &ClusterCa {
        &self.policy.ca
    }

    /// The store this runtime owns.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.policy.store
    }

    /// Where the operations HTTP server listens (`/healthz`, `/readyz`, `/metrics`,
    /// `/api/cluster/state`), if it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(|o| o.local_addr().ok())
    }

    /// How many hosts hold a session with this runtime now.
    pub fn connected_hosts(&self) -> usize {
        self.server.connected_hosts()
    }

    /// Serve hosts until `shutdown` completes, then shut down gracefully: refuse new sessions,
    /// give running requests up to the shutdown grace period, and close every session with
    /// code 2 ("runtime shutting down") so workers move to another replica at once. Hosts'
    /// registrations stay in the store: they reattach to whichever runtime they reach next.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RuntimeError> {
        let Runtime {
            server,
            runtime_id,
            advertise_address,
            cert,
            policy,
            ops,
            cert_names: names,
            profile,
        } = self;
        let local_addr = server.local_addr();
        tracing::info!(%local_addr, %runtime_id, advertise_address = advertise_address.as_deref().unwrap_or("-"), ca = %policy.ca.fingerprint(), "runtime listening");
        let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let http = ops.map(|ops| {
            if let Ok(address) = ops.local_addr() {
                let scheme = if ops.is_tls() { "https" } else { "http" };
                tracing::info!(%address, scheme, "operations server listening (/healthz, /readyz, /metrics, /api/cluster/state)");
            }
            let view = ops::RuntimeView {
                store: policy.store.clone(),
                runtime_id: runtime_id.clone(),
                address: advertise_address
                    .clone()
                    .unwrap_or_else(|| local_addr.to_string()),
                draining: draining.clone(),
                watch: Arc::new(crate::cluster::ClusterWatch::new()),
                health_check_deadline: policy.hosts.health_check_deadline,
                profile,
                peers: match crate::net::peer::PeerClient::new(
                    &policy.ca.trust(),
                    cert.clone(),
                    OPS_DIAL_TIMEOUT,
                    OPS_PEER_IDLE,
                ) {
                    Ok(peers) => Some(peers),
                    Err(e) => {
                        tracing::error!(error = %e, "no peer link to hosts: operators' actions that reach hosts will fail");
                        None
                    }
                },
            };
            let mut stopped = stopped.clone();
            tokio::spawn(ops.serve(view, async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }))
        });
        let background = tokio::spawn(maintenance(policy, cert, runtime_id, names));
        // Maintenance stops when the drain begins; the probes say "not ready" from then on.
        server
            .serve(async move {
                shutdown.await;
                draining.store(true, std::sync::atomic::Ordering::Relaxed);
                background.abort();
            })
            .await;
        stop.send_replace(true);
        if let Some(http) = http {
            let _ = http.await;
        }
        tracing::info!(%local_addr, "runtime stopped");
        Ok(())
    }
}

/// The names the runtime's certificate carries besides its SPIFFE ID: the host of its
/// advertised address.
fn certificate_names(advertise_address: Option<&str>) -> Vec<String> {
    advertise_address
        .and_then(|address| address.rsplit_once(':'))
        .map(|(host, _)| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        })
        .into_iter()
        .collect()
}

/// Issue the runtime's own identity, naming `names`.
fn runtime_identity(
    ca: &ClusterCa,
    runtime_id: &str,
    names: &[String],
) -> Result<crate::net::pki::Identity, PkiError> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    ca.issue_runtime_identity_naming(runtime_id, RUNTIME_CERT_TTL, &names)
}

/// Periodic work: delete expired hosts and state; re-issue the runtime's own certificate.
async fn maintenance(
    policy: Arc<Policy>,
    cert: Arc<CertSlot>,
    runtime_id: String,
    names: Vec<String>,
) {
    let mut cleanup = tokio::time::interval(CLEANUP_EVERY);
    let mut renew = tokio::time::interval(RUNTIME_CERT_RENEW);
    cleanup.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.tick().await;
    loop {
        tokio::select! {
            _ = cleanup.tick() => {
                match policy.store.cleanup().await {
                    Ok(stats) => tracing::debug!(hosts = stats.hosts, states = stats.states, "cleanup"),
                    Err(e) => tracing::warn!(error = %e, "cleanup failed"),
                }
                let now_ms = policy.store.options().clock.now_ms();
                crate::model::operations::prune_operations(&*policy.store, now_ms).await;
            }
            _ = renew.tick() => {
                match runtime_identity(&policy.ca, &runtime_id, &names) {
                    Ok(identity) => match cert.set(&identity) {
                        Ok(()) => tracing::info!("runtime certificate re-issued"),
                        Err(e) => tracing::error!(error = %e, "cannot install the re-issued runtime certificate"),
                    },
                    Err(e) => tracing::error!(error = %e, "cannot re-issue the runtime certificate"),
                }
            }
        }
    }
}

/// Connect to a running runtime and return the CA certificate its server certificate chains
/// to (DER), without trusting it yet: what `francis ca pin` shows and writes, so an operator
/// can compare its fingerprint with the one `francis ca print` gives on a trusted machine.
/// The runtime's certificate must carry a runtime identity and be signed by that CA.
pub async fn probe_ca(
    address: &str,
    limit: Duration,
) -> Result<rustls::pki_types::CertificateDer<'static>, RuntimeError> {
    crate::net::runtime::probe::probe_ca(address, limit)
        .await
        .map_err(|e| RuntimeError::Probe(format!("{address}: {e}")))
}

impl Runtime {
    /// Build a runtime from its YAML configuration (see [`config::RuntimeConfig::load`]).
    pub async fn from_config(config: &config::RuntimeConfig) -> Result<Runtime, RuntimeError> {
        RuntimeBuilder::from_config(config).await?.build().await
    }
}

impl RuntimeBuilder {
    /// A builder set up from the YAML configuration: every key maps to one builder call.
    pub async fn from_config(
        config: &config::RuntimeConfig,
    ) -> Result<RuntimeBuilder, RuntimeError> {
        let bind = match config.bind.socket_addr() {
            Some(addr) => addr,
            None => tokio::net::lookup_host((config.bind.host(), config.bind.port()))
                .await
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or_else(|| {
                    RuntimeError::Config(format!("bind: cannot resolve {}", config.bind))
                })?,
        };
        let mut builder = Runtime::builder()
            .bind(bind)
            .workload_cert_ttl(config.workload_cert_ttl)
            .health_check_deadline(config.health_check_deadline)
            .alarms_poll_interval(config.alarms_poll_interval)
            .alarms_lease_duration(config.alarms_lease_duration)
            .alarms_fetch_ahead(
                config.alarms_fetch_ahead_interval,
                config.alarms_fetch_ahead_batch_size,
            )
            .shutdown_grace_period(config.shutdown_grace_period)
            .request_timeout(config.request_timeout)
            .max_in_flight_requests(config.max_in_flight_requests)
            .max_request_body_size(config.max_request_body_size)
            .store_timeout(config.provider_options.timeout)
            .query_log(config.provider_options.query_log)
            .operation_log(config.provider_options.operation_log)
            .max_hosts(config.max_hosts)
            .http_bind(config.http.bind)
            .http_tls(config.http.tls)
            .profile(config.profile);
        builder.config_setup = Some(config.profile_setup(false));
        if let Some(id) = &config.runtime_id {
            builder = builder.runtime_id(id);
        }
        if let Some(address) = &config.advertise_address {
            builder = builder.advertise_address(address);
        }
        for psk in &config.runtime_psks {
            builder = builder.runtime_psk(psk.as_bytes());
        }
        builder = match &config.bootstrap {
            config::Bootstrap::Psk { host_psk } => builder.host_psk(host_psk.as_bytes()),
            config::Bootstrap::Jwt(jwt) => {
                let validator = jwt::JwtValidator::new(jwt.clone())
                    .map_err(|e| RuntimeError::Config(format!("bootstrap.jwt: {e}")))?;
                if let Err(e) = validator.refresh_jwks().await {
                    tracing::warn!(error = %e, "cannot fetch the JWKS yet; JWT bootstraps fail until it can be fetched");
                }
                builder.token_validator(Arc::new(validator))
            }
        };
        builder = match &config.provider {
            #[cfg(feature = "sqlite")]
            config::Provider::Sqlite { connection_string } => builder.sqlite(connection_string),
            #[cfg(feature = "postgres")]
            config::Provider::Postgres { connection_string } => builder.postgres(connection_string),
            config::Provider::Memory => builder.memory_store(),
            #[allow(unreachable_patterns)]
            other => {
                return Err(RuntimeError::Config(format!(
                    "provider.type: this build of francis has no {} store; build it with the \
                     cargo feature of that name",
                    other.kind()
                )));
            }
        };
        Ok(builder)
    }

    /// The UDP address to listen on (default `0.0.0.0:8443`).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The `host:port` address the runtime is reached at, when it is not the address it
    /// listens on (`advertiseAddress`): e.g. its Service's DNS name when it listens on
    /// `0.0.0.0`. It is named in the runtime's server certificate and returned by
    /// [`Runtime::advertise_address`]. Default: the listening address when that is a concrete
    /// IP address.
    pub fn advertise_address(mut self, address: impl Into<String>) -> Self {
        self.advertise_address = Some(address.into());
        self
    }

    /// This runtime's ID, in its certificate (default: a random UUID per process).
    pub fn runtime_id(mut self, id: impl Into<String>) -> Self {
        self.runtime_id = Some(id.into());
        self
    }

    /// Add a runtime PSK (at least 32 bytes); the first derives the signing CA, later ones are
    /// trusted too (rotation). Every replica of a cluster has the same list.
    pub fn runtime_psk(mut self, psk: impl AsRef<[u8]>) -> Self {
        self.psks.push(Psk::new(psk));
        self
    }

    /// Admit hosts that prove knowledge of this host bootstrap PSK (at least 16 bytes).
    pub fn host_psk(mut self, psk: impl AsRef<[u8]>) -> Self {
        self.set_bootstrap(Bootstrap::Psk(Psk::new(psk)));
        self
    }

    /// Admit hosts whose bearer token `validator` accepts (JWT bootstrap).
    pub fn token_validator(mut self, validator: Arc<dyn TokenValidator>) -> Self {
        self.set_bootstrap(Bootstrap::Token(validator));
        self
    }

    fn set_bootstrap(&mut self, bootstrap: Bootstrap) {
        if self.bootstrap.is_some() {
            self.errors.push(
                "more than one bootstrap method: configure exactly one of a host PSK or a token validator".into(),
            );
        }
        self.bootstrap = Some(bootstrap);
    }

    /// Keep the cluster's data in memory (lost when the runtime stops): for tests only.
    pub fn memory_store(mut self) -> Self {
        self.store = Some(StoreSpec::Memory);
        self
    }

    /// Keep the cluster's data in a SQLite file (one runtime only; not on a network filesystem).
    #[cfg(feature = "sqlite")]
    pub fn sqlite(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.store = Some(StoreSpec::Sqlite(path.into(), Default::default()));
        self
    }

    /// How hard the SQLite store pushes each commit to disk (default
    /// [`Synchronous::Normal`](crate::store::sqlite::Synchronous::Normal), which may lose the
    /// last commits on a power loss; [`Full`](crate::store::sqlite::Synchronous::Full) does
    /// not). Only for a SQLite store; call it after [`sqlite`](Self::sqlite).
    #[cfg(feature = "sqlite")]
    pub fn sqlite_synchronous(mut self, synchronous: crate::store::sqlite::Synchronous) -> Self {
        match &mut self.store {
            Some(StoreSpec::Sqlite(_, current)) => *current = synchronous,
            _ => self.errors.push(
                "sqlite_synchronous(..) applies to a SQLite store: call .sqlite(path) before it"
                    .into(),
            ),
        }
        self
    }

    /// Keep the cluster's data in PostgreSQL (what several runtime replicas share).
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.store = Some(StoreSpec::Postgres(url.into()));
        self
    }

    /// Use an already opened store.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(StoreSpec::Shared(store));
        self
    }

    /// Lifetime of the certificates issued to hosts (default 1 h; hosts renew at half-life).
    pub fn workload_cert_ttl(mut self, ttl: Duration) -> Self {
        self.settings.workload_cert_ttl = ttl;
        self
    }

    /// A host silent for this long is considered dead (default 20 s, more than 1 s).
    pub fn health_check_deadline(mut self, deadline: Duration) -> Self {
        self.settings.health_check_deadline = deadline;
        self
    }

    /// How often hosts poll for due alarms (default 1.5 s).
    pub fn alarms_poll_interval(mut self, interval: Duration) -> Self {
        self.settings.alarms_poll_interval = interval;
        self
    }

    /// How long an alarm lease lasts without renewal (default 20 s, at most
    /// [`MAX_ALARMS_LEASE_DURATION`]).
    pub fn alarms_lease_duration(mut self, lease: Duration) -> Self {
        self.settings.alarms_lease_duration = lease;
        self
    }

    /// How long running requests may take to finish at shutdown (default 30 s).
    pub fn shutdown_grace_period(mut self, grace: Duration) -> Self {
        self.settings.shutdown_grace_period = grace;
        self
    }

    /// How far ahead of now workers fetch due alarms, and how many one fetch leases at most
    /// (`alarmsFetchAheadInterval`, default 2.5 s, at most [`MAX_ALARMS_FETCH_AHEAD`];
    /// `alarmsFetchAheadBatchSize`, default 25, from 1 to [`MAX_ALARMS_FETCH_BATCH_SIZE`]).
    /// Workers receive both when they register.
    pub fn alarms_fetch_ahead(mut self, interval: Duration, batch_size: u32) -> Self {
        self.settings.alarms_fetch_ahead = interval;
        self.settings.alarms_batch_size = batch_size;
        self
    }

    /// How long a worker's request may take to arrive and its store operation to run
    /// (`requestTimeout`, default 15 s, the workers' own default).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.request_timeout = timeout;
        self
    }

    /// How many requests one worker may have open at once (`maxInFlightRequests`, default
    /// 100, from 1 to [`MAX_IN_FLIGHT_REQUESTS`](crate::host::MAX_IN_FLIGHT_REQUESTS)); a
    /// worker's further requests wait for one to finish.
    pub fn max_in_flight_requests(mut self, requests: usize) -> Self {
        self.settings.max_in_flight_requests = requests;
        self
    }

    /// The largest request a worker may send, in bytes (`maxRequestBodySize`, default 16 MiB,
    /// from 1 KiB to 16 MiB); a larger one is refused before it is read. It bounds the state
    /// an actor of the cluster can save.
    pub fn max_request_body_size(mut self, bytes: usize) -> Self {
        self.settings.max_request_body_size = bytes;
        self
    }

    /// How long one store operation may take (`provider.timeout`, default 5 s or half the
    /// health check deadline when that is shorter; less than the deadline). For the SQLite and
    /// PostgreSQL stores.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.settings.store_timeout = Some(timeout);
        self
    }

    /// Log each SQL statement of the store (`provider.queryLog`, default off).
    pub fn query_log(mut self, log: QueryLog) -> Self {
        self.settings.sql.query_log = log;
        self
    }

    /// Log each store operation with its duration (`provider.operationLog`, default off).
    pub fn operation_log(mut self, log: OperationLog) -> Self {
        self.settings.sql.operation_log = log;
        self
    }

    /// How long a new connection may take to register (default 10 s); a connection that does
    /// not is closed, so idle connections cannot hold the runtime's resources.
    pub fn registration_timeout(mut self, limit: Duration) -> Self {
        self.settings.registration_timeout = limit;
        self
    }

    /// Serve the operations HTTP endpoints (`/healthz`, `/readyz`, `/metrics`,
    /// `/api/cluster/state`) on `address` (`http.bind`). An address off loopback needs a
    /// bearer token in the environment (`FRANCIS_HTTP_TOKEN`, or the viewer and operator
    /// ones); the probes answer without one.
    pub fn http_bind(mut self, address: SocketAddr) -> Self {
        self.http_bind = Some(address);
        self
    }

    /// Serve the operations endpoints over TLS (`http.tls`), with the runtime's certificate
    /// (which then also names `localhost`, `127.0.0.1`, `::1` and the `http_bind` address), and
    /// accept client certificates of operator identities of the cluster CA (issued by
    /// `francis ca issue-operator`) as credentials: the role is the certificate's. Clients
    /// verify the server with the cluster CA (`francis ca print`).
    pub fn http_tls(mut self, tls: bool) -> Self {
        self.http_tls = tls;
        self
    }

    /// Cluster admission: at most `max_hosts` healthy hosts may be registered at once (default
    /// 0, unlimited). The runtime registers every worker with this value; the first host to
    /// join an empty cluster fixes it, so every runtime replica and every local host sharing the
    /// store must be given the same. A worker refused because the cluster is full retries with
    /// backoff (within its runtime connect timeout while it starts).
    pub fn max_hosts(mut self, max_hosts: u32) -> Self {
        self.settings.max_hosts = max_hosts;
        self
    }

    /// Use this clock for the store's notion of time (tests).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The security profile (the configuration's `profile`). Default: the environment
    /// variable `FRANCIS_PROFILE`, else [`Profile::Dev`]. With [`Profile::Prod`],
    /// [`build`](Self::build) fails with [`RuntimeError::Profile`], listing each problem and
    /// its fix, if the store is in memory, the operations server has no token
    /// (`FRANCIS_HTTP_TOKEN`...) nor TLS, a PSK is the published development key, or (from a
    /// configuration file) a PSK is written in the file or the JWKS URL is plain http. With
    /// `Dev`, it logs one warning naming those it allows.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// Check the configuration, derive the CA, open (and migrate) the store, and bind the
    /// socket. Must be called inside a Tokio runtime.
    pub async fn build(self) -> Result<Runtime, RuntimeError> {
        let RuntimeBuilder {
            bind,
            advertise_address,
            runtime_id,
            psks,
            bootstrap,
            store,
            mut settings,
            clock,
            http_bind,
            http_tls,
            profile,
            config_setup,
            mut errors,
        } = self;
        // An unknown FRANCIS_PROFILE is a mistake even where the code chose the profile.
        let profile = match Profile::from_env() {
            Ok(from_env) => profile.or(from_env).unwrap_or_default(),
            Err(e) => {
                errors.push(e.to_string());
                profile.unwrap_or_default()
            }
        };
        if psks.is_empty() {
            errors.push(format!(
                "no runtime PSK: add at least one secret of {} or more bytes (runtimePSKs)",
                crate::net::pki::MIN_PSK_LEN
            ));
        }
        match &bootstrap {
            None => errors.push(
                "no bootstrap method: give hosts a way to join (bootstrap.method psk with bootstrap.hostPSK, or jwt)".into(),
            ),
            Some(Bootstrap::Psk(psk)) if psk.len() < MIN_HOST_PSK_LEN => errors.push(format!(
                "the host bootstrap PSK is {} bytes; it must be at least {MIN_HOST_PSK_LEN} bytes",
                psk.len()
            )),
            _ => {}
        }
        let bind_text = bind.to_string();
        for psk in &psks {
            errors.extend(crate::net::development_psk_problem(
                psk.as_bytes(),
                [bind_text.as_str()],
                "runtime PSK",
                "FRANCIS_RUNTIME_PSK",
            ));
        }
        if let Some(Bootstrap::Psk(psk)) = &bootstrap {
            errors.extend(crate::net::development_psk_problem(
                psk.as_bytes(),
                [bind_text.as_str()],
                "host bootstrap PSK",
                "FRANCIS_HOST_BOOTSTRAP_PSK",
            ));
        }
        if settings.alarms_lease_duration > MAX_ALARMS_LEASE_DURATION {
            errors.push(format!(
                "the alarms lease duration is {:?}; it must be at most {:?} (default 20 s)",
                settings.alarms_lease_duration, MAX_ALARMS_LEASE_DURATION
            ));
        }
        if settings.health_check_deadline <= Duration::from_secs(1) {
            errors.push("the health check deadline must be more than 1 s (default 20 s)".into());
        }
        settings.sql.timeout = settings
            .store_timeout
            .unwrap_or_else(|| default_store_timeout(settings.health_check_deadline));
        errors.extend(settings.problems());
        let advertise_address = match advertise_address {
            Some(address) => {
                errors.extend(advertise_address_problem(&address));
                Some(address)
            }
            None => None,
        };
        if store.is_none() {
            errors.push(
                "no store: choose sqlite (one runtime), postgres (replicas) or memory (tests)"
                    .into(),
            );
        }
        let runtime_id = runtime_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if let Err(e) = crate::net::pki::SpiffeId::runtime(&runtime_id) {
            errors.push(e.to_string());
        }
        let ca = match ClusterCa::from_psks(&psks) {
            Ok(ca) => Some(ca),
            Err(e) => {
                if !psks.is_empty() {
                    errors.push(e.to_string());
                }
                None
            }
        };
        let (Some(ca), Some(bootstrap), true) = (ca, bootstrap, errors.is_empty()) else {
            return Err(RuntimeError::Config(errors.join("; ")));
        };
        let mut development_psks = Vec::new();
        if psks.iter().any(|psk| is_development_psk(psk.as_bytes())) {
            development_psks.push(PskKind::Runtime);
        }
        if matches!(&bootstrap, Bootstrap::Psk(psk) if is_development_psk(psk.as_bytes())) {
            development_psks.push(PskKind::HostBootstrap);
        }
        profile.enforce(&Setup {
            memory_store: matches!(store, Some(StoreSpec::Memory)),
            operations_api: http_bind.map(|address| Endpoint {
                address,
                authenticated: http_tls || crate::http::token_in_env(),
            }),
            development_psks,
            ..config_setup.unwrap_or_default()
        })?;
        let clock = clock.unwrap_or_else(|| Arc::new(SystemClock));
        let options = StoreOptions {
            clock: clock.clone(),
            health_check_deadline: settings.health_check_deadline,
        };
        let store = store
            .ok_or_else(|| RuntimeError::Config("no store".into()))?
            .open(options, settings.sql)
            .await?;
        check_cluster_identity(store.as_ref(), &ca)
            .await
            .map_err(|e| RuntimeError::Config(e.to_string()))?;
        // A listening address that is a concrete IP is where the runtime is reached, unless
        // told otherwise; the certificate names its host.
        let mut names = match &advertise_address {
            Some(address) => certificate_names(Some(address)),
            None if !bind.ip().is_unspecified() => vec![bind.ip().to_string()],
            None => Vec::new(),
        };
        // Clients of the operations server over TLS call it by one of these.
        if let (true, Some(http)) = (http_tls, http_bind) {
            let mut extra = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            if !http.ip().is_unspecified() {
                extra.push(http.ip().to_string());
            }
            for name in extra {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let identity = runtime_identity(&ca, &runtime_id, &names)?;
        let cert = CertSlot::new(&identity)?;
        let policy = Arc::new(Policy {
            store,
            ca,
            bootstrap,
            hosts: HostSettings {
                workload_cert_ttl: settings.workload_cert_ttl,
                health_check_deadline: settings.health_check_deadline,
                alarms_poll_interval: settings.alarms_poll_interval,
                alarms_lease_duration: settings.alarms_lease_duration,
                max_hosts: settings.max_hosts,
                alarms_fetch_ahead: settings.alarms_fetch_ahead,
                alarms_batch_size: settings.alarms_batch_size,
            },
        });
        let server_settings = ServerSettings {
            registration_timeout: settings.registration_timeout,
            request_timeout: settings.request_timeout,
            store_timeout: settings.request_timeout,
            idle_timeout: settings.health_check_deadline,
            shutdown_grace_period: settings.shutdown_grace_period,
            max_in_flight_requests: settings.max_in_flight_requests,
            max_request_bytes: settings.max_request_body_size,
            connections: ConnectionLimits::default(),
        };
        let server = SessionServer::bind(
            bind,
            &policy.ca.trust(),
            cert.clone(),
            policy.clone(),
            server_settings,
        )
        .map_err(|e| match e {
            NetError::Bind { addr, source } => RuntimeError::Bind { addr, source },
            other => RuntimeError::Config(other.to_string()),
        })?;
        let ops = match http_bind {
            Some(address) => Some(
                ops::OpsServer::bind(
                    address,
                    http_tls.then(|| ops::OpsTls {
                        trust: policy.ca.trust(),
                        cert: cert.clone(),
                    }),
                )
                .await
                .map_err(|e| RuntimeError::Config(format!("http.bind: {e}")))?,
            ),
            None => None,
        };
        // The port of a listening address is known once the socket is bound.
        let advertise_address = advertise_address.or_else(|| {
            let local = server.local_addr();
            (!local.ip().is_unspecified()).then(|| local.to_string())
        });
        Ok(Runtime {
            server,
            runtime_id,
            advertise_address,
            cert,
            policy,
            ops,
            cert_names: names,
            profile,
        })
    }
}

impl Settings {
    /// What is wrong with the settings that have limits, if anything.
    fn problems(&self) -> Vec<String> {
        use crate::host::{MAX_IN_FLIGHT_REQUESTS, MAX_REQUEST_BODY_SIZE, MIN_REQUEST_BODY_SIZE};
        let mut problems = self.sql.problems(self.health_check_deadline);
        if self.alarms_fetch_ahead.is_zero() || self.alarms_fetch_ahead > MAX_ALARMS_FETCH_AHEAD {
            problems.push(format!(
                "the alarms fetch-ahead interval is {:?}; it must be more than zero and at most \
                 {MAX_ALARMS_FETCH_AHEAD:?} (default 2.5 s)",
                self.alarms_fetch_ahead
            ));
        }
        if !(1..=MAX_ALARMS_FETCH_BATCH_SIZE).contains(&self.alarms_batch_size) {
            problems.push(format!(
                "the alarms fetch batch size is {}; it must be 1 to {MAX_ALARMS_FETCH_BATCH_SIZE} \
                 (default 25)",
                self.alarms_batch_size
            ));
        }
        if self.request_timeout.is_zero() {
            problems.push(
                "the request timeout is zero; give a positive duration (default 15 s)".into(),
            );
        }
        if !(1..=MAX_IN_FLIGHT_REQUESTS).contains(&self.max_in_flight_requests) {
            problems.push(format!(
                "max in-flight requests is {}; it must be 1 to {MAX_IN_FLIGHT_REQUESTS} (default 100)",
                self.max_in_flight_requests
            ));
        }
        if !(MIN_REQUEST_BODY_SIZE..=MAX_REQUEST_BODY_SIZE).contains(&self.max_request_body_size) {
            problems.push(format!(
                "the max request body size is {} bytes; it must be 1 KiB to 16 MiB (default 16 MiB)",
                self.max_request_body_size
            ));
        }
        problems
    }
}

/// What is wrong with an advertised address, if anything.
fn advertise_address_problem(address: &str) -> Option<String> {
    let unspecified = address
        .rsplit_once(':')
        .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|host| host.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_unspecified());
    if !crate::net::is_host_port(address) {
        Some(format!(
            "the advertise address {address:?} is not host:port with a non-zero port, e.g. \
             \"runtime.example.com:7400\""
        ))
    } else if unspecified {
        Some(format!(
            "the advertise address {address:?} is the any-address, which nobody can reach; give \
             the address hosts use, e.g. the runtime's DNS name"
        ))
    } else {
        None
    }
}
