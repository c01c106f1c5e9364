//! The runtime's operations HTTP server (`http.bind`): `GET /healthz`, `GET /readyz` (the
//! store answers, the runtime is not draining), `GET /metrics` and `GET /api/cluster/state`,
//! behind the same guard as a host's control API (loopback, or a bearer token whose role is
//! high enough; the probes are open).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
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
use crate::http::ops::{
    READY_CHECK_LIMIT, caller_of, healthz, metrics_text, readiness_response, state_response,
};
use crate::http::{ControlApi, Principal};
use crate::model::Store;

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
}

/// The operations server, bound and not yet serving.
pub(crate) struct OpsServer {
    listener: TcpListener,
    api: ControlApi,
}

impl OpsServer {
    /// Bind `address`, refusing an address off loopback when the environment gives no token
    /// (`FRANCIS_HTTP_TOKEN`, `FRANCIS_HTTP_OPERATOR_TOKEN`, `FRANCIS_HTTP_VIEWER_TOKEN`).
    pub(crate) async fn bind(address: SocketAddr) -> Result<OpsServer, String> {
        let api = ControlApi::from_env().map_err(|e| e.to_string())?;
        let listener = api
            .clone()
            .bind(address)
            .await
            .map_err(|e| e.to_string())?
            .into_listener();
        Ok(OpsServer { listener, api })
    }

    /// Where it listens.
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
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
            .with_state(view);
        let app = self.api.protect(routes);
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
        "none",
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
