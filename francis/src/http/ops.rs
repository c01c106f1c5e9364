//! The operations endpoints a host's control server adds to the curl API, and that the
//! runtime's HTTP server serves too: `GET /healthz` (alive), `GET /readyz` (able to take
//! calls), `GET /metrics` (Prometheus text), `GET /api/cluster/state` (the cluster state
//! view), the operators' actions with their audit trail ([`super::actions`]), and the fleet
//! web UI that shows and takes them (`GET /ui`, [`super::ui`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::{DefaultBodyLimit, Query};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::actions::{self, ActionNode, AuditParams, DeadLetterParams, Relay};
use super::auth::Principal;
use crate::actor::service::{Readiness, Service};
use crate::cluster::{Caller, ClusterState, NodeKind, NodeRef};
use crate::error::Error;
use crate::telemetry::{metrics, prometheus};

/// How long `/readyz` waits for the store (or runtime) to answer.
pub(crate) const READY_CHECK_LIMIT: Duration = Duration::from_secs(2);

/// The host's operations routes.
pub(super) fn routes() -> Router<Service> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/api/cluster/state", get(cluster_state))
        .route("/api/cluster/actions/preflight", post(preflight))
        .route("/api/cluster/actions/dispatch", post(dispatch))
        .route("/api/cluster/audit", get(audit))
        .route("/api/cluster/dead-letters", get(dead_letters))
        .layer(DefaultBodyLimit::max(actions::MAX_ACTION_BODY_BYTES + 1))
        .merge(super::ui::routes())
}

/// The actions of this service's host, or the answer that says why it has none.
fn action_node(service: &Service) -> Result<ActionNode, actions::Problem> {
    let Some(status) = service.host_status() else {
        return Err(actions::problem(
            StatusCode::NOT_FOUND,
            "no_host_status",
            "this control server is not bound to one host, so it takes no cluster actions".into(),
        ));
    };
    if status.topology == crate::actor::service::Topology::Remote {
        return Err(actions::problem(
            StatusCode::CONFLICT,
            "served_by_runtime",
            "this host belongs to the remote topology: the runtime's operations server (http.bind) takes cluster actions".into(),
        ));
    }
    Ok(ActionNode {
        store: service.handle().store().clone(),
        node: NodeRef::new(NodeKind::Host, status.host_id, status.address),
        prod: status.profile == crate::profile::Profile::Prod,
        relay: Relay::Host(service.clone()),
        timeline: {
            let service = service.clone();
            Arc::new(move |event| service.record_event(event))
        },
    })
}

/// The principal the guard found (a server without a guard has none: loopback).
pub(crate) fn principal_of(principal: Option<Extension<Principal>>) -> Principal {
    principal.map_or_else(
        || Principal {
            name: crate::cluster::actions::UNAUTHENTICATED.to_owned(),
            role: crate::cluster::Role::Admin,
        },
        |Extension(p)| p,
    )
}

async fn preflight(
    State(service): State<Service>,
    principal: Option<Extension<Principal>>,
    body: Bytes,
) -> Response {
    match action_node(&service) {
        Ok(node) => actions::preflight_response(&node, &body, &principal_of(principal)).await,
        Err(problem) => problem.into_response(),
    }
}

async fn dispatch(
    State(service): State<Service>,
    principal: Option<Extension<Principal>>,
    body: Bytes,
) -> Response {
    match action_node(&service) {
        Ok(node) => actions::dispatch_response(&node, &body, &principal_of(principal)).await,
        Err(problem) => problem.into_response(),
    }
}

async fn audit(State(service): State<Service>, Query(params): Query<AuditParams>) -> Response {
    match action_node(&service) {
        Ok(node) => actions::audit_response(&node, params).await,
        Err(problem) => problem.into_response(),
    }
}

async fn dead_letters(
    State(service): State<Service>,
    Query(params): Query<DeadLetterParams>,
) -> Response {
    match action_node(&service) {
        Ok(node) => actions::dead_letters_response(&node, params).await,
        Err(problem) => problem.into_response(),
    }
}

/// The caller of a request as the state view names it: the principal the guard found.
pub(crate) fn caller_of(principal: Option<&Principal>) -> Option<Caller> {
    principal.map(|p| Caller::new(p.name.clone(), p.role))
}

async fn cluster_state(
    State(service): State<Service>,
    principal: Option<Extension<Principal>>,
) -> Response {
    let caller = caller_of(principal.as_ref().map(|Extension(p)| p));
    match service.cluster_state(caller).await {
        Some(Ok(state)) => state_response(&state),
        Some(Err(Error::Config(message))) => (
            StatusCode::CONFLICT,
            axum::Json(json!({"error": message, "code": "served_by_runtime"})),
        )
            .into_response(),
        Some(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": format!("cannot observe the cluster: {e}; is the store reachable? (GET /readyz tells)"), "code": "store_unavailable"})),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "this control server is not bound to one host, so it has no cluster view", "code": "no_host_status"})),
        )
            .into_response(),
    }
}

/// A state view as `GET /api/cluster/state` answers it.
pub(crate) fn state_response(state: &ClusterState) -> Response {
    (StatusCode::OK, axum::Json(state)).into_response()
}

/// `GET /healthz`: the process is alive and serving HTTP.
pub(crate) async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

async fn readyz(State(service): State<Service>) -> Response {
    readiness_response(service.readiness(READY_CHECK_LIMIT).await)
}

/// `GET /readyz`'s answer: 200 with the checks when ready, else 503 with them.
pub(crate) fn readiness_response(readiness: Readiness) -> Response {
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(readiness)).into_response()
}

/// `GET /metrics`: every metric of the process, in the Prometheus text format. The first
/// scrape switches on the per-call series (see [`metrics::calls_observed`]).
pub(crate) async fn metrics_text() -> Response {
    metrics::observe_calls();
    (
        StatusCode::OK,
        [(CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        prometheus::render(metrics::metrics()),
    )
        .into_response()
}
