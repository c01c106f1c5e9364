//! The quickstart as a user runs it: start the real binary on a SQLite file, call it through the
//! curl API, stop it with SIGTERM, start it again, and find the counts still there.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Quickstart {
    child: Child,
    base: String,
}

impl Quickstart {
    async fn start(dir: &Path) -> Self {
        let (http, peer) = (francis::testing::free_port(), francis::testing::free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_quickstart"))
            .current_dir(dir)
            .args(["--worker-address", &format!("127.0.0.1:{http}")])
            .args(["--actor-host-address", &format!("127.0.0.1:{peer}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let qs = Quickstart {
            child,
            base: format!("http://127.0.0.1:{http}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::Client::new()
            .post(format!("{}/halt-all", qs.base))
            .header("Content-Type", "application/json")
            .send()
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "quickstart did not start serving within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        qs
    }

    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "quickstart exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "quickstart did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test]
async fn counts_survive_a_restart_and_mistakes_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let qs = Quickstart::start(dir.path()).await;

    assert_eq!(
        qs.post("/invoke/counter/alice/increment", r#"{"In": 42}"#)
            .await,
        (200, json!({"Out": 42}))
    );
    assert_eq!(
        qs.post("/invoke/counter/alice/increment", r#"{"In": 1}"#)
            .await,
        (200, json!({"Out": 43}))
    );
    assert_eq!(
        qs.post("/invoke/counter/bob/increment", r#"{"In": 7}"#)
            .await,
        (200, json!({"Out": 7}))
    );
    assert_eq!(
        qs.post("/peek/counter/alice/get", "").await,
        (200, json!({"Out": 43}))
    );

    let (status, body) = qs
        .post("/peek/counter/alice/increment", r#"{"In": 1}"#)
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = qs.post("/invoke/nope/alice/increment", "").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_actor_type")),
        "{body}"
    );
    let (status, body) = qs.post("/invoke/counter/alice/nope", "").await;
    assert!(
        status == 404 && body["error"].as_str().unwrap().contains("increment"),
        "{body}"
    );
    let (status, body) = qs
        .post("/invoke/counter/alice/increment", r#"{"In": "many"}"#)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let (status, body) = qs
        .post(
            "/invoke/counter/alice/increment",
            r#"{"In": 9223372036854775807}"#,
        )
        .await;
    assert_eq!(
        (status, &body["actorError"]),
        (422, &json!("Overflow")),
        "{body}"
    );

    // An alarm due now fires within a poll interval or two, and bumps the counter.
    let (status, body) = qs
        .post(
            "/alarm/counter/carol/tick",
            r#"{"data": {"Hello": "World"}}"#,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while qs.post("/peek/counter/carol/get", "").await.1 != json!({"Out": 1}) {
        assert!(
            Instant::now() < deadline,
            "the alarm did not fire within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = qs
        .post("/alarm/counter/carol/tick", r#"{"interval": "soon"}"#)
        .await;
    assert!(
        status == 400 && body["error"].as_str().unwrap().contains("interval"),
        "{body}"
    );

    assert_eq!(qs.post("/halt/counter/alice", "").await.0, 204);
    assert_eq!(
        qs.post("/halt/counter/alice", "").await.0,
        404,
        "no longer active"
    );
    qs.stop();

    let qs = Quickstart::start(dir.path()).await;
    assert_eq!(
        qs.post("/peek/counter/alice/get", "").await,
        (200, json!({"Out": 43}))
    );
    assert_eq!(
        qs.post("/invoke/counter/bob/increment", r#"{"In": 1}"#)
            .await,
        (200, json!({"Out": 8}))
    );
    assert_eq!(
        qs.post("/peek/counter/carol/get", "").await,
        (200, json!({"Out": 1})),
        "the one-shot alarm did not fire again"
    );
    qs.stop();
}

/// The curl session of the guide (`session.sh`, included in `book/src/quickstart.md`) prints
/// exactly the answers the guide shows (`session.out`), on free ports.
#[test]
fn the_guide_session_prints_what_the_guide_shows() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("bash")
        .arg(format!("{dir}/session.sh"))
        .env("QUICKSTART_BIN", env!("CARGO_BIN_EXE_quickstart"))
        .env("HTTP", francis::testing::free_port().to_string())
        .env("PEER", francis::testing::free_port().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "session.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected: String = std::fs::read_to_string(format!("{dir}/session.out"))
        .unwrap()
        .lines()
        .filter(|line| !line.contains("ANCHOR"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(
        stdout, expected,
        "the session's answers differ from session.out"
    );
}
