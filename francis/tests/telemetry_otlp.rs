//! Telemetry as an operator switches it on: `OTEL_EXPORTER_OTLP_ENDPOINT` names a collector
//! (here a small OTLP/HTTP receiver on 127.0.0.1), two hosts share a SQLite file, and a call
//! made on one host that runs on the other arrives as one trace: the owner's `peer.invoke`
//! span is the child of the caller's. The metrics reach the collector too.
//!
//! One test in its own process: the telemetry set-up installs the process's global
//! subscriber.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::post;
use francis::prelude::*;
use francis::telemetry::Telemetry;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

mod support;

/// Which host an activation runs on.
struct HostName(&'static str);

struct Echo {
    host: &'static str,
}

#[francis::actor]
impl Echo {
    fn activate(ctx: &ActorContext) -> Self {
        let host = ctx.data::<HostName>().map_or("", |h| h.0);
        Echo { host }
    }

    pub async fn echo(&self, text: String) -> Result<String, String> {
        Ok(text)
    }

    pub async fn host(&self) -> Result<String, String> {
        Ok(self.host.to_owned())
    }
}

const PSK: &str = "telemetry-test-psk-0123456789abcdef0123456789";

type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

/// An OTLP/HTTP receiver: keeps every body posted to `/v1/{signal}`.
async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/{signal}",
            post(
                |State(received): State<Received>, Path(signal): Path<String>, body: Bytes| async move {
                    received.lock().unwrap().push((signal, body));
                    ""
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

#[derive(Debug, Clone)]
struct SpanSeen {
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: HashMap<String, String>,
}

fn spans(received: &Received) -> Vec<SpanSeen> {
    let mut spans = Vec::new();
    for (signal, body) in received.lock().unwrap().iter() {
        if signal != "traces" {
            continue;
        }
        let request = ExportTraceServiceRequest::decode(body.as_ref()).expect("OTLP traces");
        for resource in request.resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|kv| {
                            let value = kv
                                .value
                                .as_ref()
                                .and_then(|v| v.value.as_ref())
                                .map(|v| format!("{v:?}"))
                                .unwrap_or_default();
                            (kv.key.clone(), value)
                        })
                        .collect();
                    spans.push(SpanSeen {
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        attributes,
                    });
                }
            }
        }
    }
    spans
}

fn metric_names(received: &Received) -> Vec<String> {
    let mut names = Vec::new();
    for (signal, body) in received.lock().unwrap().iter() {
        if signal != "metrics" {
            continue;
        }
        let request = ExportMetricsServiceRequest::decode(body.as_ref()).expect("OTLP metrics");
        for resource in request.resource_metrics {
            for scope in resource.scope_metrics {
                names.extend(scope.metrics.into_iter().map(|m| m.name));
            }
        }
    }
    names
}

async fn start(
    db: &std::path::Path,
    name: &'static str,
) -> (Service, tokio::sync::oneshot::Sender<()>) {
    let host = Host::local()
        .data(HostName(name))
        .address(francis::testing::free_local_address())
        .sqlite(db)
        .runtime_psk(PSK)
        .register::<Echo>()
        .build()
        .await
        .unwrap();
    let (service, stop, _) = support::run(host);
    (service, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_call_is_one_trace_across_hosts_and_metrics_reach_the_collector() {
    let (endpoint, received) = collector().await;
    let env = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), endpoint),
        ("OTEL_SERVICE_NAME".to_owned(), "telemetry-test".to_owned()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ]);
    let telemetry = Telemetry::with_env("unused-default", move |name| env.get(name).cloned())
        .init()
        .unwrap();
    assert!(telemetry.traces_exported() && telemetry.metrics_exported());

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let (a, stop_a) = start(&db, "a").await;
    let (_b, stop_b) = start(&db, "b").await;

    // Find an actor that host a places on host b, so the call crosses hosts.
    let mut crossed = None;
    for i in 0..64 {
        let id = format!("echo-{i}");
        if a.actor::<Echo>(id.clone()).host().await.unwrap() == "b" {
            crossed = Some(id);
            break;
        }
    }
    let id = crossed.expect("one of 64 actors is placed on host b");
    let answer = a
        .actor::<Echo>(id.clone())
        .echo("traced".into())
        .await
        .unwrap();
    assert_eq!(answer, "traced");

    let _ = stop_a.send(());
    let _ = stop_b.send(());
    tokio::time::sleep(Duration::from_millis(200)).await;
    telemetry.shutdown().await;

    let spans = spans(&received);
    let traced_id = format!(
        "{:?}",
        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(id.clone())
    );
    let caller = spans
        .iter()
        .find(|s| {
            s.name == "actor.invoke" && s.attributes.get("francis.actor.id") == Some(&traced_id)
        })
        .expect("the caller's actor.invoke span was exported");
    let client = spans
        .iter()
        .find(|s| s.name == "peer.invoke" && s.parent_span_id == caller.span_id)
        .expect("the caller's peer.invoke span is the child of its actor.invoke span");
    assert!(client.attributes.contains_key("francis.actor.method"));
    let server = spans
        .iter()
        .find(|s| s.name == "peer.invoke" && s.parent_span_id == client.span_id)
        .expect("the owner's peer.invoke span is the child of the caller's");
    assert_eq!(
        server.trace_id, caller.trace_id,
        "one trace across both hosts"
    );
    assert_eq!(client.trace_id, caller.trace_id);
    assert!(
        spans
            .iter()
            .any(|s| s.name == "actor.lock_wait" && s.trace_id == caller.trace_id),
        "the owner's turn-lock wait is in the trace"
    );
    assert!(
        spans.iter().any(|s| s.name == "store.operation"),
        "store operations are traced"
    );

    let metrics = metric_names(&received);
    for name in [
        "francis.invocations",
        "francis.invocation.duration",
        "francis.store.operation.duration",
        "francis.peer.request.duration",
    ] {
        assert!(
            metrics.iter().any(|m| m == name),
            "{name} was exported: {metrics:?}"
        );
    }
}
