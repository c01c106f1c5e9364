//! `francis jobs` as an operator runs it against a real host: a local host in this process (a
//! SQLite file, a real clock, a short alarm poll) with its control API on loopback, and the
//! `francis` binary dispatching, reading, listing and cancelling jobs, and retrying and purging
//! the dead letter of one that failed on every attempt.

use std::process::Output;
use std::time::Duration;

use francis::http::ControlApi;
use francis::prelude::*;
use serde_json::Value;

const PSK: &str = "jobs cli test psk, at least thirty-two bytes long";

/// A parcel, and whether shipping it fails (every time).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Parcel {
    to: String,
    fail: bool,
}

struct Depot;

#[francis::actor]
impl Depot {
    fn activate(_ctx: &ActorContext) -> Self {
        Depot
    }

    /// Ship a parcel: fails (to be retried) when the parcel says so.
    #[job]
    pub async fn ship(&mut self, parcel: Parcel) -> Result<(), JobFailure> {
        if parcel.fail {
            return Err(JobFailure::Retry(format!("no carrier for {}", parcel.to)));
        }
        Ok(())
    }
}

/// Run `francis jobs <args> --url <url>` (blocking, off the test's runtime threads).
async fn jobs(url: &str, args: &[&str]) -> Output {
    let mut all: Vec<String> = vec!["jobs".into()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    all.extend(["--url".into(), url.to_owned()]);
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_francis"))
            .args(&all)
            .env_remove("FRANCIS_URL")
            .env_remove("FRANCIS_HTTP_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The `--json` output of a command that succeeded.
fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

/// Wait (at most 10 s) until `francis jobs get` shows job `job_id` with `status`.
async fn until_status(url: &str, job_id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = json_of(&jobs(url, &["get", job_id, "--json"]).await);
        if last["status"] == status {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job_id} did not become {status} within 10 s: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_dispatches_reads_cancels_and_retries_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::local()
        .sqlite(dir.path().join("jobs.db"))
        .runtime_psk(PSK)
        .address(francis::testing::free_local_address())
        .alarms_poll_interval(Duration::from_millis(100))
        .register_with::<Depot>(
            ActorOptions::default()
                .alarm_max_attempts(2)
                .alarm_retry_delay(Duration::from_millis(100)),
        )
        .build()
        .await
        .unwrap();
    let service = host.service();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(host.run(async move {
        let _ = stopped.await;
    }));
    let listener = ControlApi::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(listener.serve(service, std::future::pending()));

    // Dispatch, twice with one key: one job.
    let ok = r#"{"to": "Oslo", "fail": false}"#;
    let first = json_of(
        &jobs(
            &url,
            &[
                "dispatch",
                "depot",
                "d-1",
                "ship",
                "--data",
                ok,
                "--idempotency-key",
                "welcome",
                "--json",
            ],
        )
        .await,
    );
    let job_id = first["jobId"].as_str().unwrap().to_owned();
    let again = jobs(
        &url,
        &[
            "dispatch",
            "depot",
            "d-1",
            "ship",
            "--data",
            ok,
            "--idempotency-key",
            "welcome",
        ],
    )
    .await;
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        format!("job {job_id} dispatched: depot/d-1 ship\n")
    );
    let done = until_status(&url, &job_id, "succeeded").await;
    assert_eq!(done["idempotencyKey"], "welcome");
    let shown = jobs(&url, &["get", &job_id]).await;
    assert!(shown.status.success(), "{}", text(&shown));
    let shown = text(&shown);
    assert!(
        shown.starts_with(&format!("job {job_id}\n  actor       depot/d-1\n")),
        "{shown}"
    );
    assert!(shown.contains("  status      succeeded\n"), "{shown}");

    // A later job is listed, then cancelled once.
    let later = json_of(
        &jobs(
            &url,
            &[
                "dispatch", "depot", "d-1", "ship", "--data", ok, "--after", "1h", "--json",
            ],
        )
        .await,
    );
    let later = later["jobId"].as_str().unwrap().to_owned();
    let listed = jobs(&url, &["list", "depot", "d-1"]).await;
    assert!(listed.status.success(), "{}", text(&listed));
    let listed = text(&listed);
    assert!(
        listed.contains(&format!("{later}  ship  pending  attempts 0  due ")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("{job_id}  ship  succeeded")),
        "{listed}"
    );
    let cancelled = jobs(&url, &["cancel", "depot", "d-1", &later]).await;
    assert!(cancelled.status.success(), "{}", text(&cancelled));
    assert!(
        text(&cancelled).contains("cancelled"),
        "{}",
        text(&cancelled)
    );
    let twice = jobs(&url, &["cancel", "depot", "d-1", &later]).await;
    assert_eq!(twice.status.code(), Some(1), "{}", text(&twice));
    assert!(
        text(&twice).contains("francis jobs list <TYPE> <ID>"),
        "{}",
        text(&twice)
    );

    // Bad input: refused by the command line, or by the server, with exit code 2.
    let both = jobs(
        &url,
        &[
            "dispatch",
            "depot",
            "d-1",
            "ship",
            "--every",
            "1m",
            "--cron",
            "* * * * *",
        ],
    )
    .await;
    assert_eq!(both.status.code(), Some(2), "{}", text(&both));
    let unknown = jobs(&url, &["dispatch", "depot", "d-1", "nope"]).await;
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("has no #[job] method \"nope\"; its #[job] methods are: ship"),
        "{}",
        text(&unknown)
    );

    // A job that fails every attempt: dead-lettered, listed, retried once, purged.
    let doomed = json_of(
        &jobs(
            &url,
            &[
                "dispatch",
                "depot",
                "d-2",
                "ship",
                "--data",
                r#"{"to": "nowhere", "fail": true}"#,
                "--json",
            ],
        )
        .await,
    );
    let doomed = doomed["jobId"].as_str().unwrap().to_owned();
    let dead = until_status(&url, &doomed, "dead_lettered").await;
    assert_eq!(dead["lastError"], "no carrier for nowhere");
    let letters = json_of(&jobs(&url, &["dead-letters", "--actor-type", "depot", "--json"]).await);
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["jobId"], doomed.as_str());
    let letter_id = letters[0]["id"].as_str().unwrap().to_owned();
    let listed = jobs(&url, &["dead-letters"]).await;
    assert!(
        text(&listed).starts_with(&format!(
            "{letter_id}  depot/d-2  ship  job {doomed}  2 attempts, dropped "
        )),
        "{}",
        text(&listed)
    );
    assert!(text(&listed).ends_with(": no carrier for nowhere\n"));

    let retried = jobs(&url, &["retry", &letter_id]).await;
    assert!(retried.status.success(), "{}", text(&retried));
    let retried = String::from_utf8_lossy(&retried.stdout).into_owned();
    let prefix = format!("dead letter {letter_id} runs again as job ");
    let new_job = retried
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{retried}"))
        .trim()
        .to_owned();
    assert_ne!(new_job, doomed);
    let twice = jobs(&url, &["retry", &letter_id]).await;
    assert_eq!(twice.status.code(), Some(1), "{}", text(&twice));
    assert!(
        text(&twice).contains("francis jobs dead-letters"),
        "{}",
        text(&twice)
    );
    until_status(&url, &new_job, "dead_lettered").await;
    let purged = json_of(&jobs(&url, &["purge", "--older-than", "7d", "--json"]).await);
    assert_eq!(purged["purged"], 0);
    let purged = jobs(&url, &["purge", "--older-than", "0s"]).await;
    assert!(purged.status.success(), "{}", text(&purged));
    assert!(
        text(&purged).starts_with("1 dead letters of jobs"),
        "{}",
        text(&purged)
    );
    let none = jobs(&url, &["dead-letters"]).await;
    assert_eq!(text(&none), "no dead letters of jobs\n");

    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}
