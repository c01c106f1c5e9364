//! One process's actor host: [`Host::local()`] or [`Host::remote()`] builds it ([`builder`]),
//! [`Host::service`] hands out the [`Service`], and [`Host::run`] drives the background work
//! (heartbeats, alarms, idle deactivation, cleanup) until shutdown.

mod activation;
pub(crate) mod alarms;
pub mod builder;
mod certificate;
pub(crate) mod core;
mod links;
pub(crate) mod loops;
mod options;
mod peer_calls;
mod placement;
mod reachability;
pub(crate) mod registry;
pub(crate) mod singletons;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use self::core::HostCore;
use self::loops::{cleanup_loop, heartbeat_loop, idle_loop, stopped};
use crate::actor::service::Service;
use crate::error::Error;
use crate::model::{Store, StoreError};
use crate::net::peer::PeerServer;
use crate::net::pki::ClusterCa;
use crate::net::runtime::client::RuntimeLink;
use crate::net::tls::CertSlot;

pub use self::builder::{HostBuilder, Local, Remote};
pub use self::loops::shutdown_signal;
pub use self::options::{
    ActorOptions, DEFAULT_ALARMS_FETCH_AHEAD, DEFAULT_ALARMS_FETCH_BATCH_SIZE,
    DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_IN_FLIGHT_REQUESTS, DEFAULT_MAX_REQUEST_BODY_SIZE,
    MAX_ALARMS_FETCH_AHEAD, MAX_IN_FLIGHT_REQUESTS, MAX_REQUEST_BODY_SIZE, MIN_REQUEST_BODY_SIZE,
};
pub use self::reachability::UnreachablePeer;
pub use self::singletons::{BOOTSTRAP_ATTEMPTS, SINGLETON_ID};
pub use crate::net::pki::{DEVELOPMENT_PSK, MIN_PSK_LEN};
pub use crate::store::{OperationLog, QueryLog};

/// A running actor host.
pub struct Host {
    core: Arc<HostCore>,
    peer_server: Option<PeerServer>,
    ca: Option<ClusterCa>,
    /// The runtime link of a remote host.
    link: Option<RuntimeLink>,
    /// This host's workload identity (renewed in place: by the runtime link on a remote host,
    /// by [`certificate`](Self::certificate) on a local one).
    identity: Option<Arc<CertSlot>>,
    /// A local host's own certificate, re-issued at half-life while the host runs.
    certificate: Option<Arc<self::certificate::LocalCertificate>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("host_id", &self.core.host_id)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Start building a host of the local topology: it embeds its store (in-memory, a SQLite
    /// file or a PostgreSQL database shared with the other hosts) and coordinates through it.
    pub fn local() -> HostBuilder<Local> {
        HostBuilder::new()
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
    pub fn remote() -> HostBuilder<Remote> {
        HostBuilder::new()
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
    /// skew allowance). Every host renews it at half its lifetime (a remote host from its
    /// runtime, a local host from its own CA while [`run`](Self::run) runs), so this moves
    /// forward. `None` for a host without networking.
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

    /// The address the peer server listens on (`None` for a host without networking): the
    /// builder's `bind`, or its `address` when no `bind` was given.
    pub fn peer_address(&self) -> Option<SocketAddr> {
        self.peer_server.as_ref().map(PeerServer::local_addr)
    }

    /// The address other hosts are told to reach this one at: the builder's `address`, as
    /// registered in the cluster.
    pub fn advertised_address(&self) -> &str {
        &self.core.address
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
        let singletons = tokio::spawn(singletons::bootstrap_singletons(core.clone()));
        let renewal = self
            .certificate
            .take()
            .map(|certificate| tokio::spawn(certificate.renew_until_stopped(stop_rx.clone())));
        let result = tokio::select! {
            _ = shutdown => Ok(()),
            failure = heartbeat_loop(core.clone(), self.link.clone()) => Err(failure),
        };
        tracing::info!(host = %core.host_id, "host shutting down");
        core.begin_shutdown();
        singletons.abort();
        let _ = stop_tx.send(true);
        for task in [alarms, idle, cleanup].into_iter().chain(renewal) {
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
