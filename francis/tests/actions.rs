//! Operators' actions on a real two-host local cluster (SQLite file, QUIC peer links on
//! loopback) through a host's control server: preflight and dispatch with their audit trail,
//! replays, roles, bad input, halts, alarms and dead letters.

use std::net::SocketAddr;
use std::time::Duration;

use francis::host::ActorOptions;
use francis::http::{ControlApi, HttpToken, Role};
use francis::prelude::*;
use serde_json::{Value, json};
use support::{Running, Where, run};

mod support;

const PSK: &str = "actions-test-psk-0123456789abcdef0123456789";
const OPERATOR: &str = "operator-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789abcdef";

/// A host that drops a failing alarm after one attempt.
async fn host(db: &std::path::Path, name: &str) -> Running {
    let host = support::local_with(db, name, PSK, ActorOptions::default().alarm_max_attempts(1))
        .address(francis::testing::free_local_address())
        .build()
        .await
        .unwrap();
    run(host)
}

/// Serve `service`'s control API with an admin, an operator and a viewer token.
async fn serve(service: Service) -> SocketAddr {
    let api = ControlApi::new()
        .token(HttpToken::new(ADMIN).unwrap())
        .role_token(Role::Operator, HttpToken::new(OPERATOR).unwrap())
        .role_token(Role::Viewer, HttpToken::new(VIEWER).unwrap());
    support::serve_control(service, api).await
}

async fn post(address: SocketAddr, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{address}{path}"))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(address: SocketAddr, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{address}{path}"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn action(request_id: &str, action_type: &str, targets: &[&str]) -> Value {
    json!({
        "api_version": "1.0",
        "request_id": request_id,
        "action_type": action_type,
        "targets": targets,
    })
}

/// Actors per host ID, from the state view.
async fn actors_per_host(address: SocketAddr) -> Vec<(String, u64)> {
    let state = get(address, "/api/cluster/state").await;
    state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "host")
        .map(|n| {
            let total = n["actors"]
                .as_object()
                .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
            (n["id"].as_str().unwrap().to_owned(), total)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_moves_the_actors_and_is_audited_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let (a, stop_a, run_a) = host(&db, "a").await;
    let (b, stop_b, run_b) = host(&db, "b").await;
    let address = serve(a.clone()).await;
    let a_id = a.host_status().unwrap().host_id;
    let b_id = b.host_status().unwrap().host_id;

    // Actors on both hosts.
    for i in 0..20 {
        a.actor::<Where>(format!("w{i}"))
            .whereabouts()
            .await
            .unwrap();
    }
    let before = actors_per_host(address).await;
    let on_b = before.iter().find(|(id, _)| id == &b_id).unwrap().1;
    assert!(on_b > 0, "placement spread the actors: {before:?}");

    // Preflight: allowed, with the blast radius.
    let drain = action("drain-b-1", "drain_host", &[&b_id]);
    let (status, preflight) = post(
        address,
        "/api/cluster/actions/preflight",
        Some(OPERATOR),
        &drain,
    )
    .await;
    assert_eq!(status, 200, "{preflight}");
    assert_eq!(preflight["allowed"], true);
    assert_eq!(preflight["decisions"][0]["blast_radius"]["actors"], on_b);
    assert_eq!(preflight["acting_on"]["id"], a_id.as_str());
    assert!(
        preflight["principal"]
            .as_str()
            .unwrap()
            .starts_with("token:operator:")
    );

    // A dry run executes nothing.
    let mut dry = drain.clone();
    dry["dry_run"] = json!(true);
    dry["request_id"] = json!("drain-b-dry");
    let (status, answer) = post(
        address,
        "/api/cluster/actions/dispatch",
        Some(OPERATOR),
        &dry,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["results"], json!([]));

    let (status, answer) = post(
        address,
        "/api/cluster/actions/dispatch",
        Some(OPERATOR),
        &drain,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    let result = &answer["results"][0];
    let audit_id = result["audit_id"].as_str().unwrap().to_owned();
    assert_eq!(result["detail"]["actors_deactivated"], on_b);

    // The drained host lets its actors go; calls place them on the other host.
    let mut left = u64::MAX;
    for _ in 0..100 {
        left = actors_per_host(address)
            .await
            .iter()
            .find(|(id, _)| id == &b_id)
            .map_or(0, |(_, n)| *n);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the drained host still holds actors");
    for i in 0..20 {
        let (host, _) = b
            .actor::<Where>(format!("w{i}"))
            .whereabouts()
            .await
            .unwrap();
        assert_eq!(host, "a", "a call after the drain runs on the other host");
    }
    let state = get(address, "/api/cluster/state").await;
    let drained = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == b_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(drained["draining"], true, "{drained}");
    let event = state["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "admin_action")
        .expect("the drain is on the timeline");
    assert_eq!(event["audit_id"], audit_id.as_str());
    assert_eq!(event["subject"], b_id.as_str());

    // The same request again: the stored result, not a second drain.
    let (status, again) = post(
        address,
        "/api/cluster/actions/dispatch",
        Some(OPERATOR),
        &drain,
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["replayed"], true);
    assert_eq!(again["results"][0]["audit_id"], audit_id.as_str());
    let audit = get(address, "/api/cluster/audit?request_id=drain-b-1").await;
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{audit}");
    assert_eq!(records[0]["audit_id"], audit_id.as_str());
    assert_eq!(records[0]["result"], "ok");
    assert_eq!(records[0]["action"], "drain_host");
    assert!(
        records[0]["principal"]
            .as_str()
            .unwrap()
            .starts_with("token:operator:")
    );

    // The request ID again for another action: a conflict, nothing done.
    let (status, conflict) = post(
        address,
        "/api/cluster/actions/dispatch",
        Some(OPERATOR),
        &action("drain-b-1", "resume_host", &[&b_id]),
    )
    .await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["preflight"]["denial_code"], "conflict");

    // Resumed, it takes actors again.
    let (status, answer) = post(
        address,
        "/api/cluster/actions/dispatch",
        Some(OPERATOR),
        &action("resume-b-1", "resume_host", &[&b_id]),
    )
    .await;
    assert_eq!((status, &answer["ok"]), (200, &json!(true)), "{answer}");
    let mut placed_on_b = false;
    for i in 20..60 {
        let (host, _) = a
            .actor::<Where>(format!("w{i}"))
            .whereabouts()
            .await
            .unwrap();
        placed_on_b |= host == "b";
    }
    assert!(placed_on_b, "a resumed host takes new actors");

    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    run_a.await.unwrap().unwrap();
    run_b.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_low_roles_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let (a, stop_a, run_a) = host(&db, "a").await;
    let address = serve(a.clone()).await;
    let a_id = a.host_status().unwrap().host_id;
    let dispatch = "/api/cluster/actions/dispatch";

    // No token: 401 from the guard.
    let (status, _) = post(
        address,
        dispatch,
        None,
        &action("r1", "drain_host", &[&a_id]),
    )
    .await;
    assert_eq!(status, 401);

    // A viewer may look but not drain.
    let (status, answer) = post(
        address,
        dispatch,
        Some(VIEWER),
        &action("r2", "drain_host", &[&a_id]),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["preflight"]["denial_code"], "permission_denied");
    assert!(
        answer["preflight"]["decisions"][0]["remediation_hint"]
            .as_str()
            .unwrap()
            .contains("higher role")
    );
    assert_eq!(answer["results"], json!([]));
    // An operator may not change log levels: that is the admin's.
    let mut level = action("r3", "set_log_level", &[&a_id]);
    level["payload"] = json!({"filter": "debug"});
    let (status, answer) = post(address, dispatch, Some(OPERATOR), &level).await;
    assert_eq!(status, 403, "{answer}");

    let cases = [
        (
            action("r4", "explode_host", &[&a_id]),
            "unknown action_type",
        ),
        (
            {
                let mut v = action("r5", "drain_host", &[&a_id]);
                v["api_version"] = json!("2.0");
                v
            },
            "2.0",
        ),
        (action("", "drain_host", &[&a_id]), "request_id"),
        (action("r6", "drain_host", &[]), "targets"),
        (
            action("r7", "halt_actor", &["no-slash"]),
            "<actor type>/<actor ID>",
        ),
        (action("r8", "set_log_level", &[&a_id]), "payload"),
        (
            {
                let mut v = action("r9", "drain_host", &[&a_id]);
                v["budget_ms"] = json!(60_000);
                v
            },
            "budget_ms",
        ),
    ];
    for (body, says) in cases {
        let (status, answer) = post(address, dispatch, Some(OPERATOR), &body).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["preflight"]["denial_code"], "contract_violation");
        let reason = answer["preflight"]["denial_reason"].as_str().unwrap();
        assert!(reason.contains(says), "{reason:?} should mention {says:?}");
    }
    // Not JSON at all.
    let response = reqwest::Client::new()
        .post(format!("http://{address}{dispatch}"))
        .bearer_auth(OPERATOR)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["code"], "contract_violation");
    // Too big.
    let mut big = action("r10", "drain_host", &[&a_id]);
    big["payload"] = json!({"pad": "x".repeat(70 * 1024)});
    let (status, _) = post(address, dispatch, Some(OPERATOR), &big).await;
    assert_eq!(status, 413);
    // Unknown targets.
    let (status, answer) = post(
        address,
        dispatch,
        Some(OPERATOR),
        &action("r11", "drain_host", &["nope"]),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["preflight"]["denial_code"], "target_unknown");
    let (status, answer) = post(
        address,
        dispatch,
        Some(OPERATOR),
        &action("r12", "halt_actor", &["where/never-called"]),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    // Nothing denied was audited.
    let audit = get(address, "/api/cluster/audit").await;
    assert_eq!(audit["records"], json!([]), "{audit}");

    stop_a.send(()).unwrap();
    run_a.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halts_alarms_dead_letters_and_log_levels() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let (a, stop_a, run_a) = host(&db, "a").await;
    let (b, stop_b, run_b) = host(&db, "b").await;
    let address = serve(a.clone()).await;
    let dispatch = "/api/cluster/actions/dispatch";
    let b_id = b.host_status().unwrap().host_id;

    for i in 0..10 {
        let (_, calls) = a
            .actor::<Where>(format!("h{i}"))
            .whereabouts()
            .await
            .unwrap();
        assert_eq!(calls, 1);
    }
    // One actor, wherever it lives: its next call finds a fresh activation.
    let (status, answer) = post(
        address,
        dispatch,
        Some(OPERATOR),
        &action("halt-1", "halt_actor", &["where/h3"]),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["detail"]["actors_deactivated"], 1);
    let mut calls = 0;
    for _ in 0..50 {
        calls = a.actor::<Where>("h3").whereabouts().await.unwrap().1;
        if calls == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(calls, 1, "halted: the next call starts a fresh activation");

    // Every actor of the type, on both hosts.
    let (status, answer) = post(
        address,
        dispatch,
        Some(OPERATOR),
        &action("halt-type-1", "halt_type", &["where"]),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["results"][0]["detail"]["actors_deactivated"]
            .as_u64()
            .unwrap()
            >= 9
    );

    // An alarm that fails on its only attempt becomes a dead letter; replayed, it is back.
    a.actor::<Where>("doomed")
        .alarm_doomed("on purpose".to_owned())
        .set()
        .await
        .unwrap();
    let mut letters = Value::Null;
    for _ in 0..100 {
        letters = get(address, "/api/cluster/dead-letters").await;
        if letters["dead_letters"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["actor_id"], "doomed", "{letters}");
    assert_eq!(letter["attempts"], 1);
    assert!(
        letter["last_error"]
            .as_str()
            .unwrap()
            .contains("on purpose")
    );
    let id = letter["id"].as_str().unwrap().to_owned();
    let (status, answer) = post(
        address,
        dispatch,
        Some(OPERATOR),
        &action("replay-1", "replay_dead_letter", &[&id]),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["detail"]["alarm"], "doomed");
    // It runs again, fails again, and is a dead letter again.
    let mut again = 0;
    for _ in 0..100 {
        let letters = get(address, "/api/cluster/dead-letters").await;
        again = letters["dead_letters"].as_array().map_or(0, Vec::len);
        if again == 1 && letters["dead_letters"][0]["id"] != id.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(again, 1);
    // Replaying a dead letter that is gone fails, and says so.
    let (status, answer) = post(
        address,
        dispatch,
        Some(OPERATOR),
        &action("replay-2", "replay_dead_letter", &[&id]),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["results"][0]["denial_code"], "failed");

    // Deleting an alarm.
    a.actor::<Where>("later")
        .alarm_doomed("later".to_owned())
        .after(Duration::from_secs(3600))
        .set()
        .await
        .unwrap();
    let (status, answer) = post(
        address,
        dispatch,
        Some(OPERATOR),
        &action("delete-1", "delete_alarm", &["where/later/doomed"]),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["detail"]["deleted"], true);
    assert!(
        a.get_alarm("where", "later", "doomed")
            .await
            .unwrap()
            .is_none()
    );

    // This process's logging was not set up by francis: the host says so, and it is audited.
    let mut level = action("level-1", "set_log_level", &[&b_id]);
    level["payload"] = json!({"filter": "debug"});
    let (status, answer) = post(address, dispatch, Some(ADMIN), &level).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], false);
    assert!(
        answer["results"][0]["denial_reason"]
            .as_str()
            .unwrap()
            .contains("Telemetry::init"),
        "{answer}"
    );
    let audit = get(address, "/api/cluster/audit?request_id=level-1").await;
    assert_eq!(audit["records"][0]["result"], "failed", "{audit}");

    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    run_a.await.unwrap().unwrap();
    run_b.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prod_host_takes_no_action_from_an_unauthenticated_caller() {
    let dir = tempfile::tempdir().unwrap();
    let host = support::local(&dir.path().join("cluster.db"), "p", PSK)
        .profile(francis::Profile::Prod)
        .address(francis::testing::free_local_address())
        .build()
        .await
        .unwrap();
    let (service, stop, task) = run(host);
    let host_id = service.host_status().unwrap().host_id;
    // No tokens: the server answers this machine, and takes the caller for `loopback`.
    let address = support::serve_control(service.clone(), ControlApi::new()).await;

    let (status, answer) = post(
        address,
        "/api/cluster/actions/dispatch",
        None,
        &action("prod-1", "drain_host", &[&host_id]),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["preflight"]["denial_code"], "not_configured");
    assert_eq!(answer["preflight"]["principal"], "loopback");
    let state = reqwest::get(format!("http://{address}/api/cluster/state"))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(state["context"]["profile"], "prod");

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_still_running_at_the_budget_reports_timeout_and_is_audited() {
    use francis::store::sqlite::SqliteStore;
    use francis::store::{HostRegistration, Store, StoreOptions};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let (a, stop_a, run_a) = host(&db, "a").await;
    let address = serve(a.clone()).await;
    // A registered, healthy host whose address takes packets and never answers: relaying to it
    // waits until the budget runs out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let store = SqliteStore::open(
        &db,
        StoreOptions {
            clock: std::sync::Arc::new(francis::clock::SystemClock),
            health_check_deadline: Duration::from_secs(20),
        },
    )
    .await
    .unwrap();
    let silent_id = store
        .register_host(&HostRegistration {
            address: silent.local_addr().unwrap().to_string(),
            ..HostRegistration::default()
        })
        .await
        .unwrap();

    let mut drain = action("slow-1", "drain_host", &[&silent_id]);
    drain["budget_ms"] = json!(300);
    let started = std::time::Instant::now();
    let (status, answer) = post(
        address,
        "/api/cluster/actions/dispatch",
        Some(OPERATOR),
        &drain,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the budget bounds the dispatch"
    );
    assert_eq!(answer["ok"], false);
    let result = &answer["results"][0];
    assert_eq!(result["denial_code"], "timeout", "{answer}");
    assert_eq!(result["result"], "timeout");
    let audit = get(address, "/api/cluster/audit?request_id=slow-1").await;
    assert_eq!(audit["records"][0]["result"], "timeout", "{audit}");
    assert_eq!(
        audit["records"][0]["audit_id"], result["audit_id"],
        "the answer names the record"
    );

    drop(silent);
    stop_a.send(()).unwrap();
    run_a.await.unwrap().unwrap();
}
