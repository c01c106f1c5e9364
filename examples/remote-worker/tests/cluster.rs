//! The remote-cluster example as real processes: `francis runtime --config` and remote workers
//! that pin the CA `francis ca print` wrote. Every actor ID answers from one worker whichever
//! worker is called; a worker killed with SIGKILL is replaced within the health deadline plus a
//! margin, with every acknowledged write intact and its alarm still firing; the count survives a
//! runtime restart; and two runtime replicas sharing PostgreSQL fail over for the workers.

use std::collections::{HashMap, HashSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The health deadline of the test runtimes; recovery must come within it plus a margin.
const DEADLINE_S: u64 = 4;
const RUNTIME_PSK: &str = "remote-example-test-runtime-psk-0123456789";
const HOST_PSK: &str = "remote-example-test-host-psk";

/// The `francis` binary, built next to this package's binaries.
fn francis_bin() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_remote-worker")).with_file_name("francis");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "francis-cli", "--bin", "francis"])
            .status()
            .expect("run cargo build for the francis binary");
        assert!(status.success(), "building the francis binary failed");
    }
    path
}

fn port() -> u16 {
    francis::testing::free_port()
}

/// A child process killed when dropped.
struct Proc(Child);

impl Proc {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// SIGINT, then the exit status (bounded).
    fn interrupt(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn write_config(dir: &Path, name: &str, bind: u16, provider: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "bind: \"127.0.0.1:{bind}\"\nruntimePSKs:\n  - \"{RUNTIME_PSK}\"\nbootstrap:\n  method: psk\n  hostPSK: \"${{TEST_HOST_PSK}}\"\n{provider}healthCheckDeadline: {DEADLINE_S}s\nalarmsPollInterval: 250ms\nshutdownGracePeriod: 5s\nhttp:\n  bind: \"127.0.0.1:{bind}\"\nlog:\n  level: warn\n"
        ),
    )
    .unwrap();
    path
}

fn start_runtime(dir: &Path, config: &Path) -> Proc {
    Proc(
        Command::new(francis_bin())
            .current_dir(dir)
            .args(["runtime", "--config", config.to_str().unwrap()])
            .env("TEST_HOST_PSK", HOST_PSK)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `francis ca print --config`, written to `ca.pem` in `dir`.
fn print_ca(dir: &Path, config: &Path) -> PathBuf {
    let out = Command::new(francis_bin())
        .args(["ca", "print", "--config", config.to_str().unwrap()])
        .env("TEST_HOST_PSK", HOST_PSK)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ca print failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = String::from_utf8(out.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let path = dir.join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

struct Worker {
    proc: Proc,
    http: String,
    peer: String,
}

impl Worker {
    fn start(dir: &Path, runtimes: &[u16], ca: &Path) -> Worker {
        let http_port = port();
        let peer = format!("127.0.0.1:{}", port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_remote-worker"));
        command
            .current_dir(dir)
            .args(["--worker-address", &format!("127.0.0.1:{http_port}")])
            .args(["--actor-host-address", &peer])
            .args(["--ca-file", ca.to_str().unwrap()])
            .args(["--idle-timeout", "60s"])
            .env("FRANCIS_HOST_BOOTSTRAP_PSK", HOST_PSK)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for runtime in runtimes {
            command.args(["--runtime-address", &format!("127.0.0.1:{runtime}")]);
        }
        let child = command.spawn().unwrap();
        let mut proc = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            if let Ok(Some(status)) = proc.0.try_wait() {
                panic!("worker exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "worker did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = &mut proc;
        Worker {
            proc,
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
}

fn out(v: &Value) -> i64 {
    v["Out"].as_i64().unwrap_or(-1)
}

/// Retry until `f` succeeds, within `limit`; returns the value and how long it took.
async fn until<F, Fut>(what: &str, limit: Duration, mut f: F) -> (Value, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value, String>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return (v, start.elapsed()),
            Err(e) => {
                assert!(start.elapsed() < limit, "{what} within {limit:?}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_and_two_workers_survive_a_killed_worker_and_a_runtime_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bind = port();
    let config = write_config(
        dir.path(),
        "config.yaml",
        bind,
        "provider:\n  type: sqlite\n  connectionString: \"data.db\"\n",
    );
    let ca = print_ca(dir.path(), &config);
    let mut runtime = start_runtime(dir.path(), &config);
    // The container health check: `francis runtime healthcheck` asks the operations server
    // (TCP, on the same port number as the runtime's UDP sessions) until the runtime is ready.
    let ready = (0..100).any(|_| {
        let status = Command::new(francis_bin())
            .args([
                "runtime",
                "--config",
                config.to_str().unwrap(),
                "healthcheck",
            ])
            .env("TEST_HOST_PSK", HOST_PSK)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        status.success() || {
            std::thread::sleep(Duration::from_millis(100));
            false
        }
    });
    assert!(
        ready,
        "francis runtime healthcheck never reported the runtime ready"
    );
    let mut workers = vec![
        Worker::start(dir.path(), &[bind], &ca),
        Worker::start(dir.path(), &[bind], &ca),
    ];

    // Calls for one ID land on one activation whichever worker is called.
    let mut owners = HashMap::new();
    let mut counts = HashMap::new();
    for i in 0..10 {
        let id = format!("id{i}");
        let first = workers[0].increment(&id).await.unwrap();
        let second = workers[1].increment(&id).await.unwrap();
        assert_eq!((out(&first), out(&second)), (1, 2), "{id}");
        assert_eq!(first["Host"], second["Host"], "{id}: one activation");
        owners.insert(id.clone(), first["Host"].as_str().unwrap().to_owned());
        counts.insert(id, 2);
    }
    let hosts: HashSet<_> = owners.values().cloned().collect();
    assert_eq!(
        hosts.len(),
        2,
        "actors spread over both workers: {owners:?}"
    );

    // A repeating alarm on an actor of worker 1.
    let victim_peer = workers[1].peer.clone();
    let victim_id = owners
        .iter()
        .find(|(_, host)| **host == victim_peer)
        .map(|(id, _)| id.clone())
        .unwrap();
    workers[0]
        .post(
            &format!("/alarm/myactor/{victim_id}/tick"),
            json!({"interval": "1s", "data": {"Hello": "World"}}),
        )
        .await
        .unwrap();
    let (fired, _) = until("the alarm fires", Duration::from_secs(20), || async {
        let v = workers[0].get(&victim_id).await?;
        if v["Alarms"].as_u64().unwrap_or(0) >= 1 {
            Ok(v)
        } else {
            Err(format!("{v}"))
        }
    })
    .await;
    let alarms_before = fired["Alarms"].as_u64().unwrap();

    // Kill worker 1 mid-flight: its actors answer again from worker 0, state intact.
    workers[1].proc.kill();
    let survivor = &workers[0];
    let (value, took) = until(
        "the killed worker's actor answers from the survivor",
        Duration::from_secs(DEADLINE_S + 15),
        || survivor.increment(&victim_id),
    )
    .await;
    assert_eq!(
        out(&value),
        counts[&victim_id] + 1,
        "no acknowledged write lost"
    );
    assert_eq!(value["Host"], survivor.peer.as_str());
    assert!(
        took < Duration::from_secs(DEADLINE_S + 15),
        "recovered in {took:?}"
    );
    *counts.get_mut(&victim_id).unwrap() += 1;
    // Its alarm keeps firing, now on the survivor.
    until(
        "the alarm fires again after the kill",
        Duration::from_secs(20),
        || async {
            let v = survivor.get(&victim_id).await?;
            if v["Alarms"].as_u64().unwrap_or(0) > alarms_before {
                Ok(v)
            } else {
                Err(format!("{v}"))
            }
        },
    )
    .await;

    // Restart the runtime (SIGINT: a clean stop, exit code 0): the counts continue.
    let status = runtime.interrupt().expect("the runtime stops on SIGINT");
    assert!(status.success(), "runtime exit status {status}");
    let _runtime = start_runtime(dir.path(), &config);
    let before_restart = survivor.get(&victim_id).await.ok();
    for (id, count) in &counts {
        let (value, _) = until(
            "calls work after the runtime restart",
            Duration::from_secs(30),
            || survivor.increment(id),
        )
        .await;
        assert_eq!(out(&value), count + 1, "{id}: the count continued");
    }
    // The alarm survived the restart too: it is in the runtime's store, and keeps firing.
    let alarms_then = before_restart
        .and_then(|v| v["Alarms"].as_u64())
        .unwrap_or(alarms_before);
    until(
        "the alarm fires after the runtime restart",
        Duration::from_secs(20),
        || async {
            let v = survivor.get(&victim_id).await?;
            if v["Alarms"].as_u64().unwrap_or(0) > alarms_then {
                Ok(v)
            } else {
                Err(format!("{v}"))
            }
        },
    )
    .await;
    workers.clear();
}

/// A PostgreSQL database of its own for this test, dropped afterwards.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Option<Database> {
        let Ok(admin) = std::env::var("FRANCIS_TEST_POSTGRES_URL") else {
            if std::env::var("FRANCIS_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("FRANCIS_TEST_POSTGRES_URL is not set but FRANCIS_REQUIRE_POSTGRES=1");
            }
            eprintln!(
                "SKIPPED: runtime replicas on PostgreSQL (set FRANCIS_TEST_POSTGRES_URL; `source tests/postgres.sh start`)"
            );
            return None;
        };
        let name = format!("francis_replicas_{}", std::process::id());
        run_sql(&admin, &format!("DROP DATABASE IF EXISTS {name}")).await;
        run_sql(&admin, &format!("CREATE DATABASE {name}")).await;
        let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
        let base = &base[..base.rfind('/').unwrap()];
        let url = if query.is_empty() {
            format!("{base}/{name}")
        } else {
            format!("{base}/{name}?{query}")
        };
        Some(Database { admin, name, url })
    }
}

async fn run_sql(url: &str, sql: &str) {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    conn.execute(sql).await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_fail_over_between_two_runtime_replicas_on_postgres() {
    let Some(db) = Database::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let provider = format!(
        "provider:\n  type: postgres\n  connectionString: \"{}\"\n",
        db.url
    );
    let (bind_a, bind_b) = (port(), port());
    let config_a = write_config(dir.path(), "a.yaml", bind_a, &provider);
    let config_b = write_config(dir.path(), "b.yaml", bind_b, &provider);
    let ca = print_ca(dir.path(), &config_a);
    // Worker 0 starts while only replica A runs, so it is connected to A; worker 1 joins B.
    let mut replica_a = start_runtime(dir.path(), &config_a);
    let first = Worker::start(dir.path(), &[bind_a, bind_b], &ca);
    let _replica_b = start_runtime(dir.path(), &config_b);
    let workers = [first, Worker::start(dir.path(), &[bind_b], &ca)];
    for i in 0..6 {
        let id = format!("pg{i}");
        assert_eq!(out(&workers[0].increment(&id).await.unwrap()), 1);
        assert_eq!(out(&workers[1].increment(&id).await.unwrap()), 2);
    }
    // Replica A dies without a goodbye; worker 0 moves to B.
    replica_a.kill();
    for i in 0..6 {
        let id = format!("pg{i}");
        for (n, worker) in workers.iter().enumerate() {
            let (value, _) = until(
                "calls work after replica A died",
                Duration::from_secs(DEADLINE_S + 20),
                || worker.increment(&id),
            )
            .await;
            assert_eq!(
                out(&value),
                3 + n as i64,
                "{id}: state intact across the failover"
            );
        }
    }
    drop(workers);
    drop(_replica_b);
    run_sql(
        &db.admin,
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name),
    )
    .await;
}

#[test]
fn the_demo_script_runs() {
    let port = || francis::testing::free_port().to_string();
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/demo.sh"))
        .env("FRANCIS_BIN", francis_bin())
        .env("WORKER_BIN", env!("CARGO_BIN_EXE_remote-worker"))
        .envs([
            ("HTTP1", port()),
            ("HTTP2", port()),
            ("PEER1", port()),
            ("PEER2", port()),
            ("RUNTIME", port()),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("The counter continued"), "{stdout}");
}
