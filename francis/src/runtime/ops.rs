//! The runtime's operations HTTP server (`http.bind`): `GET /healthz`, `GET /readyz` (the
//! store answers, the runtime is not draining), `GET /metrics`, `GET /api/cluster/state`, and
//! the operators' actions with their audit trail (`crate::http::actions`, relayed to hosts
//! over the runtime's own peer link), and the fleet web UI (`GET /ui`, `crate::http::ui`),
//! behind the same guard as a host's control API (loopback, or a bearer token whose role is
//! high enough; the probes are open).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ConnectInfo;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::{DefaultBodyLimit, Query};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::actor::service::{Readiness, ReadinessCheck};
use axum::Extension;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::cluster::{
    ClusterWatch, NodeKind, NodeRef, Observations, RuntimeObservation, Thresholds, compute,
    hosts_of,
};
use crate::http::actions::{self, ActionNode, AuditParams, DeadLetterParams, Relay};
use crate::http::auth::ClientIdentity;
use crate::http::ops::{
    READY_CHECK_LIMIT, caller_of, healthz, metrics_text, principal_of, readiness_response,
    state_response,
};
use crate::http::{ControlApi, Principal};
use crate::model::Store;
use crate::net::peer::PeerClient;
use crate::net::pki::{OPERATOR_PREFIX, spiffe_id_of};
use crate::net::tls::{self, CertSlot, ClientAuth, Trust};

/// What the operations endpoints read of a runtime.
#[derive(Clone)]
pub(crate) struct RuntimeView {
    pub store: Arc<dyn Store>,
    pub runtime_id: String,
    /// The address hosts reach the runtime at.
    pub address: String,
    /// Set once the runtime begins to shut down.
    pub draining: Arc<AtomicBool>,
    /// What the runtime remembers of the cluster between looks.
    pub watch: Arc<ClusterWatch>,
    /// The health-check deadline the lifecycle thresholds derive from.
    pub health_check_deadline: std::time::Duration,
    /// The runtime's peer link to hosts, for operators' actions (`None` if it could not be
    /// set up).
    pub peers: Option<PeerClient>,
    /// The security profile the runtime runs under.
    pub profile: crate::profile::Profile,
}

impl RuntimeView {
    /// The runtime as the node that takes operators' actions.
    fn action_node(&self) -> ActionNode {
        ActionNode {
            store: self.store.clone(),
            node: NodeRef::new(
                NodeKind::Runtime,
                self.runtime_id.clone(),
                self.address.clone(),
            ),
            prod: self.profile == crate::profile::Profile::Prod,
            relay: Relay::Runtime(self.peers.clone()),
            timeline: {
                let watch = self.watch.clone();
                Arc::new(move |event| watch.record(event))
            },
        }
    }
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// The operations server, bound and not yet serving.
pub(crate) struct OpsServer {
    listener: TcpListener,
    api: ControlApi,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// TLS for the operations server: the runtime's certificate, and client certificates of
/// operator identities (`spiffe://francis/operator/<role>/<name>`) of the cluster CA.
pub(crate) struct OpsTls {
    pub trust: Trust,
    pub cert: Arc<CertSlot>,
}

impl OpsServer {
    /// Bind `address`. Without TLS, an address off loopback needs a token in the environment
    /// (`FRANCIS_HTTP_TOKEN`, `FRANCIS_HTTP_OPERATOR_TOKEN`, `FRANCIS_HTTP_VIEWER_TOKEN`); with
    /// TLS, client certificates authenticate callers too, and any address is allowed.
    pub(crate) async fn bind(
        address: SocketAddr,
        tls: Option<OpsTls>,
    ) -> Result<OpsServer, String> {
        let api = ControlApi::from_env().map_err(|e| e.to_string())?;
        let tls = match tls {
            Some(OpsTls { trust, cert }) => {
                let mut config =
                    tls::server_config(&trust, cert, OPERATOR_PREFIX, ClientAuth::Optional)
                        .map_err(|e| format!("cannot set up TLS: {e}"))?;
                config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                Some(Arc::new(config))
            }
            None => None,
        };
        let listener = if tls.is_some() {
            TcpListener::bind(address).await.map_err(|e| {
                format!("cannot listen on {address}: {e}; is another process using it?")
            })?
        } else {
            api.clone()
                .bind(address)
                .await
                .map_err(|e| e.to_string())?
                .into_listener()
        };
        Ok(OpsServer { listener, api, tls })
    }

    /// Where it listens.
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether it speaks TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serve until `shutdown` completes.
    pub(crate) async fn serve(
        self,
        view: RuntimeView,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let routes = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .route("/api/cluster/state", get(cluster_state))
            .route("/api/cluster/actions/preflight", post(preflight))
            .route("/api/cluster/actions/dispatch", post(dispatch))
            .route("/api/cluster/audit", get(audit))
            .route("/api/cluster/dead-letters", get(dead_letters))
            .layer(DefaultBodyLimit::max(actions::MAX_ACTION_BODY_BYTES + 1))
            .merge(crate::http::ui::routes())
            .with_state(view);
        let api = if self.tls.is_some() {
            self.api.clone().serving_tls()
        } else {
            self.api.clone()
        };
        let app = api.protect(routes);
        match self.tls {
            None => {
                if let Err(e) = axum::serve(
                    self.listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
                {
                    tracing::error!(error = %e, "the operations HTTP server failed");
                }
            }
            Some(config) => serve_tls(self.listener, config, app, shutdown).await,
        }
    }
}

/// Accept TLS connections until `shutdown`, each served on its own task with its peer's
/// address and, when it presented one, its verified operator identity.
async fn serve_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "the operations server could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "operations TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "operations TLS handshake timed out");
                    return;
                }
            };
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| spiffe_id_of(leaf.as_ref()).ok())
                .and_then(|id| ClientIdentity::of(&id));
            let mut app = app.layer(Extension(ConnectInfo(peer)));
            if let Some(identity) = identity {
                app = app.layer(Extension(identity));
            }
            let service = hyper_util::service::TowerToHyperService::new(app);
            let served =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "operations connection ended with an error");
            }
        });
    }
}

async fn cluster_state(
    State(view): State<RuntimeView>,
    principal: Option<Extension<Principal>>,
) -> Response {
    let observation = match view.store.observe_cluster().await {
        Ok(observation) => observation,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": format!("cannot observe the cluster: {e}; is the store reachable? (GET /readyz tells)"), "code": "store_unavailable"})),
            )
                .into_response();
        }
    };
    let now_ms = view.store.options().clock.now_ms();
    let hosts = hosts_of(&observation);
    let departures = view.watch.observe(now_ms, &hosts);
    let mut observations = Observations::new(
        now_ms,
        NodeRef::new(
            NodeKind::Runtime,
            view.runtime_id.clone(),
            view.address.clone(),
        ),
        view.profile.as_str(),
    );
    observations.caller = caller_of(principal.as_ref().map(|Extension(p)| p));
    observations.hosts = hosts;
    observations.recent_departures = departures;
    observations.events = view.watch.events();
    observations.runtimes = vec![RuntimeObservation {
        id: view.runtime_id.clone(),
        address: view.address.clone(),
        version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        last_seen_ms: Some(now_ms),
        trusted: Some(true),
    }];
    state_response(&compute(
        &observations,
        &Thresholds::from_deadline(view.health_check_deadline),
    ))
}

async fn preflight(
    State(view): State<RuntimeView>,
    principal: Option<Extension<Principal>>,
    body: Bytes,
) -> Response {
    actions::preflight_response(&view.action_node(), &body, &principal_of(principal)).await
}

async fn dispatch(
    State(view): State<RuntimeView>,
    principal: Option<Extension<Principal>>,
    body: Bytes,
) -> Response {
    actions::dispatch_response(&view.action_node(), &body, &principal_of(principal)).await
}

async fn audit(State(view): State<RuntimeView>, Query(params): Query<AuditParams>) -> Response {
    actions::audit_response(&view.action_node(), params).await
}

async fn dead_letters(
    State(view): State<RuntimeView>,
    Query(params): Query<DeadLetterParams>,
) -> Response {
    actions::dead_letters_response(&view.action_node(), params).await
}

async fn readyz(State(view): State<RuntimeView>) -> Response {
    readiness_response(readiness(&view).await)
}

/// Whether the runtime can serve hosts: it is not draining, and its store answers.
pub(crate) async fn readiness(view: &RuntimeView) -> Readiness {
    let draining = view.draining.load(Ordering::Relaxed);
    let mut checks = vec![ReadinessCheck {
        name: "not_shutting_down",
        ok: !draining,
        detail: if draining {
            "the runtime is shutting down".to_owned()
        } else {
            format!(
                "runtime {} serving hosts at {}",
                view.runtime_id, view.address
            )
        },
    }];
    let answer = tokio::time::timeout(READY_CHECK_LIMIT, view.store.list_hosts()).await;
    checks.push(ReadinessCheck {
        name: "store_reachable",
        ok: matches!(answer, Ok(Ok(_))),
        detail: match answer {
            Ok(Ok(hosts)) => format!("the store answered: {} healthy hosts", hosts.len()),
            Ok(Err(e)) => format!("the store failed: {e}"),
            Err(_) => format!("the store did not answer within {READY_CHECK_LIMIT:?}"),
        },
    });
    Readiness {
        ready: checks.iter().all(|c| c.ok),
        checks,
    }
}
