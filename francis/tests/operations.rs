//! The operations endpoints as an operator and a platform use them, over real HTTP on
//! 127.0.0.1: probes answer without credentials, `/metrics` and `/api/cluster/state` need a
//! viewer's token, a viewer cannot call actors, and the state view shows both hosts of a local
//! cluster with their actors; the runtime's operations server answers the same way.

use std::net::SocketAddr;
use std::time::Duration;

use francis::http::{ControlApi, HttpToken, Role};
use francis::prelude::*;
use serde_json::Value;

mod support;

struct Counter {
    n: u64,
}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { n: 0 }
    }

    pub async fn increment(&mut self, by: u64) -> Result<u64, String> {
        self.n += by;
        Ok(self.n)
    }
}

const PSK: &str = "operations-test-psk-0123456789abcdef0123456789";
const ADMIN: &str = "admin-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";

async fn start(db: &std::path::Path) -> (Service, tokio::sync::oneshot::Sender<()>) {
    let host = Host::local()
        .address(francis::testing::free_local_address())
        .sqlite(db)
        .runtime_psk(PSK)
        .register::<Counter>()
        .build()
        .await
        .unwrap();
    let (service, stop, _) = support::run(host);
    (service, stop)
}

async fn serve(service: Service) -> SocketAddr {
    let api = ControlApi::new()
        .token(HttpToken::new(ADMIN).unwrap())
        .role_token(Role::Viewer, HttpToken::new(VIEWER).unwrap());
    support::serve_control(service, api).await
}

async fn get(address: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client.get(format!("http://{address}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_metrics_and_the_state_view_of_a_local_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let (a, stop_a) = start(&db).await;
    let (_b, stop_b) = start(&db).await;
    let address = serve(a.clone()).await;
    // The first scrape switches the per-call series on; the calls after it are counted.
    assert_eq!(get(address, "/metrics", Some(VIEWER)).await.0, 200);
    for i in 0..8 {
        a.actor::<Counter>(format!("c{i}"))
            .increment(1)
            .await
            .unwrap();
    }

    // The probes answer anyone.
    let (status, body) = get(address, "/healthz", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(address, "/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true);
    let names: Vec<&str> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["registered", "not_shutting_down", "store_reachable"]
    );

    // Everything else needs a token, and changing things needs more than a viewer's.
    assert_eq!(get(address, "/metrics", None).await.0, 401);
    assert_eq!(
        get(
            address,
            "/api/cluster/state",
            Some("wrong-token-0123456789")
        )
        .await
        .0,
        401
    );
    let invoke = reqwest::Client::new()
        .post(format!("http://{address}/invoke/counter/c0/increment"))
        .header("content-type", "application/json")
        .bearer_auth(VIEWER)
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(invoke.status().as_u16(), 403);
    let refusal: Value = invoke.json().await.unwrap();
    assert_eq!(refusal["code"], "role_too_low");

    // Metrics: the calls made above, by type, method and outcome.
    let (status, metrics) = get(address, "/metrics", Some(VIEWER)).await;
    assert_eq!(status, 200);
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "francis_invocations_total{actor_type=\"counter\",method=\"increment\",outcome=\"ok\"}",
            )
        })
        .unwrap_or_else(|| panic!("no invocation count in:\n{metrics}"));
    let count: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 8, "{line}");
    assert!(metrics.contains("# TYPE francis_store_operation_duration_seconds histogram"));

    // The state view: both hosts, online, with the 8 counters between them.
    let (status, body) = get(address, "/api/cluster/state", Some(VIEWER)).await;
    assert_eq!(status, 200, "{body}");
    let state: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["api_version"], "1.0");
    assert_eq!(state["context"]["answered_by"]["kind"], "host");
    assert_eq!(
        state["context"]["answered_by"]["id"],
        a.host_status().unwrap().host_id
    );
    assert_eq!(state["context"]["caller"]["role"], "viewer");
    assert!(
        state["context"]["caller"]["principal"]
            .as_str()
            .unwrap()
            .starts_with("token:viewer:"),
        "the principal comes from the token: {}",
        state["context"]["caller"]
    );
    let nodes = state["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{body}");
    let mut actors = 0;
    for node in nodes {
        assert_eq!(node["kind"], "host");
        assert_eq!(node["lifecycle"], "online", "{node}");
        assert_eq!(node["trust"], "same_cluster_ca");
        actors += node["actors"]["counter"].as_u64().unwrap_or(0);
    }
    assert_eq!(actors, 8, "{body}");

    let _ = stop_a.send(());
    let _ = stop_b.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_serves_probes_and_its_state_view() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = francis::runtime::Runtime::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .http_bind("127.0.0.1:0".parse().unwrap())
        .runtime_psk(PSK)
        .host_psk("operations-host-psk-0123456789")
        .sqlite(dir.path().join("runtime.db"))
        .build()
        .await
        .unwrap();
    let address = runtime.http_addr().expect("the operations server runs");
    let runtime_id = runtime.runtime_id().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(runtime.run(async move {
        let _ = stopped.await;
    }));

    let (status, body) = get(address, "/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    // On loopback without tokens, the caller is this machine's.
    let (status, body) = get(address, "/api/cluster/state", None).await;
    assert_eq!(status, 200, "{body}");
    let state: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["context"]["answered_by"]["kind"], "runtime");
    assert_eq!(state["context"]["answered_by"]["id"], runtime_id);
    assert_eq!(state["nodes"][0]["kind"], "runtime");
    assert_eq!(state["nodes"][0]["is_self"], true);
    let (status, metrics) = get(address, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("# TYPE francis_runtime_sessions gauge"));

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the runtime stops")
        .unwrap()
        .unwrap();
}

/// A runtime's operations server over TLS: a client certificate of an operator identity of the
/// cluster CA names the caller and gives its role; one of another CA is refused at the
/// handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_client_certificate_of_the_cluster_names_the_caller() {
    use francis::net::pki::{ClusterCa, pem_of};

    let dir = tempfile::tempdir().unwrap();
    let runtime = francis::runtime::Runtime::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .http_bind("127.0.0.1:0".parse().unwrap())
        .http_tls(true)
        .runtime_psk(PSK)
        .host_psk("operations-host-psk-0123456789")
        .sqlite(dir.path().join("runtime.db"))
        .build()
        .await
        .unwrap();
    let address = runtime.http_addr().unwrap();
    let ca = runtime.cluster_ca().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(runtime.run(async move {
        let _ = stopped.await;
    }));

    let client_of = |ca_for_cert: &ClusterCa, role: Role, name: &str| {
        let identity = ca_for_cert
            .issue_operator_identity(role, name, Duration::from_secs(3600))
            .unwrap();
        let mut pem = pem_of(identity.leaf_der());
        pem.push_str(&identity.private_key_pem());
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca.ca_pem().as_bytes()).unwrap())
            .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    };
    let url = format!("https://127.0.0.1:{}/api/cluster/state", address.port());

    let alice = client_of(&ca, Role::Viewer, "alice");
    let response = alice.get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let state: Value = response.json().await.unwrap();
    assert_eq!(state["context"]["caller"]["principal"], "cert:alice");
    assert_eq!(state["context"]["caller"]["role"], "viewer");

    // A page the TLS server served (the fleet UI) posts with its https origin, and is let in;
    // an http origin of the same address is another site's.
    let preflight = format!(
        "https://127.0.0.1:{}/api/cluster/actions/preflight",
        address.port()
    );
    let body = serde_json::json!({
        "api_version": "1.0", "request_id": "tls-1", "action_type": "drain_host",
        "targets": ["no-such-host"],
    });
    let operator = client_of(&ca, Role::Operator, "olga");
    for (origin, status) in [
        (format!("https://127.0.0.1:{}", address.port()), 404),
        (format!("http://127.0.0.1:{}", address.port()), 403),
    ] {
        let response = operator
            .post(&preflight)
            .header("origin", &origin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{origin}");
    }

    let stranger_ca = ClusterCa::from_psks(&["another-cluster-psk-0123456789abcdef0123"]).unwrap();
    let mallory = client_of(&stranger_ca, Role::Admin, "mallory");
    assert!(
        mallory.get(&url).send().await.is_err(),
        "a certificate of another cluster's CA is refused at the handshake"
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the runtime stops")
        .unwrap()
        .unwrap();
}
