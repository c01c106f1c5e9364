//! An HTTP control server for any cluster: the curl API of the docs, as an axum [`Router`]
//! behind a guard.
//! Enable the `http` feature. It is a bridge: it calls actors untyped, by type, ID and method,
//! with JSON bodies.
//!
//! | Route | Body | Does |
//! |---|---|---|
//! | `POST /invoke/{type}/{id}/{method}` | method arguments as JSON | invoke (activates on demand) |
//! | `POST /peek/{type}/{id}/{method}` | method arguments as JSON | invoke a read (`&self`) method only |
//! | `POST /halt/{type}/{id}` | — | halt the actor if active on this host |
//! | `POST /halt-all` | — | halt every actor on this host |
//! | `POST /alarm/{type}/{id}/{name}` | `{"dueTime", "interval", "ttl", "data", "handler"}` | set an alarm |
//! | `DELETE /alarm/{type}/{id}/{name}` | — | delete an alarm |
//! | `POST /jobs/{type}/{id}/{method}` | the job's payload as JSON; options in the query (`after`, `at`, `every`, `cron`, `ttl`, `until`, `key`) | dispatch a durable job: `202 {"jobId"}` |
//! | `GET /jobs/{job_id}`, `GET /jobs/{type}/{id}` | — | a job, an actor's jobs |
//! | `DELETE /jobs/{type}/{id}/{job_id}` | — | cancel a pending job |
//! | `GET`, `DELETE /jobs/dead-letters[/{id}]`, `POST /jobs/dead-letters/{id}/retry`, `POST /jobs/dead-letters/purge?olderThan=7d` | — | the dead letters of jobs |
//! | `GET /status` | — | this host: `{"hostId", "address", "activeActors", "topology", "unreachablePeers"?}` ([`HostStatus`]) |
//! | `GET /ui` | — | the fleet web UI: the cluster's topology, timeline and operators' actions, in a browser |
//!
//! Arguments: a method with one parameter takes the JSON value itself (`{"In": 42}`), several
//! parameters take a JSON array, none takes an empty body. Errors come back as
//! `{"error": "...", "code": "..."}`, plus `"actorError"` (the actor's own error value) when the
//! actor method returned an error.
//!
//! ## Who may call it
//!
//! Every request passes a guard first ([`ControlApi`] configures it), so that a web page open
//! in the developer's browser cannot use the API, and a stranger on the network cannot either:
//!
//! - every method but GET, HEAD and OPTIONS needs `Content-Type: application/json`, even with
//!   an empty body (else 415): a page of another site can send a form or `text/plain` POST
//!   without asking, but not a JSON one;
//! - a request with an `Origin` (a browser's) must come from the server's own origin or an
//!   allowed one (else 403);
//! - the `Host` it is addressed to must be loopback (`localhost`, 127.0.0.0/8, `[::1]`, any
//!   port) or an allowed host name (else 403; none at all is 400): this stops DNS rebinding;
//! - with a bearer token configured, every request needs `Authorization: Bearer <token>`
//!   (else 401). A server off loopback must have one: [`ControlApi::bind`] refuses to listen
//!   on such an address without it.
//!
//! ```sh
//! curl -X POST localhost:8080/invoke/counter/alice/increment \
//!   -H 'Content-Type: application/json' --data '{"In": 42}'
//! ```
//!
//! [`router`] is the defaults (loopback, same origin, no token), for a server on loopback;
//! [`ControlApi::from_env`] adds the token of `FRANCIS_HTTP_TOKEN` when it is set.

pub(crate) mod actions;
pub(crate) mod auth;
mod guard;
mod jobs;
pub(crate) mod ops;
mod server;
pub(crate) mod ui;

pub use auth::{Principal, Role};
pub use guard::{HttpToken, InvalidToken, TOKEN_ENV};
pub use jobs::{MAX_JOB_BODY_BYTES, MAX_JOB_QUERY_BYTES};
#[cfg(feature = "runtime")]
pub(crate) use server::token_in_env;
pub use server::{
    ControlApi, ControlApiError, ControlListener, OPERATOR_TOKEN_ENV, VIEWER_TOKEN_ENV,
};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::actor::alarm::{AlarmSpec, Due, Ttl};
use crate::actor::service::{HostStatus, InvokeOptions, Service};
use crate::error::Error;
use crate::model::{Envelope, StoreError};
use crate::time::{Interval, parse_duration, parse_timestamp};

/// The control API routes, bound to a service, behind the default guard: for a server on a
/// loopback address (requests addressed to a loopback `Host`, from no origin or the server's
/// own, with a JSON content type when they change something). For a token, other hosts or
/// origins, or to have the address checked, use [`ControlApi`].
pub fn router(service: Service) -> Router {
    ControlApi::new().router(service)
}

/// The routes, unguarded.
fn routes(service: Service) -> Router {
    Router::new()
        .route("/invoke/{actor_type}/{id}/{method}", post(invoke))
        .route("/peek/{actor_type}/{id}/{method}", post(peek))
        .route("/halt/{actor_type}/{id}", post(halt))
        .route("/halt-all", post(halt_all))
        .route(
            "/alarm/{actor_type}/{id}/{name}",
            post(set_alarm).delete(delete_alarm),
        )
        .route("/status", get(status))
        .merge(jobs::routes())
        .merge(ops::routes())
        .with_state(service)
}

/// `GET /status`: the host behind this service, as [`HostStatus`] JSON. Tools poll it to show
/// hosts and their load (`francis dev` does).
async fn status(State(service): State<Service>) -> Response {
    match service.host_status() {
        Some(status) => (StatusCode::OK, axum::Json::<HostStatus>(status)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "this control server is not bound to one host, so it has no status to report", "code": "no_host_status"})),
        )
            .into_response(),
    }
}

async fn invoke(
    State(service): State<Service>,
    Path((ty, id, method)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    call(&service, &ty, &id, &method, body, InvokeOptions::default()).await
}

async fn peek(
    State(service): State<Service>,
    Path((ty, id, method)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    call(
        &service,
        &ty,
        &id,
        &method,
        body,
        InvokeOptions {
            read_only: true,
            ..InvokeOptions::default()
        },
    )
    .await
}

async fn call(
    service: &Service,
    ty: &str,
    id: &str,
    method: &str,
    body: Bytes,
    options: InvokeOptions,
) -> Response {
    let args = Envelope::from_json_bytes(body.to_vec());
    match service
        .invoke_with(ty, id, method, args, options)
        .await
        .and_then(|out| Ok(out.to_json()?))
    {
        Ok(value) => (StatusCode::OK, axum::Json(value)).into_response(),
        Err(e) => error_response(e),
    }
}

async fn halt(State(service): State<Service>, Path((ty, id)): Path<(String, String)>) -> Response {
    match service.halt(&ty, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(e),
    }
}

async fn halt_all(State(service): State<Service>) -> Response {
    match service.halt_all().await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(e),
    }
}

/// The alarm body of the docs: `dueTime` (RFC 3339 or Unix ms; default now), `interval` (Go
/// duration or ISO 8601; default none), `ttl` (RFC 3339 deadline, or a duration after the due
/// time), `data` (any JSON), `handler` (the `#[alarm]` method; default: the one named like the
/// alarm, else the actor's only alarm handler).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmBody {
    #[serde(rename = "dueTime")]
    due_time: Option<Value>,
    interval: Option<String>,
    ttl: Option<String>,
    data: Option<Value>,
    handler: Option<String>,
}

async fn set_alarm(
    State(service): State<Service>,
    Path((ty, id, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let spec = match alarm_spec(&name, &body) {
        Ok(spec) => spec,
        Err(message) => return error_response(Error::InvalidAlarm(message)),
    };
    match service.set_alarm(&ty, &id, &name, spec).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(e),
    }
}

fn alarm_spec(name: &str, body: &[u8]) -> Result<AlarmSpec, String> {
    let body: AlarmBody = if body.iter().all(u8::is_ascii_whitespace) {
        AlarmBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| format!("the body is not a valid alarm ({e}); expected {{\"dueTime\", \"interval\", \"ttl\", \"data\", \"handler\"}}"))?
    };
    let mut spec = AlarmSpec::new(name);
    spec.handler = body.handler;
    spec.due = match body.due_time {
        None | Some(Value::Null) => Due::Now,
        Some(Value::Number(n)) => Due::AtMs(
            n.as_i64()
                .ok_or("dueTime must be whole Unix milliseconds")?,
        ),
        Some(Value::String(s)) => {
            Due::AtMs(parse_timestamp(&s).map_err(|e| format!("dueTime: {e}"))?)
        }
        Some(other) => {
            return Err(format!(
                "dueTime must be an RFC 3339 time or Unix milliseconds, not {other}"
            ));
        }
    };
    spec.interval = body
        .interval
        .map(|s| s.parse::<Interval>().map_err(|e| format!("interval: {e}")))
        .transpose()?;
    spec.ttl = match body.ttl {
        None => None,
        Some(s) => Some(match parse_timestamp(&s) {
            Ok(ms) => Ttl::UntilMs(ms),
            Err(_) => Ttl::For(
                parse_duration(&s)
                    .map_err(|e| format!("ttl must be an RFC 3339 time or a duration: {e}"))?,
            ),
        }),
    };
    spec.data = match body.data {
        None | Some(Value::Null) => None,
        Some(value) => Some(Envelope::json(&value).map_err(|e| e.to_string())?),
    };
    Ok(spec)
}

async fn delete_alarm(
    State(service): State<Service>,
    Path((ty, id, name)): Path<(String, String, String)>,
) -> Response {
    match service.delete_alarm(&ty, &id, &name).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => (StatusCode::NOT_FOUND, axum::Json(json!({"error": format!("no alarm {name:?} on {ty}/{id}"), "code": "alarm_not_found"}))).into_response(),
        Err(e) => error_response(e),
    }
}

/// The HTTP status and error code for a framework error.
fn classify(e: &Error) -> (StatusCode, &'static str) {
    match e {
        Error::UnknownActorType { .. } => (StatusCode::NOT_FOUND, "unknown_actor_type"),
        Error::UnknownMethod { .. } => (StatusCode::NOT_FOUND, "unknown_method"),
        Error::NotActive { .. } => (StatusCode::NOT_FOUND, "actor_not_active"),
        Error::NotHosted { .. } => (StatusCode::NOT_FOUND, "actor_not_hosted"),
        Error::NotInvokable { .. } | Error::NotReadOnly { .. } => {
            (StatusCode::BAD_REQUEST, "method_not_allowed")
        }
        Error::BadArguments { .. } | Error::Codec(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        Error::InvalidName { .. } | Error::InvalidAlarm(_) | Error::InvalidJob(_) => {
            (StatusCode::BAD_REQUEST, "bad_request")
        }
        Error::Actor(_) => (StatusCode::UNPROCESSABLE_ENTITY, "actor_error"),
        Error::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        // Routing failures are transient: the owner is restarting, draining or unreachable
        // for now, or the store is.
        Error::Halted { .. }
        | Error::NoHost { .. }
        | Error::ShuttingDown
        | Error::Unreachable { .. }
        | Error::Store(StoreError::Unavailable(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        Error::Remote { code, .. } => classify_remote(code),
        Error::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// The HTTP status and error code for a call that failed at or on the way to the owning host,
/// by the protocol code it failed with.
fn classify_remote(code: &str) -> (StatusCode, &'static str) {
    match code {
        // The owner could not be reached, is moving, or is someone else now: transient.
        "retry_later" | "host_draining" | "host_mismatch" | "actor_not_hosted"
        | "host_unregistered" | "no_host" | "overloaded" => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        "deadline_exceeded" => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        "bad_request" | "too_large" => (StatusCode::BAD_REQUEST, "bad_request"),
        // The reply was lost after the request went out (the call may have run), or the owner
        // failed: not this host's fault, and not safe to retry blindly.
        _ => (StatusCode::BAD_GATEWAY, "remote_failure"),
    }
}

fn error_response(e: Error) -> Response {
    let (status, code) = classify(&e);
    let mut body = json!({"error": e.to_string(), "code": code});
    if let Error::Actor(failure) = &e
        && let Ok(value) = failure.payload.to_json()
    {
        body["actorError"] = value;
    }
    if status.is_server_error() {
        tracing::warn!(error = %e, "control API request failed");
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Worth retrying: say when.
        return (status, [(RETRY_AFTER, "1")], axum::Json(body)).into_response();
    }
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use crate::testing::TestHost;

    struct Echo;

    #[crate::actor]
    impl Echo {
        fn activate(_ctx: &ActorContext) -> Self {
            Echo
        }

        pub async fn echo(&self, text: String) -> Result<String, String> {
            Ok(text)
        }
    }

    #[test]
    fn a_transient_routing_failure_answers_503_with_retry_after_never_500() {
        let key = crate::model::ActorKey::new("counter", "1");
        let remote = |code: &'static str| Error::Remote {
            key: key.clone(),
            address: "127.0.0.1:9".into(),
            code,
            message: "what the owner's host said".into(),
        };
        let transient = [
            remote("retry_later"),
            remote("host_draining"),
            remote("host_mismatch"),
            Error::Unreachable {
                key: key.clone(),
                address: "127.0.0.1:9".into(),
            },
            Error::NoHost {
                actor_type: "counter".into(),
            },
        ];
        for error in transient {
            let text = error.to_string();
            let response = error_response(error);
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{text}");
            assert_eq!(response.headers()[RETRY_AFTER], "1", "{text}");
        }
        // A reply lost after the request went out may have run: 502, no invitation to retry.
        let lost = error_response(remote("transport_failure"));
        assert_eq!(lost.status(), StatusCode::BAD_GATEWAY);
        assert!(lost.headers().get(RETRY_AFTER).is_none());
        assert_eq!(
            error_response(remote("deadline_exceeded")).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        let timeout = Error::Timeout {
            key: key.clone(),
            method: "increment".into(),
            timeout: std::time::Duration::from_secs(15),
        };
        assert_eq!(
            error_response(timeout).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
    }

    async fn status_of(service: &Service) -> Value {
        let response = status(State(service.clone())).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn status_reports_the_host_and_its_active_actors() {
        let host = TestHost::builder()
            .register::<Echo>()
            .build()
            .await
            .unwrap();
        let service = host.service();
        let before = status_of(&service).await;
        let id = before["hostId"].as_str().unwrap().to_owned();
        assert!(!id.is_empty(), "{before}");
        assert!(
            before["address"]
                .as_str()
                .unwrap()
                .starts_with("test-host-"),
            "{before}"
        );
        assert_eq!(before["activeActors"], json!(0), "{before}");
        assert_eq!(before["topology"], json!("local"), "{before}");

        for name in ["a", "b"] {
            let out = host.actor::<Echo>(name).echo("hi".into()).await.unwrap();
            assert_eq!(out, "hi");
        }
        let after = status_of(&service).await;
        assert_eq!(after["hostId"], json!(id));
        assert_eq!(after["activeActors"], json!(2), "{after}");
        let typed: HostStatus = serde_json::from_value(after).unwrap();
        assert_eq!(typed, service.host_status().unwrap());
        // What a host from before the field existed sends still reads, as local.
        let older: HostStatus =
            serde_json::from_value(json!({"hostId": "h", "address": "a", "activeActors": 1}))
                .unwrap();
        assert_eq!(older.topology, crate::Topology::Local);
    }

    /// A request as `ControlListener::serve` hands it to the router: with the peer's address.
    async fn from_peer(router: Router, peer: &str, token: Option<&str>) -> (StatusCode, Value) {
        use tower::ServiceExt;
        let mut request = axum::http::Request::get("/status").header("Host", "localhost:8080");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut request = request.body(axum::body::Body::empty()).unwrap();
        let peer: std::net::SocketAddr = peer.parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_peer_off_loopback_is_refused_without_a_token() {
        let host = TestHost::builder()
            .register::<Echo>()
            .build()
            .await
            .unwrap();
        let open = router(host.service());
        // Served on 0.0.0.0 by hand, without a token: a peer of the network, with a loopback
        // Host header, is refused all the same.
        for peer in [
            "10.0.0.7:40000",
            "[2001:db8::1]:40000",
            "[::ffff:10.0.0.7]:1",
        ] {
            let (status, body) = from_peer(open.clone(), peer, None).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{peer}: {body}");
            assert_eq!(body["code"], json!("token_required"), "{body}");
            assert!(
                body["error"].as_str().unwrap().contains(TOKEN_ENV),
                "{body}"
            );
        }
        for peer in ["127.0.0.1:40000", "[::1]:40000", "[::ffff:127.0.0.1]:1"] {
            let (status, body) = from_peer(open.clone(), peer, None).await;
            assert_eq!(status, StatusCode::OK, "{peer}: {body}");
        }
        // With a token, a peer of the network is asked for it, and let in with it.
        let token = "0123456789abcdef0123456789abcdef";
        let guarded = ControlApi::new()
            .token(HttpToken::new(token).unwrap())
            .router(host.service());
        let (status, _) = from_peer(guarded.clone(), "10.0.0.7:40000", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = from_peer(guarded, "10.0.0.7:40000", Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    #[test]
    fn alarm_body_of_the_docs_parses() {
        let body = br#"{"dueTime":"2026-01-01T00:00:00Z","interval":"60s","ttl":"2028-10-08T10:00:02Z","data":{"Hello":"World"}}"#;
        let spec = alarm_spec("alarm1", body).unwrap();
        assert_eq!(spec.handler, None);
        assert_eq!(spec.due, Due::AtMs(1_767_225_600_000));
        assert_eq!(spec.interval.unwrap().to_string(), "PT1M");
        assert_eq!(spec.ttl, Some(Ttl::UntilMs(1_854_612_002_000)));
        assert_eq!(
            spec.data.unwrap().to_json().unwrap(),
            json!({"Hello": "World"})
        );
    }

    #[test]
    fn bad_alarm_bodies_say_what_is_wrong() {
        assert!(
            alarm_spec("a", br#"{"interval":"soon"}"#)
                .unwrap_err()
                .starts_with("interval:")
        );
        assert!(
            alarm_spec("a", br#"{"dueTime":true}"#)
                .unwrap_err()
                .contains("dueTime")
        );
        assert!(
            alarm_spec("a", br#"{"due":1}"#)
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(
            alarm_spec("a", br#"{"ttl":"whenever"}"#)
                .unwrap_err()
                .starts_with("ttl")
        );
        assert_eq!(alarm_spec("a", b"").unwrap().due, Due::Now);
    }
}
