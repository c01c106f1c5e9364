//! The control API's job routes over real HTTP: a local host on a SQLite file with a real clock
//! and a short alarm poll, its control API served on 127.0.0.1, and requests as curl or a
//! script sends them. Dispatch (with and without an idempotency key), reading and listing
//! jobs, cancelling, the dead-letter cycle (list, read, retry, delete, purge), what bad input
//! answers, and who may call which route.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use francis::http::{ControlApi, HttpToken, MAX_JOB_BODY_BYTES, MAX_JOB_QUERY_BYTES, Role};
use francis::prelude::*;
use serde_json::{Value, json};

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

    /// A plain method, not a job.
    pub async fn hello(&self) -> Result<String, String> {
        Ok("hi".into())
    }
}

const PSK: &str = "http jobs test psk, at least thirty-two bytes long";
const VIEWER: &str = "viewer-token-0123456789abcdef";
const OPERATOR: &str = "operator-token-0123456789abcdef";

/// A running host with its control API, and a client for it.
struct Fixture {
    api: Api,
    stop: tokio::sync::oneshot::Sender<()>,
    run: tokio::task::JoinHandle<Result<(), Error>>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start(control: ControlApi) -> Fixture {
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
        let (service, stop, run) = support::run(host);
        let address = support::serve_control(service, control).await;
        Fixture {
            api: Api::new(address, None),
            stop,
            run,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.run.await.unwrap().unwrap();
    }
}

/// What came back: the status, the `Location` header, and the body as JSON (`null` when
/// empty).
#[derive(Debug)]
struct Reply {
    status: u16,
    location: Option<String>,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

/// A client of the control API, as a script would call it: a JSON content type on every
/// request, and the bearer token when it has one.
#[derive(Clone)]
struct Api {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Api {
    fn new(address: SocketAddr, token: Option<&str>) -> Api {
        Api {
            base: format!("http://{address}"),
            token: token.map(str::to_owned),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        Reply {
            status,
            location,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, Vec::new()).await
    }

    async fn post(&self, path: &str, body: &str) -> Reply {
        self.send(reqwest::Method::POST, path, body.as_bytes().to_vec())
            .await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, Vec::new()).await
    }

    /// Dispatch `parcel` as a `ship` job of depot `id` with `query`; its job ID.
    async fn ship(&self, id: &str, query: &str, parcel: Value) -> String {
        let reply = self
            .post(
                &format!("/jobs/depot/{id}/ship{query}"),
                &parcel.to_string(),
            )
            .await;
        assert_eq!(reply.status, 202, "{reply:?}");
        let job_id = reply.body["jobId"].as_str().unwrap().to_owned();
        assert_eq!(
            reply.location.as_deref(),
            Some(format!("/jobs/{job_id}").as_str())
        );
        job_id
    }

    /// Wait (at most 10 s) until job `job_id` has `status`; the job.
    async fn until_status(&self, job_id: &str, status: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            let reply = self.get(&format!("/jobs/{job_id}")).await;
            assert_eq!(reply.status, 200, "{reply:?}");
            if reply.body["status"] == json!(status) {
                return reply.body;
            }
            last = reply.body;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {job_id} did not become {status} within 10 s: {last}");
    }

    /// Wait (at most 10 s) until the dead letters are `count`; them.
    async fn until_letters(&self, count: usize) -> Vec<Value> {
        let mut last = Vec::new();
        for _ in 0..200 {
            let reply = self.get("/jobs/dead-letters").await;
            assert_eq!(reply.status, 200, "{reply:?}");
            last = reply.body.as_array().unwrap().clone();
            if last.len() == count {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("there were not {count} dead letters within 10 s: {last:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_dispatched_twice_with_a_key_is_one_job_and_runs_to_success() {
    let fixture = Fixture::start(ControlApi::new()).await;
    let api = &fixture.api;
    let parcel = json!({"to": "Oslo", "fail": false});
    let job_id = api.ship("d-1", "?after=500ms&key=welcome", parcel).await;
    let again = api
        .ship(
            "d-1",
            "?key=welcome",
            json!({"to": "Bergen", "fail": false}),
        )
        .await;
    assert_eq!(job_id, again, "the first dispatch with a key wins");

    let reply = api.get(&format!("/jobs/{job_id}")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let job = &reply.body;
    assert_eq!(job["jobId"], json!(job_id));
    assert_eq!(job["actorType"], json!("depot"));
    assert_eq!(job["actorId"], json!("d-1"));
    assert_eq!(job["method"], json!("ship"));
    assert_eq!(job["status"], json!("pending"), "{job}");
    assert_eq!(job["attempts"], json!(0));
    assert_eq!(job["idempotencyKey"], json!("welcome"));
    assert_eq!(job["interval"], Value::Null);
    assert_eq!(job["finishedTime"], Value::Null);
    let due = job["dueTime"].as_str().unwrap();
    assert!(
        francis::time::parse_timestamp(due).is_ok() && due.ends_with('Z'),
        "an RFC 3339 due time: {due}"
    );

    let listed = api.get("/jobs/depot/d-1").await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "{listed:?}");
    assert_eq!(listed.body[0]["jobId"], json!(job_id));
    let none = api.get("/jobs/depot/nobody").await;
    assert_eq!((none.status, none.body), (200, json!([])));

    let done = api.until_status(&job_id, "succeeded").await;
    assert_eq!(done["attempts"], json!(0));
    assert_eq!(done["dueTime"], Value::Null, "{done}");
    assert!(done["finishedTime"].is_string(), "{done}");

    // A repeating job shows its schedule.
    let nightly = api
        .ship(
            "d-1",
            "?cron=0%203%20*%20*%20*",
            json!({"to": "x", "fail": false}),
        )
        .await;
    let job = api.until_status(&nightly, "pending").await;
    assert_eq!(job["cron"], json!("0 3 * * *"));
    let hourly = api
        .ship(
            "d-1",
            "?every=1h&after=1h",
            json!({"to": "y", "fail": false}),
        )
        .await;
    let job = api.until_status(&hourly, "pending").await;
    assert_eq!(job["interval"], json!("PT1H"));
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_job_is_cancelled_once() {
    let fixture = Fixture::start(ControlApi::new()).await;
    let api = &fixture.api;
    let job_id = api
        .ship("d-2", "?after=1h", json!({"to": "Oslo", "fail": false}))
        .await;
    let reply = api.delete(&format!("/jobs/depot/d-2/{job_id}")).await;
    assert_eq!(
        (reply.status, &reply.body),
        (204, &Value::Null),
        "{reply:?}"
    );
    let reply = api.delete(&format!("/jobs/depot/d-2/{job_id}")).await;
    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(reply.code(), "job_not_found");
    assert!(reply.error().contains("GET /jobs/depot/d-2"), "{reply:?}");
    let reply = api.get(&format!("/jobs/{job_id}")).await;
    assert_eq!((reply.status, reply.code()), (404, "job_not_found"));
    assert_eq!(api.get("/jobs/depot/d-2").await.body, json!([]));
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_every_attempt_is_dead_lettered_retried_deleted_and_purged() {
    let fixture = Fixture::start(ControlApi::new()).await;
    let api = &fixture.api;
    let doomed = api
        .ship("d-3", "?key=doomed", json!({"to": "nowhere", "fail": true}))
        .await;
    let other = api
        .ship("d-4", "", json!({"to": "elsewhere", "fail": true}))
        .await;
    let job = api.until_status(&doomed, "dead_lettered").await;
    assert_eq!(job["attempts"], json!(2), "{job}");
    assert_eq!(job["lastError"], json!("no carrier for nowhere"), "{job}");
    api.until_status(&other, "dead_lettered").await;

    let letters = api.until_letters(2).await;
    let letter = letters
        .iter()
        .find(|l| l["jobId"] == json!(doomed))
        .unwrap()
        .clone();
    assert_eq!(letter["actorType"], json!("depot"));
    assert_eq!(letter["actorId"], json!("d-3"));
    assert_eq!(letter["method"], json!("ship"));
    assert_eq!(letter["idempotencyKey"], json!("doomed"));
    assert_eq!(letter["attempts"], json!(2));
    assert_eq!(letter["lastError"], json!("no carrier for nowhere"));
    assert_eq!(letter["data"], json!({"to": "nowhere", "fail": true}));
    assert!(letter["droppedTime"].as_str().unwrap().ends_with('Z'));
    let letter_id = letter["id"].as_str().unwrap().to_owned();

    let filtered = api.get("/jobs/dead-letters?actorType=other").await;
    assert_eq!((filtered.status, filtered.body), (200, json!([])));
    let limited = api.get("/jobs/dead-letters?actorType=depot&limit=1").await;
    assert_eq!(limited.body.as_array().unwrap().len(), 1, "{limited:?}");
    let one = api.get(&format!("/jobs/dead-letters/{letter_id}")).await;
    assert_eq!((one.status, &one.body), (200, &letter));

    // Retried: a new one-shot job, which fails again and comes back as a new letter.
    let retried = api
        .post(&format!("/jobs/dead-letters/{letter_id}/retry"), "")
        .await;
    assert_eq!(retried.status, 202, "{retried:?}");
    let new_job = retried.body["jobId"].as_str().unwrap().to_owned();
    assert_ne!(new_job, doomed);
    let again = api
        .post(&format!("/jobs/dead-letters/{letter_id}/retry"), "")
        .await;
    assert_eq!((again.status, again.code()), (404, "dead_letter_not_found"));
    api.until_status(&new_job, "dead_lettered").await;
    let letters = api.until_letters(2).await;
    assert!(
        letters.iter().any(|l| l["jobId"] == json!(new_job)),
        "{letters:?}"
    );

    let other_letter = letters.iter().find(|l| l["jobId"] == json!(other)).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = api
        .delete(&format!("/jobs/dead-letters/{other_letter}"))
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    let deleted = api
        .delete(&format!("/jobs/dead-letters/{other_letter}"))
        .await;
    assert_eq!(
        (deleted.status, deleted.code()),
        (404, "dead_letter_not_found")
    );

    let purged = api.post("/jobs/dead-letters/purge?olderThan=7d", "").await;
    assert_eq!((purged.status, &purged.body), (200, &json!({"purged": 0})));
    let purged = api.post("/jobs/dead-letters/purge?olderThan=0s", "").await;
    assert_eq!((purged.status, &purged.body), (200, &json!({"purged": 1})));
    assert_eq!(api.get("/jobs/dead-letters").await.body, json!([]));
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_answers_400_saying_what_is_wrong_and_how_to_fix_it() {
    let fixture = Fixture::start(ControlApi::new()).await;
    let api = &fixture.api;
    let parcel = json!({"to": "Oslo", "fail": false}).to_string();
    for (path, body, wanted) in [
        (
            "/jobs/depot/d/ship?every=1m&cron=*%20*%20*%20*%20*",
            parcel.as_str(),
            "`every` and `cron` were both given",
        ),
        (
            "/jobs/depot/d/ship?cron=0%203%20*%20*",
            &parcel,
            "give 5 fields",
        ),
        (
            "/jobs/depot/d/ship?after=soon",
            &parcel,
            "`after`: invalid duration",
        ),
        (
            "/jobs/depot/d/ship?ttl=P1D",
            &parcel,
            "`ttl`: invalid duration",
        ),
        (
            "/jobs/depot/d/ship?at=tomorrow",
            &parcel,
            "`at`: invalid timestamp",
        ),
        (
            "/jobs/depot/d/ship?every=0s",
            &parcel,
            "the repeat interval is zero",
        ),
        (
            "/jobs/depot/d/ship?intervall=1m",
            &parcel,
            "takes only after, at, every, cron, ttl, until and key",
        ),
        ("/jobs/depot/d/ship?key=a%2Fb", &parcel, "idempotency key"),
        ("/jobs/depot/d/ship", "{\"to\": ", "the body is not JSON"),
        (
            "/jobs/depot/d/nope",
            &parcel,
            "has no #[job] method \"nope\"; its #[job] methods are: ship",
        ),
        ("/jobs/depot/d/hello", "", "has no #[job] method \"hello\""),
        ("/jobs/dead-letters/purge", "", "`olderThan` is missing"),
        (
            "/jobs/dead-letters/purge?olderThan=a%20week",
            "",
            "`olderThan`: invalid duration",
        ),
    ] {
        let reply = api.post(path, body).await;
        assert_eq!(reply.status, 400, "{path}: {reply:?}");
        assert_eq!(reply.code(), "bad_request", "{path}: {reply:?}");
        assert!(reply.error().contains(wanted), "{path}: {reply:?}");
    }
    for (path, wanted) in [
        ("/jobs/dead-letters?limit=0", "give 1 to 500"),
        ("/jobs/dead-letters?limit=501", "give 1 to 500"),
        (
            "/jobs/dead-letters?limit=many",
            "takes only actorType and limit",
        ),
        (
            "/jobs/dead-letters?actor_type=depot",
            "takes only actorType and limit",
        ),
    ] {
        let reply = api.get(path).await;
        assert_eq!(reply.status, 400, "{path}: {reply:?}");
        assert!(reply.error().contains(wanted), "{path}: {reply:?}");
    }

    // The limits: a query string and a payload too long.
    let long_key = "k".repeat(MAX_JOB_QUERY_BYTES);
    let reply = api
        .post(&format!("/jobs/depot/d/ship?key={long_key}"), &parcel)
        .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(
        reply
            .error()
            .contains(&format!("more than the {MAX_JOB_QUERY_BYTES} accepted")),
        "{reply:?}"
    );
    let payload = format!("\"{}\"", "x".repeat(MAX_JOB_BODY_BYTES));
    let reply = api.post("/jobs/depot/d/ship", &payload).await;
    assert_eq!(reply.status, 413, "{reply:?}");
    assert_eq!(reply.code(), "too_large");
    assert!(reply.error().contains("2097152 bytes"), "{reply:?}");
    let fits = format!("\"{}\"", "x".repeat(MAX_JOB_BODY_BYTES - 2));
    let reply = api.post("/jobs/depot/d/ship?after=1h", &fits).await;
    assert_eq!(
        reply.status, 202,
        "a payload of the limit is taken: {reply:?}"
    );

    // Nothing else was stored.
    let listed = api.get("/jobs/depot/d").await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "{listed:?}");
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_jobs_and_dead_letters_answer_404() {
    let fixture = Fixture::start(ControlApi::new()).await;
    let api = &fixture.api;
    let reply = api.get("/jobs/0190aaaa-0000-7000-8000-000000000000").await;
    assert_eq!((reply.status, reply.code()), (404, "job_not_found"));
    assert!(reply.error().contains("GET /jobs/{type}/{id}"), "{reply:?}");
    for reply in [
        api.get("/jobs/dead-letters/nope").await,
        api.delete("/jobs/dead-letters/nope").await,
        api.post("/jobs/dead-letters/nope/retry", "").await,
    ] {
        assert_eq!(reply.status, 404, "{reply:?}");
        assert_eq!(reply.code(), "dead_letter_not_found");
        assert!(
            reply.error().contains("GET /jobs/dead-letters"),
            "{reply:?}"
        );
    }
    let reply = api.delete("/jobs/depot/d/nope").await;
    assert_eq!((reply.status, reply.code()), (404, "job_not_found"));
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_jobs_needs_a_viewer_and_changing_them_an_operator() {
    let control = ControlApi::new()
        .role_token(Role::Viewer, HttpToken::new(VIEWER).unwrap())
        .role_token(Role::Operator, HttpToken::new(OPERATOR).unwrap());
    let fixture = Fixture::start(control).await;
    let anonymous = &fixture.api;
    let viewer = anonymous.with_token(Some(VIEWER));
    let operator = anonymous.with_token(Some(OPERATOR));
    let parcel = json!({"to": "Oslo", "fail": false}).to_string();

    // Without a token, nothing.
    for reply in [
        anonymous.get("/jobs/dead-letters").await,
        anonymous.post("/jobs/depot/d/ship?after=1h", &parcel).await,
    ] {
        assert_eq!(
            (reply.status, reply.code()),
            (401, "unauthorized"),
            "{reply:?}"
        );
    }
    // A viewer reads, and changes nothing.
    assert_eq!(viewer.get("/jobs/dead-letters").await.status, 200);
    assert_eq!(viewer.get("/jobs/depot/d").await.status, 200);
    for reply in [
        viewer.post("/jobs/depot/d/ship?after=1h", &parcel).await,
        viewer.delete("/jobs/depot/d/some-job").await,
        viewer
            .post("/jobs/dead-letters/some-letter/retry", "")
            .await,
        viewer.delete("/jobs/dead-letters/some-letter").await,
        viewer
            .post("/jobs/dead-letters/purge?olderThan=0s", "")
            .await,
    ] {
        assert_eq!(
            (reply.status, reply.code()),
            (403, "role_too_low"),
            "{reply:?}"
        );
        assert!(reply.error().contains("operator"), "{reply:?}");
    }
    assert_eq!(viewer.get("/jobs/depot/d").await.body, json!([]));
    // An operator dispatches; a viewer then sees the job.
    let job_id = operator
        .ship("d", "?after=1h", json!({"to": "Oslo", "fail": false}))
        .await;
    let reply = viewer.get(&format!("/jobs/{job_id}")).await;
    assert_eq!(
        (reply.status, &reply.body["status"]),
        (200, &json!("pending"))
    );
    // Like every change, a dispatch must say JSON (a cross-site form cannot).
    let form = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/jobs/depot/d/ship", operator.base))
        .bearer_auth(OPERATOR)
        .header("Content-Type", "text/plain")
        .body(parcel)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 415);
    fixture.stop().await;
}
