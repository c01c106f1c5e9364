//! Building a [`Host`]: [`HostBuilder<Local>`] for a host of the local topology (it opens the
//! cluster's store itself) and [`HostBuilder<Remote>`] for a worker of the remote topology (it
//! joins a runtime). Settings that only one topology takes exist only on its builder, so using
//! the wrong one is a compile error; the rest are checked together by `build()`, which reports
//! every problem at once.
//!
//! A worker keeps no store (the runtime owns it):
//!
//! ```compile_fail
//! let builder = francis::Host::remote().memory_store();
//! ```
//!
//! and a local host joins no runtime:
//!
//! ```compile_fail
//! let builder = francis::Host::local().runtime_address("127.0.0.1:7400");
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::certificate::{LocalCertificate, Validity};
use super::core::{AppData, CoreParts, HostCore};
use super::options::{
    ActorOptions, HostTimings, MAX_ALARMS_FETCH_AHEAD, MAX_IN_FLIGHT_REQUESTS,
    MAX_REQUEST_BODY_SIZE, MIN_REQUEST_BODY_SIZE,
};
use super::peer_calls::PeerCalls;
use super::registry::{ActorTypeEntry, Registry, registry};
use super::{Host, MIN_PSK_LEN};
use crate::actor::dispatch::Actor;
use crate::actor::service::Topology;
use crate::clock::{SharedClock, SystemClock};
use crate::error::Error;
use crate::model::{HostId, HostRegistration, Store, StoreOptions};
use crate::net::identity::check_cluster_identity;
use crate::net::peer::{PeerClient, PeerLimits, PeerServer};
use crate::net::pki::{ClusterCa, Psk};
use crate::net::runtime::bootstrap::MIN_HOST_PSK_LEN;
use crate::net::runtime::client::{Credential, LinkOptions, RuntimeLink};
use crate::net::tls::{CertSlot, Trust};
use crate::net::{development_psk_problem, is_development_psk, is_host_port};
use crate::profile::{Profile, PskKind, Setup};
use crate::store::{OperationLog, QueryLog, SqlOptions, StoreSpec, default_store_timeout};

/// What a host of the local topology is built with: its store and the runtime PSKs.
pub struct Local {
    store: Option<StoreSpec>,
    /// How a SQL store bounds and logs its operations.
    sql: SqlOptions,
    /// The store timeout given (`None`: the default for the health check deadline).
    store_timeout: Option<Duration>,
    psks: Vec<Psk>,
    /// Whether the host listens for peers and calls them.
    network: bool,
    /// How long its own certificates last (re-issued at half-life while it runs).
    validity: Validity,
    /// Cluster admission: how many healthy hosts the cluster admits (0 = unlimited).
    max_hosts: u32,
}

impl Default for Local {
    fn default() -> Self {
        Local {
            store: None,
            sql: SqlOptions::default(),
            store_timeout: None,
            psks: Vec::new(),
            network: true,
            validity: Validity::default(),
            max_hosts: 0,
        }
    }
}

/// What a worker of the remote topology is built with: its runtimes, its bootstrap credential
/// and the decision to pin the cluster CA.
#[derive(Default)]
pub struct Remote {
    runtime_addresses: Vec<String>,
    credentials: Vec<Credential>,
    pinned_ca: Option<String>,
    unsafe_no_pin: bool,
    connect_timeout: Option<Duration>,
}

/// Builds a [`Host`] of the local topology ([`Host::local`]) or a worker of the remote one
/// ([`Host::remote`]). Errors are collected and reported together by `build()`.
#[must_use = "a host builder does nothing until `.build().await`"]
pub struct HostBuilder<T = Local> {
    address: Option<String>,
    /// Where the peer server listens, when not at `address`.
    bind: Option<String>,
    types: Vec<ActorTypeEntry>,
    timings: HostTimings,
    peer_limits: PeerLimits,
    clock: Option<SharedClock>,
    app_data: AppData,
    /// The profile chosen in code (`None`: `FRANCIS_PROFILE`, else dev).
    profile: Option<Profile>,
    /// Whether `dev` keeps its warning to itself (the test host, in memory by design).
    quiet_profile: bool,
    errors: Vec<String>,
    topology: T,
}

impl<T: Default> HostBuilder<T> {
    pub(super) fn new() -> Self {
        HostBuilder {
            address: None,
            bind: None,
            types: Vec::new(),
            timings: HostTimings::default(),
            peer_limits: PeerLimits::default(),
            clock: None,
            app_data: AppData::new(),
            profile: None,
            quiet_profile: false,
            errors: Vec::new(),
            topology: T::default(),
        }
    }
}

impl<T> HostBuilder<T> {
    /// The `host:port` address other hosts use to reach this one (required, with a non-zero
    /// port): what the host registers in the cluster. The peer server also listens there,
    /// unless [`bind`](Self::bind) says otherwise.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// Where the peer server listens (UDP), as `host:port`, when that is not the advertised
    /// [`address`](Self::address): e.g. `0.0.0.0:7571` in a container whose address other
    /// hosts know as `10.1.2.3:7571`, or behind a port mapping. Default: the address. The port
    /// must not be 0: the advertised address could not name the port picked.
    pub fn bind(mut self, bind: impl Into<String>) -> Self {
        self.bind = Some(bind.into());
        self
    }

    /// Register actor type `A` with default options.
    pub fn register<A: Actor>(self) -> Self {
        self.register_with::<A>(ActorOptions::default())
    }

    /// Register actor type `A` with options.
    pub fn register_with<A: Actor>(mut self, options: ActorOptions) -> Self {
        self.add_type(ActorTypeEntry::new::<A>(options));
        self
    }

    /// Register actor type `A` as a singleton: the cluster runs one instance, at ID
    /// [`SINGLETON_ID`](crate::host::SINGLETON_ID), which never idles out. Each activation
    /// of it runs its `#[bootstrap]` hook first, with `bootstrap_data`; when this host is ready
    /// it activates the instance through placement (so it runs wherever the cluster places
    /// it), trying up to 5 times. Reach it with `service.actor::<A>(SINGLETON_ID)`.
    pub fn register_singleton<A: Actor>(self, bootstrap_data: &impl serde::Serialize) -> Self {
        self.register_singleton_with::<A>(bootstrap_data, ActorOptions::default().never_idle())
    }

    /// [`register_singleton`](Self::register_singleton) with options.
    pub fn register_singleton_with<A: Actor>(
        mut self,
        bootstrap_data: &impl serde::Serialize,
        options: ActorOptions,
    ) -> Self {
        let mut entry = ActorTypeEntry::new::<A>(options);
        if let Err(problem) = entry.singleton(bootstrap_data) {
            self.errors.push(problem);
        }
        self.add_type(entry);
        self
    }

    /// Register a built-in actor ([`crate::builtin`]): its actor types, under
    /// `francis.builtin.<kind>.<name>`, with the settings it was configured with. Invalid
    /// settings fail `build()` with the others.
    pub fn builtin(mut self, builtin: impl crate::builtin::BuiltIn) -> Self {
        let registration = crate::builtin::Registration::of(builtin);
        self.errors.extend(registration.errors);
        for entry in registration.types {
            self.add_type(entry);
        }
        crate::builtin::add_configs(&mut self.app_data, registration.configs);
        self
    }

    /// Add a type, checking its options and that its name is new.
    fn add_type(&mut self, entry: ActorTypeEntry) {
        if let Err(e) = entry.options.validate(entry.name) {
            self.errors.push(e.to_string());
        }
        if self.types.iter().any(|t| t.name == entry.name) {
            self.errors.push(format!(
                "actor type {:?} is registered twice; register each type once",
                entry.name
            ));
        }
        if let Some((group, limit)) = &entry.options.capacity_group
            && let Some(other) = self.types.iter().find(|t| {
                t.options
                    .capacity_group
                    .as_ref()
                    .is_some_and(|(g, l)| g == group && l != limit)
            })
        {
            self.errors.push(format!(
                "capacity group {group:?} has limit {limit} for actor type {:?} but another \
                 for {:?}; give every type of a group the same limit",
                entry.name, other.name
            ));
        }
        self.types.push(entry);
    }

    /// How long running turns may take to finish at shutdown or halt before they are
    /// cancelled (default 30 s).
    pub fn shutdown_grace_period(mut self, grace: Duration) -> Self {
        self.timings.shutdown_grace_period = grace;
        self
    }

    /// The timeout of requests between processes (the runtime's `requestTimeout`; default
    /// [`DEFAULT_CALL_TIMEOUT`](crate::host::DEFAULT_CALL_TIMEOUT), 15 s; must be more than
    /// zero):
    /// - how long a call forwarded to another host may wait for its reply before it fails with
    ///   [`Error::Timeout`]. The deadline travels with the call, so the
    ///   owner gives up too. A call can set its own:
    ///   [`ActorRef::with_timeout`](crate::ActorRef::with_timeout),
    ///   [`InvokeOptions::timeout`](crate::actor::InvokeOptions::timeout);
    /// - how long dialling another host may take;
    /// - on a worker, how long one request to the runtime may take.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        if timeout.is_zero() {
            self.errors
                .push("request timeout is zero; give a positive deadline (default 15 s)".into());
        }
        self.timings.request_timeout = timeout;
        self
    }

    /// The former name of [`request_timeout`](Self::request_timeout), with the same effect.
    pub fn call_timeout(self, timeout: Duration) -> Self {
        self.request_timeout(timeout)
    }

    /// How many calls one other host may have running on this host at once (the runtime's
    /// `maxInFlightRequests`; default
    /// [`DEFAULT_MAX_IN_FLIGHT_REQUESTS`](crate::host::DEFAULT_MAX_IN_FLIGHT_REQUESTS), 100;
    /// from 1 to [`MAX_IN_FLIGHT_REQUESTS`]). A call
    /// beyond it is answered `overloaded` before its body is read, and the caller retries.
    pub fn max_in_flight_requests(mut self, calls: usize) -> Self {
        if calls == 0 || calls > MAX_IN_FLIGHT_REQUESTS {
            self.errors.push(format!(
                "max_in_flight_requests is {calls}; give 1 to {MAX_IN_FLIGHT_REQUESTS} (default 100)"
            ));
        }
        self.peer_limits.max_in_flight = calls;
        self
    }

    /// The largest call another host may send, in bytes (the runtime's `maxRequestBodySize`;
    /// default [`DEFAULT_MAX_REQUEST_BODY_SIZE`](crate::host::DEFAULT_MAX_REQUEST_BODY_SIZE),
    /// 16 MiB; from [`MIN_REQUEST_BODY_SIZE`], 1 KiB, to
    /// [`MAX_REQUEST_BODY_SIZE`], 16 MiB, the largest frame
    /// of the wire protocol). A larger request is refused before it is read.
    pub fn max_request_body_size(mut self, bytes: usize) -> Self {
        if !(MIN_REQUEST_BODY_SIZE..=MAX_REQUEST_BODY_SIZE).contains(&bytes) {
            self.errors.push(format!(
                "max_request_body_size is {bytes} bytes; give {MIN_REQUEST_BODY_SIZE} (1 KiB) to \
                 {MAX_REQUEST_BODY_SIZE} (16 MiB)"
            ));
        }
        self.peer_limits.max_request_bytes = bytes;
        self
    }

    /// Share a value with every actor: `ctx.data::<T>()` in `activate` returns it. One value
    /// per type; a second call with the same type replaces the first.
    pub fn data<D: Send + Sync + 'static>(mut self, value: D) -> Self {
        self.app_data
            .insert(std::any::TypeId::of::<D>(), Arc::new(value));
        self
    }

    /// Use this clock instead of the system clock (for tests; see `francis::testing`).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The security profile. Default: the environment variable `FRANCIS_PROFILE`, else
    /// [`Profile::Dev`]; an unknown value of the variable fails `build()`, even when this is
    /// called. With [`Profile::Prod`], `build()` fails with [`Error::Profile`], listing each
    /// problem and its fix, if the store is in memory ([`memory_store`](HostBuilder::memory_store)),
    /// the worker does not pin the cluster CA
    /// ([`unsafe_no_pinned_ca`](HostBuilder::unsafe_no_pinned_ca)), or a PSK is the published
    /// [`DEVELOPMENT_PSK`](crate::host::DEVELOPMENT_PSK). With `Dev`, it logs one warning
    /// naming those it allows.
    ///
    /// A builder cannot tell a PSK written in the code from one read from a secret: read them
    /// from the environment or a file yourself. A store given with `.store(..)` is not
    /// checked, and a control API server is checked where it is bound
    /// (`francis::http::ControlApi::bind`).
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// Keep `dev`'s warning to itself: for the test host, which is in memory by design.
    pub(crate) fn quiet_profile(mut self) -> Self {
        self.quiet_profile = true;
        self
    }

    /// The profile to build with: the one chosen, else `FRANCIS_PROFILE`, else dev. An unknown
    /// `FRANCIS_PROFILE` is a problem even when the code chose.
    fn resolve_profile(&mut self) -> Profile {
        let profile = match Profile::from_env() {
            Ok(from_env) => self.profile.or(from_env).unwrap_or_default(),
            Err(e) => {
                self.errors.push(e.to_string());
                self.profile.unwrap_or_default()
            }
        };
        // Kept: the running host reports it and its actions follow it.
        self.profile = Some(profile);
        profile
    }

    /// Refuse what `profile` refuses of `setup`; in dev, warn once of what it allows (unless
    /// quiet).
    fn enforce_profile(&self, profile: Profile, setup: &Setup) -> Result<(), Error> {
        if self.quiet_profile {
            profile.check(setup)?;
        } else {
            profile.enforce(setup)?;
        }
        Ok(())
    }

    /// Check what both topologies need; the registration, where to listen, and the clock to
    /// build with.
    fn check_common(&mut self) -> (HostRegistration, String, SharedClock) {
        let address = match self.address.take() {
            Some(address) => {
                if !is_host_port(&address) {
                    self.errors.push(format!(
                        "address {address:?} is not host:port with a non-zero port, e.g. \"127.0.0.1:7571\""
                    ));
                }
                address
            }
            None => {
                self.errors.push("no address: call .address(\"127.0.0.1:7571\") with the host:port peers use to reach this host".into());
                String::new()
            }
        };
        let bind = match self.bind.take() {
            Some(bind) => {
                if !is_host_port(&bind) {
                    self.errors.push(format!(
                        "bind {bind:?} is not host:port with a non-zero port, e.g. \"0.0.0.0:7571\" (the advertised address names the port, so it cannot be picked at random)"
                    ));
                }
                bind
            }
            None => address.clone(),
        };
        let registration = HostRegistration {
            address,
            actor_types: self
                .types
                .iter()
                .map(ActorTypeEntry::registration)
                .collect(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            // A local host sets its own; a runtime sets it for the workers it registers.
            max_hosts: 0,
        };
        let clock = self.clock.take().unwrap_or_else(|| Arc::new(SystemClock));
        (registration, bind, clock)
    }

    /// The collected problems as one error, if any.
    fn problems(&mut self) -> Result<(), Error> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(std::mem::take(&mut self.errors).join("; ")))
        }
    }
}

impl HostBuilder<Local> {
    /// Keep state and alarms in memory only (lost when the process exits): for tests and
    /// throwaway single-host setups.
    pub fn memory_store(mut self) -> Self {
        self.topology.store = Some(StoreSpec::Memory);
        self
    }

    /// Keep state and alarms in a SQLite file (created, and migrated, if needed).
    #[cfg(feature = "sqlite")]
    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.topology.store = Some(StoreSpec::Sqlite(path.into(), Default::default()));
        self
    }

    /// How hard the SQLite store pushes each commit to disk (default
    /// [`Synchronous::Normal`](crate::store::sqlite::Synchronous::Normal): WAL mode synced at
    /// checkpoints, so a power loss or OS crash may undo the last commits;
    /// [`Full`](crate::store::sqlite::Synchronous::Full) syncs every commit). Only for a SQLite
    /// store; call it after [`sqlite`](Self::sqlite).
    #[cfg(feature = "sqlite")]
    pub fn sqlite_synchronous(mut self, synchronous: crate::store::sqlite::Synchronous) -> Self {
        match &mut self.topology.store {
            Some(StoreSpec::Sqlite(_, current)) => *current = synchronous,
            _ => self.errors.push(
                "sqlite_synchronous(..) applies to a SQLite store: call .sqlite(\"data.db\") before it"
                    .into(),
            ),
        }
        self
    }

    /// Keep state and alarms in a PostgreSQL database (migrated if needed): what hosts on
    /// several machines share to form one cluster.
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.topology.store = Some(StoreSpec::Postgres(url.into()));
        self
    }

    /// Use an already opened store (its clock and health deadline are used).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.topology.store = Some(StoreSpec::Shared(store));
        self
    }

    /// Add a runtime pre-shared key (at least 32 bytes). The first key derives the cluster CA
    /// that secures host-to-host traffic; later keys are trusted too, for rotation.
    pub fn runtime_psk(mut self, psk: impl AsRef<[u8]>) -> Self {
        self.topology.psks.push(Psk::new(psk));
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

    /// Cluster admission: at most `max_hosts` healthy hosts may be registered at once (default
    /// 0, unlimited). The first host to join an empty cluster fixes the value; while any host
    /// is healthy, a host configured with another value is refused
    /// ([`StoreError::MaxHostsMismatch`](crate::model::StoreError::MaxHostsMismatch)), and a
    /// host joining a full cluster gets
    /// [`StoreError::ClusterFull`](crate::model::StoreError::ClusterFull). Give every host of
    /// the cluster the same value.
    pub fn max_hosts(mut self, max_hosts: u32) -> Self {
        self.topology.max_hosts = max_hosts;
        self
    }

    /// How far ahead of now each alarm poll fetches due alarms, and how many it leases at most
    /// (the runtime's `alarmsFetchAheadInterval` and `alarmsFetchAheadBatchSize`; defaults
    /// [`DEFAULT_ALARMS_FETCH_AHEAD`](crate::host::DEFAULT_ALARMS_FETCH_AHEAD), 2.5 s, and
    /// [`DEFAULT_ALARMS_FETCH_BATCH_SIZE`](crate::host::DEFAULT_ALARMS_FETCH_BATCH_SIZE), 25).
    /// The interval is more than zero and at most
    /// [`MAX_ALARMS_FETCH_AHEAD`], 1 minute; the batch at
    /// least 1. A worker of the remote topology takes both from its runtime.
    pub fn alarms_fetch_ahead(mut self, interval: Duration, batch_size: u32) -> Self {
        self.timings.alarms_fetch_ahead = interval;
        self.timings.alarms_batch_size = batch_size;
        self
    }

    /// How long one store operation may take (the runtime's `provider.timeout`; default
    /// [`DEFAULT_STORE_TIMEOUT`](crate::store::DEFAULT_STORE_TIMEOUT), 5 s, or half the health
    /// check deadline when that is shorter; it must be less than the deadline). For the SQLite
    /// and PostgreSQL stores; see [`SqlOptions::timeout`].
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.topology.store_timeout = Some(timeout);
        self
    }

    /// Log each SQL statement of the store (the runtime's `provider.queryLog`; default off).
    /// Bound values are never logged. For the SQLite and PostgreSQL stores.
    pub fn query_log(mut self, log: QueryLog) -> Self {
        self.topology.sql.query_log = log;
        self
    }

    /// Log each store operation with its duration (the runtime's `provider.operationLog`;
    /// default off). For the SQLite and PostgreSQL stores.
    pub fn operation_log(mut self, log: OperationLog) -> Self {
        self.topology.sql.operation_log = log;
        self
    }

    /// Do not listen for peers or call them (a host that is alone by construction, as in
    /// `francis::testing`).
    pub(crate) fn without_network(mut self) -> Self {
        self.topology.network = false;
        self
    }

    /// How long this host's own certificates are valid, and the clock-skew allowance added on
    /// both sides (defaults: 90 days and 5 minutes). The host re-issues its certificate at
    /// half its remaining life while it runs. For tests that watch a certificate expire.
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn certificate_validity(mut self, lifetime: Duration, clock_skew: Duration) -> Self {
        self.topology.validity = Validity {
            lifetime,
            skew: clock_skew,
        };
        self
    }

    /// Check the configuration, open the store, and register the host in the cluster.
    pub async fn build(mut self) -> Result<Host, Error> {
        let (mut registration, bind, clock) = self.check_common();
        let profile = self.resolve_profile();
        let Local {
            store,
            mut sql,
            store_timeout,
            psks,
            network,
            validity,
            max_hosts,
        } = std::mem::take(&mut self.topology);
        registration.max_hosts = max_hosts;
        sql.timeout = store_timeout
            .unwrap_or_else(|| default_store_timeout(self.timings.health_check_deadline));
        check_local(&store, &psks, &self.timings, &mut self.errors);
        self.errors
            .extend(sql.problems(self.timings.health_check_deadline));
        // Where the host listens and where it is reached must both be loopback for the
        // development key.
        self.errors.extend(psks.iter().filter_map(|psk| {
            development_psk_problem(
                psk.as_bytes(),
                [registration.address.as_str(), bind.as_str()],
                "runtime PSK",
                "FRANCIS_RUNTIME_PSK",
            )
        }));
        if let Some(problem) = validity.problem() {
            self.errors.push(problem);
        }
        self.problems()?;
        let development_psks = if psks.iter().any(|psk| is_development_psk(psk.as_bytes())) {
            vec![PskKind::Runtime]
        } else {
            Vec::new()
        };
        self.enforce_profile(
            profile,
            &Setup {
                memory_store: matches!(store, Some(StoreSpec::Memory)),
                development_psks,
                ..Setup::default()
            },
        )?;
        let options = StoreOptions {
            clock,
            health_check_deadline: self.timings.health_check_deadline,
        };
        let store = store
            .ok_or_else(|| Error::Config("no store".into()))?
            .open(options, sql)
            .await?;
        let ca = ClusterCa::from_psks(&psks).map_err(|e| Error::Config(e.to_string()))?;
        check_cluster_identity(store.as_ref(), &ca)
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        let host_id = store.register_host(&registration).await?;
        // A local host certifies itself with the CA its PSKs derive, and renews the
        // certificate itself while it runs.
        let (tls, certificate) = if network {
            let certificate = match LocalCertificate::issue(ca.clone(), &host_id, validity) {
                Ok(certificate) => certificate,
                Err(e) => {
                    let _ = store.unregister_host(&host_id).await;
                    return Err(Error::Config(e.to_string()));
                }
            };
            (Some((ca.trust(), certificate.slot())), Some(certificate))
        } else {
            (None, None)
        };
        let assembly = Assembly {
            store,
            host_id,
            registration,
            bind,
            tls,
            link: None,
            ca: Some(ca),
            certificate,
        };
        assembly.start(self).await
    }
}

impl HostBuilder<Remote> {
    /// A runtime this worker may connect to (`host:port`); call it once per replica. The
    /// worker connects to one at a time, starting at a random one, and rolls over to the next
    /// with backoff when it fails.
    pub fn runtime_address(mut self, address: impl Into<String>) -> Self {
        self.topology.runtime_addresses.push(address.into());
        self
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
        let psk = Psk::new(psk);
        if psk.len() < MIN_HOST_PSK_LEN {
            self.errors.push(format!(
                "the host bootstrap PSK is {} bytes; it must be at least {MIN_HOST_PSK_LEN} bytes",
                psk.len(),
            ));
        }
        self.topology.credentials.push(Credential::Psk(psk));
        self
    }

    /// Join with this JWT (a bearer token: pin the CA so it cannot be shown to an impostor).
    pub fn host_bootstrap_jwt(mut self, token: impl Into<String>) -> Self {
        self.topology
            .credentials
            .push(Credential::Jwt(token.into()));
        self
    }

    /// Join with the JWT in this file, read again at every bootstrap so rotated tokens (e.g.
    /// Kubernetes projected service-account tokens) are picked up.
    pub fn host_bootstrap_jwt_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.topology
            .credentials
            .push(Credential::JwtFile(path.into()));
        self
    }

    /// Trust only runtimes whose certificate chains to this CA (the PEM that
    /// `francis ca print` writes; several CAs may be concatenated). Recommended.
    pub fn pinned_ca(mut self, pem: impl Into<String>) -> Self {
        self.topology.pinned_ca = Some(pem.into());
        self
    }

    /// Trust the first runtime reached without checking its certificate, and from then on the
    /// CA bundle it sends. Only for local testing: with a PSK the runtime still has to prove
    /// it knows the PSK, but a JWT would be handed to whoever answers.
    pub fn unsafe_no_pinned_ca(mut self) -> Self {
        self.topology.unsafe_no_pin = true;
        self
    }

    /// Give up building if no runtime accepts this worker within `limit` (default: keep
    /// trying, logging each failure). Refusals that retrying cannot fix (a wrong credential,
    /// an unpinned CA) fail at once either way.
    pub fn runtime_connect_timeout(mut self, limit: Duration) -> Self {
        self.topology.connect_timeout = Some(limit);
        self
    }

    /// Check the configuration, connect to a runtime and register there; the runtime's
    /// settings (health deadline, alarm polling and leases) then govern this worker.
    pub async fn build(mut self) -> Result<Host, Error> {
        let (registration, bind, clock) = self.check_common();
        let profile = self.resolve_profile();
        let remote = std::mem::take(&mut self.topology);
        check_remote(&remote, &mut self.errors);
        for credential in &remote.credentials {
            if let Credential::Psk(psk) = credential {
                let addresses = [registration.address.as_str(), bind.as_str()]
                    .into_iter()
                    .chain(remote.runtime_addresses.iter().map(String::as_str));
                self.errors.extend(development_psk_problem(
                    psk.as_bytes(),
                    addresses,
                    "host bootstrap PSK",
                    "FRANCIS_HOST_BOOTSTRAP_PSK",
                ));
            }
        }
        self.problems()?;
        let development_psks = remote
            .credentials
            .iter()
            .filter(|c| matches!(c, Credential::Psk(psk) if is_development_psk(psk.as_bytes())))
            .map(|_| PskKind::HostBootstrap)
            .collect();
        self.enforce_profile(
            profile,
            &Setup {
                unpinned_ca: remote.unsafe_no_pin,
                development_psks,
                ..Setup::default()
            },
        )?;
        let pinned = match &remote.pinned_ca {
            Some(pem) => Some(
                Trust::from_pem(pem)
                    .map_err(|e| Error::Config(format!("the pinned CA is not usable PEM: {e}")))?,
            ),
            None => None,
        };
        let credential = remote
            .credentials
            .into_iter()
            .next()
            .ok_or_else(|| Error::Config("no bootstrap credential".into()))?;
        let established = RuntimeLink::connect(LinkOptions {
            runtime_addresses: remote.runtime_addresses,
            credential,
            pinned,
            registration: registration.clone(),
            clock,
            connect_timeout: remote.connect_timeout,
            request_timeout: self.timings.request_timeout,
        })
        .await
        .map_err(|e| Error::Bootstrap(e.to_string()))?;
        // The runtime's settings govern every host of the cluster.
        self.timings.health_check_deadline = established.health_check_deadline;
        self.timings.alarms_poll_interval = established.alarms_poll_interval;
        self.timings.alarms_lease_duration = established.alarms_lease_duration;
        if let Some(fetch_ahead) = established.alarms_fetch_ahead {
            self.timings.alarms_fetch_ahead = fetch_ahead;
        }
        if let Some(batch_size) = established.alarms_batch_size {
            self.timings.alarms_batch_size = batch_size;
        }
        let assembly = Assembly {
            store: Arc::new(established.link.clone()),
            host_id: established.host_id,
            registration,
            bind,
            tls: Some((established.trust, established.identity)),
            link: Some(established.link),
            ca: None,
            certificate: None,
        };
        assembly.start(self).await
    }
}

/// A registered host's parts, ready to be put together.
struct Assembly {
    store: Arc<dyn Store>,
    host_id: HostId,
    registration: HostRegistration,
    /// Where the peer server listens.
    bind: String,
    /// The trust and identity of the peer transport (`None`: no networking).
    tls: Option<(Trust, Arc<CertSlot>)>,
    link: Option<RuntimeLink>,
    ca: Option<ClusterCa>,
    /// A local host's own certificate, which it renews.
    certificate: Option<Arc<LocalCertificate>>,
}

impl Assembly {
    /// Build the core and, with networking, start listening for peers. On failure the host
    /// leaves the cluster again.
    async fn start<T>(self, builder: HostBuilder<T>) -> Result<Host, Error> {
        let Assembly {
            store,
            host_id,
            registration,
            bind,
            tls,
            link,
            ca,
            certificate,
        } = self;
        let HostBuilder {
            types,
            timings,
            peer_limits,
            app_data,
            profile,
            ..
        } = builder;
        let request_timeout = timings.request_timeout;
        let clock = store.options().clock.clone();
        tracing::info!(host = %host_id, address = %registration.address, types = registration.actor_types.len(), "host registered");
        let types: Registry = registry(types).map_err(Error::Config)?;
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
            profile: profile.unwrap_or_default(),
        };
        let Some((trust, identity)) = tls else {
            return Ok(Host {
                core: HostCore::new(parts(None)),
                peer_server: None,
                ca: None,
                link,
                identity: None,
                certificate: None,
            });
        };
        let peering = Peering {
            bind: &bind,
            dial_timeout: request_timeout,
            liveness,
            limits: peer_limits,
        };
        match start_peering(&trust, identity.clone(), peering, parts).await {
            Ok((core, peer_server)) => Ok(Host {
                core,
                peer_server: Some(peer_server),
                ca,
                link,
                identity: Some(identity),
                certificate,
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
    psks: &[Psk],
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
    if timings.alarms_fetch_ahead.is_zero() || timings.alarms_fetch_ahead > MAX_ALARMS_FETCH_AHEAD {
        errors.push(format!(
            "alarms fetch-ahead interval is {:?}; give more than zero and at most 1 minute (default 2.5 s)",
            timings.alarms_fetch_ahead
        ));
    }
    if timings.alarms_batch_size == 0 {
        errors.push("alarms fetch batch size is 0; give at least 1 (default 25)".into());
    }
    if store.is_none() {
        errors.push(
            "no store: call .sqlite(\"data.db\") for durable state, or .memory_store() for tests"
                .into(),
        );
    }
}

/// What a remote host's configuration must hold.
fn check_remote(remote: &Remote, errors: &mut Vec<String>) {
    if remote.runtime_addresses.is_empty() {
        errors.push("no runtime address: call .runtime_address(\"127.0.0.1:7400\") (once per runtime replica)".into());
    }
    for address in &remote.runtime_addresses {
        if !is_host_port(address) {
            errors.push(format!(
                "runtime address {address:?} is not host:port with a non-zero port, e.g. \"127.0.0.1:7400\""
            ));
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

/// How a host takes part in peering: where it listens, and its transport's deadlines and
/// limits.
struct Peering<'a> {
    /// Where the peer server listens (`host:port`).
    bind: &'a str,
    /// How long dialling another host may take.
    dial_timeout: Duration,
    /// How soon a crashed peer must be noticed.
    liveness: Duration,
    limits: PeerLimits,
}

/// Build the core with a peer client, and start listening for peers.
async fn start_peering(
    trust: &Trust,
    identity: Arc<CertSlot>,
    peering: Peering<'_>,
    parts: impl FnOnce(Option<PeerClient>) -> CoreParts,
) -> Result<(Arc<HostCore>, PeerServer), Error> {
    let Peering {
        bind: address,
        dial_timeout,
        liveness,
        limits,
    } = peering;
    let bind: SocketAddr = tokio::net::lookup_host(address)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            Error::Config(format!(
                "address {address:?} does not resolve to a socket address"
            ))
        })?;
    let client = PeerClient::new(trust, identity.clone(), dial_timeout, liveness)
        .map_err(|e| Error::Config(e.to_string()))?;
    let core = HostCore::new(parts(Some(client)));
    let handler = Arc::new(PeerCalls::new(core.clone()));
    let draining = core.draining();
    let server = PeerServer::bind(bind, trust, identity, handler, limits, draining)
        .map_err(|e| Error::Config(format!("cannot listen for peers on {address}: {e}")))?;
    Ok((core, server))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StoreError;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn local_hosts_register_their_version_and_are_admitted_up_to_max_hosts() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(StoreOptions {
            clock: Arc::new(SystemClock),
            health_check_deadline: Duration::from_secs(20),
        }));
        let host = |address: &str, max_hosts: u32| {
            crate::Host::local()
                .address(address)
                .runtime_psk([7u8; MIN_PSK_LEN])
                .store(store.clone())
                .max_hosts(max_hosts)
                .without_network()
                .build()
        };
        let _first = host("admission-test:1", 1).await.unwrap();
        let observed = store.observe_cluster().await.unwrap();
        assert_eq!(observed.max_hosts, Some(1));
        assert_eq!(
            observed.hosts[0].version.as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        let full = host("admission-test:2", 1).await.unwrap_err();
        assert!(
            matches!(full, Error::Store(StoreError::ClusterFull { max_hosts: 1 })),
            "{full}"
        );
        let mismatch = host("admission-test:2", 2).await.unwrap_err();
        assert!(
            matches!(
                mismatch,
                Error::Store(StoreError::MaxHostsMismatch {
                    stored: 1,
                    configured: 2
                })
            ),
            "{mismatch}"
        );
    }
}
