//! The local-cluster example as real processes: three workers sharing one SQLite file form one
//! cluster. Every actor ID answers from one worker whichever worker is called; when the owner
//! of an actor is killed with SIGKILL, the actor answers again from a survivor within the health
//! deadline plus a margin, with every acknowledged write intact, without ever being active on two
//! workers at once, and its repeating alarm keeps firing.

use std::collections::{HashMap, HashSet};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The health deadline the workers use; recovery must come within it plus a margin.
const DEADLINE_S: u64 = 4;

struct Worker {
    child: Child,
    http: String,
    peer: String,
}

impl Worker {
    fn start(dir: &Path, db: &Path) -> Worker {
        let http_port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let peer_port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let peer = format!("127.0.0.1:{peer_port}");
        let child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .current_dir(dir)
            .args(["--worker-address", &format!("127.0.0.1:{http_port}")])
            .args(["--actor-host-address", &peer])
            .args(["--db", db.to_str().unwrap()])
            .args([
                "--health-check-deadline",
                &format!("{DEADLINE_S}s"),
                "--idle-timeout",
                "60s",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "worker did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Worker {
            child,
            http: format!("http://127.0.0.1:{http_port}"),
            peer,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.http))
            .timeout(Duration::from_secs(30))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    }

    async fn increment(&self, id: &str) -> Result<Value, String> {
        self.post(&format!("/invoke/myactor/{id}/increment"), json!({"In": 1}))
            .await
    }

    async fn get(&self, id: &str) -> Result<Value, String> {
        self.post(&format!("/peek/myactor/{id}/get"), Value::Null)
            .await
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_form_one_cluster_that_survives_a_killed_owner() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let mut workers: Vec<Worker> = (0..3)
        .map(|i| {
            let home = dir.path().join(format!("worker{i}"));
            std::fs::create_dir_all(&home).unwrap();
            Worker::start(&home, &db)
        })
        .collect();

    // Spread: every ID has one owner, whichever worker is called.
    let mut owner_of: HashMap<String, String> = HashMap::new();
    for i in 0..30 {
        let id = format!("id{i}");
        let out = workers[i % 3].increment(&id).await.unwrap();
        assert_eq!(out["Out"], 1, "{id}: {out}");
        for worker in &workers {
            let seen = worker.get(&id).await.unwrap();
            assert_eq!(seen["Host"], out["Host"], "{id} answered from two workers");
        }
        owner_of.insert(id, out["Host"].as_str().unwrap().to_owned());
    }
    let owners: HashSet<&String> = owner_of.values().collect();
    assert!(
        owners.len() >= 2,
        "actors spread over the workers: {owners:?}"
    );

    // Pick an actor of worker 0 and give it a repeating alarm.
    let victim = workers[0].peer.clone();
    let id = owner_of
        .iter()
        .find(|(_, host)| **host == victim)
        .map(|(id, _)| id.clone())
        .expect("worker 0 owns some actor");
    workers[1]
        .post(
            &format!("/alarm/myactor/{id}/beat"),
            json!({"interval": "1s"}),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while workers[1].get(&id).await.unwrap()["Alarms"]
        .as_u64()
        .unwrap()
        < 1
    {
        assert!(Instant::now() < deadline, "the alarm did not fire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Keep writing to it through worker 1 while its owner dies.
    let mut acked = workers[1].increment(&id).await.unwrap()["Out"]
        .as_i64()
        .unwrap();
    let mut hosts_seen = vec![victim.clone()];
    workers[0].kill();
    let killed_at = Instant::now();
    let mut recovered_after = None;
    while killed_at.elapsed() < Duration::from_secs(DEADLINE_S + 20) {
        if let Ok(out) = workers[1].increment(&id).await {
            let value = out["Out"].as_i64().unwrap();
            assert!(
                value > acked,
                "an acknowledged write was lost: {value} after {acked}"
            );
            acked = value;
            let host = out["Host"].as_str().unwrap().to_owned();
            if hosts_seen.last() != Some(&host) {
                assert!(
                    !hosts_seen.contains(&host),
                    "the actor went back to a previous host: {hosts_seen:?} then {host}"
                );
                hosts_seen.push(host);
            }
            if recovered_after.is_none() && hosts_seen.len() > 1 {
                recovered_after = Some(killed_at.elapsed());
            }
            if recovered_after.is_some_and(|t| killed_at.elapsed() > t + Duration::from_secs(3)) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered_after = recovered_after.expect("the actor answered again from a survivor");
    assert!(
        recovered_after < Duration::from_secs(DEADLINE_S + 10),
        "recovered after {recovered_after:?}"
    );
    assert_eq!(hosts_seen.len(), 2, "exactly one move: {hosts_seen:?}");
    assert_ne!(hosts_seen[1], victim);

    // The alarm keeps firing on the new owner.
    let before = workers[2].get(&id).await.unwrap()["Alarms"]
        .as_u64()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(DEADLINE_S + 30);
    while workers[2].get(&id).await.unwrap()["Alarms"]
        .as_u64()
        .unwrap()
        < before + 2
    {
        assert!(
            Instant::now() < deadline,
            "the alarm stopped firing after its owner died"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every other actor of the dead worker is reachable again too, with its count.
    for (other, host) in &owner_of {
        if *host == victim && *other != id {
            let out = workers[2].get(other).await.unwrap();
            assert_eq!(out["Out"], 1, "{other}: {out}");
        }
    }
}

/// The scripted walkthrough of the docs runs as written (on free ports).
#[test]
fn the_demo_script_runs() {
    let port = || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            .to_string()
    };
    let udp = || {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            .to_string()
    };
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/demo.sh"))
        .env("WORKER_BIN", env!("CARGO_BIN_EXE_worker"))
        .envs([
            ("HTTP1", port()),
            ("HTTP2", port()),
            ("PEER1", udp()),
            ("PEER2", udp()),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("every ID answered by one activation"),
        "{stdout}"
    );
}
