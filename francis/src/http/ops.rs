//! The operations endpoints a host's control server adds to the curl API, and that the
//! runtime's HTTP server serves too: `GET /healthz` (alive), `GET /readyz` (able to take
//! calls), `GET /metrics` (Prometheus text) and `GET /api/cluster/state` (the cluster state
//! view).

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::actor::service::{Readiness, Service};
use crate::telemetry::{metrics, prometheus};

/// How long `/readyz` waits for the store (or runtime) to answer.
pub(crate) const READY_CHECK_LIMIT: Duration = Duration::from_secs(2);

/// The host's operations routes.
pub(super) fn routes() -> Router<Service> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
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
/// scrape switches on the timing of calls (see [`metrics::timing_enabled`]).
pub(crate) async fn metrics_text() -> Response {
    metrics::enable_timing();
    (
        StatusCode::OK,
        [(CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        prometheus::render(metrics::metrics()),
    )
        .into_response()
}
