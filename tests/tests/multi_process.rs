//! Multi-process tests: real host processes (`francis-test-host`) sharing one SQLite file,
//! killed with SIGKILL where the test says so. What ran is read from the log file the hosts
//! append to, and from the store itself.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use francis::clock::SystemClock;
use francis::model::{ActorKey, Envelope, JobRecord, JobStatus, Store, StoreOptions};
use francis::store::sqlite::SqliteStore;

/// A host process, killed when dropped.
struct HostProcess {
    name: String,
    child: Child,
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start host `name` on `db`, logging to `log`; returns once it says it is ready (bounded).
fn start(db: &Path, log: &Path, name: &str) -> HostProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_francis-test-host"))
        .arg(db)
        .arg(log)
        .arg(name)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the host process starts");
    let stdout = child.stdout.take().expect("its stdout is piped");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line == "ready" {
                let _ = ready_tx.send(());
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("host {name} was not ready within 30 s"));
    HostProcess {
        name: name.to_owned(),
        child,
    }
}

/// Start several hosts at once (their start-ups overlap).
fn start_together(db: &Path, log: &Path, names: &[&str]) -> Vec<HostProcess> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| scope.spawn(move || start(db, log, name)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a host started"))
            .collect()
    })
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Wait (at most `limit`) until `check` holds of the log's lines; returns them.
fn until(log: &Path, limit: Duration, check: impl Fn(&[String]) -> bool) -> Vec<String> {
    let start = Instant::now();
    loop {
        let lines = lines(log);
        if check(&lines) {
            return lines;
        }
        assert!(
            start.elapsed() < limit,
            "gave up waiting after {limit:?}; the log: {lines:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn files() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let log = dir.path().join("events.log");
    (dir, db, log)
}

async fn store(db: &Path) -> Arc<dyn Store> {
    let options = StoreOptions {
        clock: Arc::new(SystemClock),
        health_check_deadline: Duration::from_secs(3),
    };
    Arc::new(SqliteStore::open(db, options).await.unwrap())
}

#[test]
fn three_hosts_starting_at_once_bootstrap_their_singleton_once() {
    let (_dir, db, log) = files();
    // The first start creates the schema; the others then race for the singleton.
    let _hosts = start_together(&db, &log, &["h1", "h2", "h3"]);
    until(&log, Duration::from_secs(15), |lines| {
        lines.iter().filter(|l| l.starts_with("started")).count() == 3
            && lines.iter().any(|l| l.starts_with("bootstrap"))
    });
    // Every host touches the singleton once it is ready: give the late touches time.
    std::thread::sleep(Duration::from_secs(2));
    let bootstraps: Vec<String> = lines(&log)
        .into_iter()
        .filter(|l| l.starts_with("bootstrap"))
        .collect();
    assert_eq!(bootstraps.len(), 1, "{bootstraps:?}");
    // "bootstrap <data> on <host>": the owner bootstraps with its own registration's data.
    let words: Vec<&str> = bootstraps[0].split(' ').collect();
    assert_eq!(words[1], words[3], "{bootstraps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_host_is_killed_runs_again_elsewhere_and_succeeds_once() {
    let (_dir, db, log) = files();
    let mut hosts = start_together(&db, &log, &["a", "b"]);
    let store = store(&db).await;
    let data = Envelope::encode(&serde_json::json!({"name": "parcel", "millis": 4000}))
        .unwrap()
        .into_msgpack()
        .unwrap();
    let job_id = store
        .dispatch_job(
            &ActorKey::new("work", "w-1"),
            &JobRecord {
                method: "process".into(),
                due_ms: jiff::Timestamp::now().as_millisecond(),
                interval: None,
                cron: None,
                ttl_ms: None,
                data: Some(data),
                idempotency_key: None,
            },
        )
        .await
        .unwrap();

    let started = until(&log, Duration::from_secs(15), |lines| {
        lines.iter().any(|l| l.starts_with("start parcel"))
    });
    let first = started
        .iter()
        .find(|l| l.starts_with("start parcel"))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    // SIGKILL, mid-job: the host cannot finish, release or unregister anything.
    let victim = hosts.iter().position(|h| h.name == first).unwrap();
    hosts[victim].child.kill().unwrap();
    hosts[victim].child.wait().unwrap();

    let survivor = if first == "a" { "b" } else { "a" };
    let done = until(&log, Duration::from_secs(40), |lines| {
        lines.iter().any(|l| l.starts_with("done parcel"))
    });
    assert!(
        done.contains(&format!("start parcel on {survivor}")),
        "{done:?}"
    );
    let start = Instant::now();
    loop {
        let info = store.get_job(&job_id).await.unwrap().unwrap();
        if info.status == JobStatus::Succeeded {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lines = lines(&log);
    let done: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("done parcel"))
        .collect();
    assert_eq!(done, [&format!("done parcel on {survivor}")], "{lines:?}");
}

#[test]
fn a_cron_schedule_on_three_hosts_runs_each_occurrence_once() {
    let (_dir, db, log) = files();
    let hosts = start_together(&db, &log, &["h1", "h2", "h3"]);
    let ticks = |lines: &[String]| -> Vec<i64> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("tick "))
            .filter_map(|rest| rest.split(' ').next()?.parse().ok())
            .collect()
    };
    until(&log, Duration::from_secs(30), |lines| {
        ticks(lines).len() >= 5
    });
    drop(hosts);
    let mut seen = ticks(&lines(&log));
    seen.sort_unstable();
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(seen, unique, "an occurrence ran twice: {seen:?}");
    // One per second, none skipped, from the first to the last.
    for pair in seen.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "{seen:?}");
    }
}
