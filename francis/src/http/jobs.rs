//! The control API's durable jobs: dispatch a job to an actor, read an actor's jobs or one job
//! by its ID, cancel a pending one, and read, retry, delete and purge the dead letters of jobs
//! that failed on every attempt. The routes call [`Service`]'s job methods; the guard in front
//! of them is the one of `/invoke` (reads need the viewer role, everything else the operator's).
//!
//! | Route | Does | Answers |
//! |---|---|---|
//! | `POST /jobs/{type}/{id}/{method}?after&at&every&cron&ttl&until&key` | dispatch (body: the payload, JSON) | 202 `{"jobId"}` |
//! | `GET /jobs/{job_id}` | one job | 200 job, 404 |
//! | `GET /jobs/{type}/{id}` | an actor's jobs | 200 `[job]` |
//! | `DELETE /jobs/{type}/{id}/{job_id}` | cancel a pending job | 204, 404 |
//! | `GET /jobs/dead-letters?actorType&limit` | dead letters, newest first | 200 `[letter]` |
//! | `GET /jobs/dead-letters/{id}` | one dead letter | 200 letter, 404 |
//! | `DELETE /jobs/dead-letters/{id}` | delete it | 204, 404 |
//! | `POST /jobs/dead-letters/{id}/retry` | run it again as a new job | 202 `{"jobId"}`, 404 |
//! | `POST /jobs/dead-letters/purge?olderThan` | delete old dead letters | 200 `{"purged"}` |
//!
//! Because `dead-letters` is a path segment of its own, an actor type named `dead-letters`
//! cannot be reached through these routes (its jobs still can be through [`Service`]).

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::actions::{Problem, problem};
use super::error_response;
use crate::actor::alarm::{Due, Ttl};
use crate::actor::job::{JobId, JobSpec};
use crate::actor::service::Service;
use crate::cron::Cron;
use crate::error::validate_name;
use crate::model::jobs::job_key_of;
use crate::model::operations::MAX_AUDIT_PAGE;
use crate::model::{DeadLetter, DeadLetterQuery, Envelope, JobInfo, JobStatus};
use crate::time::{Interval, format_timestamp, parse_duration, parse_timestamp};

/// The largest job payload (request body) accepted: 2 MiB, what `/invoke` accepts too (the
/// HTTP server's default body limit). A larger one is refused with 413.
pub const MAX_JOB_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The longest query string a job route accepts, in bytes: every option together (a cron
/// expression is at most 256 bytes, an idempotency key 512). A longer one is refused with 400.
pub const MAX_JOB_QUERY_BYTES: usize = 2048;

/// The job routes.
pub(super) fn routes() -> Router<Service> {
    Router::new()
        // The static `dead-letters` segment wins over the parameters of the routes below.
        .route("/jobs/dead-letters", get(list_dead_letters))
        .route("/jobs/dead-letters/purge", post(purge_dead_letters))
        .route(
            "/jobs/dead-letters/{id}",
            get(get_dead_letter).delete(delete_dead_letter),
        )
        .route("/jobs/dead-letters/{id}/retry", post(retry_dead_letter))
        // A job's ID and an actor's type share the first segment (and so its name).
        .route("/jobs/{first}", get(get_job))
        .route("/jobs/{first}/{id}", get(list_jobs))
        .route(
            "/jobs/{first}/{id}/{last}",
            post(dispatch).delete(cancel_job),
        )
        .layer(DefaultBodyLimit::max(MAX_JOB_BODY_BYTES))
}

/// A 400 answer: what is wrong with the request, and how to fix it.
fn bad_request(message: String) -> Problem {
    problem(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// The query string of `uri` as `T`, or the 400 that says what is wrong with it; `accepted`
/// names the parameters the route takes.
fn query<T: DeserializeOwned + Default>(uri: &Uri, accepted: &str) -> Result<T, Problem> {
    let Some(raw) = uri.query() else {
        return Ok(T::default());
    };
    if raw.len() > MAX_JOB_QUERY_BYTES {
        return Err(bad_request(format!(
            "the query string is {} bytes, more than the {MAX_JOB_QUERY_BYTES} accepted; this route takes only {accepted}",
            raw.len()
        )));
    }
    Query::<T>::try_from_uri(uri).map(|Query(t)| t).map_err(|e| {
        bad_request(format!(
            "the query string is not valid ({}); this route takes only {accepted}, each at most once",
            e.body_text()
        ))
    })
}

/// The body, or the answer to one too large or unreadable.
fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            problem(
                status,
                "too_large",
                format!(
                    "the job's payload is over {MAX_JOB_BODY_BYTES} bytes; send a smaller one (store large data elsewhere and pass its reference)"
                ),
            )
        } else {
            problem(status, "bad_request", rejection.body_text())
        }
    })
}

/// `202 Accepted` with `{"jobId": ...}` and the job's URL in `Location`.
fn accepted(job_id: &JobId) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(json!({"jobId": job_id.as_str()})),
    )
        .into_response();
    if let Ok(location) = format!("/jobs/{job_id}").parse() {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// The options of a dispatch, as query parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DispatchParams {
    /// First run this long from now (a duration).
    after: Option<String>,
    /// First run at this time (RFC 3339 or Unix ms).
    at: Option<String>,
    /// Repeat at this interval.
    every: Option<String>,
    /// Repeat on this 5-field cron schedule (UTC).
    cron: Option<String>,
    /// Stop repeating this long after the first run (a duration).
    ttl: Option<String>,
    /// Stop repeating after this time (RFC 3339 or Unix ms).
    until: Option<String>,
    /// The idempotency key.
    key: Option<String>,
}

const DISPATCH_PARAMS: &str = "after, at, every, cron, ttl, until and key";

impl DispatchParams {
    /// The job these options and `body` (its payload, JSON; empty for none) describe.
    fn into_spec(self, body: &[u8]) -> Result<JobSpec, String> {
        let both = |a: &str, b: &str, what: &str| {
            format!("`{a}` and `{b}` were both given; {what}: keep one of them")
        };
        if self.after.is_some() && self.at.is_some() {
            return Err(both(
                "after",
                "at",
                "a job first runs after a delay or at a time, not both",
            ));
        }
        if self.every.is_some() && self.cron.is_some() {
            return Err(both(
                "every",
                "cron",
                "a job repeats by interval or by cron schedule, not both",
            ));
        }
        if self.ttl.is_some() && self.until.is_some() {
            return Err(both(
                "ttl",
                "until",
                "repeats stop after a duration or at a time, not both",
            ));
        }
        let param =
            |name: &str, e: &dyn std::fmt::Display| format!("query parameter `{name}`: {e}");
        let mut spec = JobSpec::default();
        if let Some(after) = &self.after {
            spec.due = Some(Due::After(
                parse_duration(after).map_err(|e| param("after", &e))?,
            ));
        }
        if let Some(at) = &self.at {
            spec.due = Some(Due::AtMs(parse_timestamp(at).map_err(|e| param("at", &e))?));
        }
        if let Some(every) = &self.every {
            spec.interval = Some(every.parse::<Interval>().map_err(|e| param("every", &e))?);
        }
        if let Some(cron) = &self.cron {
            spec.cron = Some(Cron::parse(cron).map_err(|e| param("cron", &e))?);
        }
        if let Some(ttl) = &self.ttl {
            spec.ttl = Some(Ttl::For(parse_duration(ttl).map_err(|e| param("ttl", &e))?));
        }
        if let Some(until) = &self.until {
            spec.ttl = Some(Ttl::UntilMs(
                parse_timestamp(until).map_err(|e| param("until", &e))?,
            ));
        }
        spec.key = self.key;
        if !body.iter().all(u8::is_ascii_whitespace) {
            let payload: Value = serde_json::from_slice(body).map_err(|e| {
                format!(
                    "the body is not JSON ({e}); send the job's payload as JSON (one value for a method of one parameter), or no body for none"
                )
            })?;
            spec.data = Some(Envelope::encode(&payload).map_err(|e| e.to_string())?);
        }
        Ok(spec)
    }
}

/// `POST /jobs/{type}/{id}/{method}`: dispatch a job.
async fn dispatch(
    State(service): State<Service>,
    Path((actor_type, id, method)): Path<(String, String, String)>,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body_of(body) {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };
    let params: DispatchParams = match query(&uri, DISPATCH_PARAMS) {
        Ok(params) => params,
        Err(problem) => return problem.into_response(),
    };
    let spec = match params.into_spec(&body) {
        Ok(spec) => spec,
        Err(message) => return bad_request(message).into_response(),
    };
    match service.dispatch_job(&actor_type, &id, &method, spec).await {
        Ok(job_id) => accepted(&job_id),
        Err(e) => error_response(e),
    }
}

/// A job as the API shows it: camelCase, times in RFC 3339.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JobView {
    job_id: String,
    actor_type: String,
    actor_id: String,
    method: String,
    status: JobStatus,
    attempts: u32,
    due_time: Option<String>,
    interval: Option<String>,
    cron: Option<String>,
    idempotency_key: Option<String>,
    last_error: Option<String>,
    finished_time: Option<String>,
}

impl From<JobInfo> for JobView {
    fn from(info: JobInfo) -> Self {
        JobView {
            job_id: info.job_id,
            actor_type: info.key.actor_type,
            actor_id: info.key.actor_id,
            method: info.method,
            status: info.status,
            attempts: info.attempts,
            due_time: info.due_ms.map(format_timestamp),
            interval: info.interval,
            cron: info.cron,
            idempotency_key: info.idempotency_key,
            last_error: info.last_error,
            finished_time: info.finished_ms.map(format_timestamp),
        }
    }
}

/// `GET /jobs/{job_id}`: one job.
async fn get_job(State(service): State<Service>, Path(job_id): Path<String>) -> Response {
    if let Err(e) = validate_name("job ID", &job_id) {
        return error_response(e);
    }
    match service.get_job(&job_id).await {
        Ok(Some(info)) => (StatusCode::OK, axum::Json(JobView::from(info))).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "job_not_found",
            format!(
                "no job {job_id:?}: there never was one, it was cancelled, or it succeeded more than 24 hours ago; list an actor's jobs with GET /jobs/{{type}}/{{id}}"
            ),
        ).into_response(),
        Err(e) => error_response(e),
    }
}

/// `GET /jobs/{type}/{id}`: an actor's jobs.
async fn list_jobs(
    State(service): State<Service>,
    Path((actor_type, id)): Path<(String, String)>,
) -> Response {
    match service.list_jobs(&actor_type, &id).await {
        Ok(jobs) => {
            let jobs: Vec<JobView> = jobs.into_iter().map(JobView::from).collect();
            (StatusCode::OK, axum::Json(jobs)).into_response()
        }
        Err(e) => error_response(e),
    }
}

/// `DELETE /jobs/{type}/{id}/{job_id}`: cancel a pending job.
async fn cancel_job(
    State(service): State<Service>,
    Path((actor_type, id, job_id)): Path<(String, String, String)>,
) -> Response {
    if let Err(e) = validate_name("job ID", &job_id) {
        return error_response(e);
    }
    match service.cancel_job(&actor_type, &id, &job_id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => problem(
            StatusCode::NOT_FOUND,
            "job_not_found",
            format!(
                "actor {actor_type}/{id} has no pending job {job_id:?} to cancel: it finished, was cancelled already, or belongs to another actor; GET /jobs/{actor_type}/{id} lists its jobs"
            ),
        ).into_response(),
        Err(e) => error_response(e),
    }
}

/// The query of `GET /jobs/dead-letters`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeadLetterParams {
    actor_type: Option<String>,
    limit: Option<u32>,
}

/// A dead letter of a job as the API shows it. Its payload is `data` as JSON, or, when it does
/// not decode (MessagePack JSON cannot hold, such as binary keys), `null` with the raw bytes
/// in `dataBase64`.
fn letter_view(letter: DeadLetter) -> Value {
    let job_id = letter.job_id.clone().unwrap_or_default();
    let key = job_key_of(&letter.name, &job_id).map(str::to_owned);
    let mut view = json!({
        "id": letter.id,
        "jobId": letter.job_id,
        "actorType": letter.key.actor_type,
        "actorId": letter.key.actor_id,
        "method": letter.handler,
        "idempotencyKey": key,
        "attempts": letter.attempts,
        "lastError": letter.last_error,
        "scheduledTime": format_timestamp(letter.scheduled_ms),
        "droppedTime": format_timestamp(letter.dropped_ms),
        "data": Value::Null,
    });
    if let Some(bytes) = letter.data.filter(|b| !b.is_empty()) {
        match Envelope::from_msgpack_bytes(bytes.clone()).to_json() {
            Ok(value) => view["data"] = value,
            Err(_) => {
                view["dataBase64"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(&bytes));
            }
        }
    }
    view
}

/// `GET /jobs/dead-letters`: dead letters of jobs, newest first.
async fn list_dead_letters(State(service): State<Service>, uri: Uri) -> Response {
    let params: DeadLetterParams = match query(&uri, "actorType and limit") {
        Ok(params) => params,
        Err(problem) => return problem.into_response(),
    };
    if let Some(actor_type) = &params.actor_type
        && let Err(e) = validate_name("actor type", actor_type)
    {
        return error_response(e);
    }
    let limit = match params.limit {
        None => MAX_AUDIT_PAGE,
        Some(limit) if (1..=MAX_AUDIT_PAGE).contains(&limit) => limit,
        Some(limit) => {
            return bad_request(format!(
                "query parameter `limit` is {limit}; give 1 to {MAX_AUDIT_PAGE} (the default), and narrow the list with `actorType`"
            )).into_response();
        }
    };
    let query = DeadLetterQuery {
        actor_type: params.actor_type,
        limit,
    };
    match service.dead_jobs(&query).await {
        Ok(letters) => {
            let letters: Vec<Value> = letters.into_iter().map(letter_view).collect();
            (StatusCode::OK, axum::Json(letters)).into_response()
        }
        Err(e) => error_response(e),
    }
}

fn no_letter(id: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "dead_letter_not_found",
        format!(
            "no dead letter {id:?} of a job: it was retried, deleted or purged already; GET /jobs/dead-letters lists them"
        ),
    ).into_response()
}

/// `GET /jobs/dead-letters/{id}`.
async fn get_dead_letter(State(service): State<Service>, Path(id): Path<String>) -> Response {
    if let Err(e) = validate_name("dead letter ID", &id) {
        return error_response(e);
    }
    match service.dead_job(&id).await {
        Ok(Some(letter)) => (StatusCode::OK, axum::Json(letter_view(letter))).into_response(),
        Ok(None) => no_letter(&id),
        Err(e) => error_response(e),
    }
}

/// `DELETE /jobs/dead-letters/{id}`.
async fn delete_dead_letter(State(service): State<Service>, Path(id): Path<String>) -> Response {
    if let Err(e) = validate_name("dead letter ID", &id) {
        return error_response(e);
    }
    match service.delete_dead_job(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => no_letter(&id),
        Err(e) => error_response(e),
    }
}

/// `POST /jobs/dead-letters/{id}/retry`: run the job again as a fresh one-shot job, due now.
async fn retry_dead_letter(State(service): State<Service>, Path(id): Path<String>) -> Response {
    if let Err(e) = validate_name("dead letter ID", &id) {
        return error_response(e);
    }
    match service.retry_dead_job(&id).await {
        Ok(Some(job_id)) => accepted(&job_id),
        Ok(None) => no_letter(&id),
        Err(e) => error_response(e),
    }
}

/// The query of `POST /jobs/dead-letters/purge`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PurgeParams {
    older_than: Option<String>,
}

/// An age: a duration as [`parse_duration`] reads it, or whole days (`7d`).
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let trimmed = text.trim();
    if let Some(days) = trimmed.strip_suffix('d')
        && !days.is_empty()
        && days.bytes().all(|b| b.is_ascii_digit())
    {
        return days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(24 * 3600))
            .filter(|s| *s <= i64::MAX as u64 / 1000)
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| format!("{days} days is too long an age"));
    }
    parse_duration(trimmed).map_err(|e| format!("{e}, or whole days like \"7d\""))
}

/// `POST /jobs/dead-letters/purge?olderThan=7d`: delete the dead letters of jobs dropped more
/// than that long ago.
async fn purge_dead_letters(State(service): State<Service>, uri: Uri) -> Response {
    let params: PurgeParams = match query(&uri, "olderThan") {
        Ok(params) => params,
        Err(problem) => return problem.into_response(),
    };
    let Some(older_than) = params.older_than else {
        return bad_request(
            "query parameter `olderThan` is missing; say how old the dead letters to delete must be, e.g. ?olderThan=7d (0s deletes them all)".into(),
        ).into_response();
    };
    let age = match parse_age(&older_than) {
        Ok(age) => age,
        Err(e) => {
            return bad_request(format!("query parameter `olderThan`: {e}")).into_response();
        }
    };
    match service.purge_dead_jobs(age).await {
        Ok(purged) => (StatusCode::OK, axum::Json(json!({"purged": purged}))).into_response(),
        Err(e) => error_response(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(query: &str, body: &[u8]) -> Result<JobSpec, String> {
        let uri: Uri = format!("/jobs/t/i/m?{query}").parse().unwrap();
        let params: DispatchParams = query_of(&uri);
        params.into_spec(body)
    }

    fn query_of<T: DeserializeOwned + Default>(uri: &Uri) -> T {
        match query(uri, "test") {
            Ok(t) => t,
            Err(problem) => panic!("refused: {:?}", problem.into_response().status()),
        }
    }

    #[test]
    fn dispatch_options_become_a_spec() {
        let spec = spec(
            "after=10s&every=PT1H&ttl=24h&key=welcome",
            br#"{"to": "Oslo"}"#,
        )
        .unwrap();
        assert_eq!(
            spec.due,
            Some(Due::After(std::time::Duration::from_secs(10)))
        );
        assert_eq!(spec.interval.unwrap().to_string(), "PT1H");
        assert_eq!(
            spec.ttl,
            Some(Ttl::For(std::time::Duration::from_secs(24 * 3600)))
        );
        assert_eq!(spec.key.as_deref(), Some("welcome"));
        assert_eq!(spec.data.unwrap().to_json().unwrap(), json!({"to": "Oslo"}));
        let at = self::spec("at=2026-01-01T00:00:00Z&cron=0+3+*+*+*", b"  ").unwrap();
        assert_eq!(at.due, Some(Due::AtMs(1_767_225_600_000)));
        assert_eq!(at.cron.unwrap().as_str(), "0 3 * * *");
        assert_eq!(at.data, None, "a blank body is no payload");
    }

    #[test]
    fn bad_dispatch_options_say_which_parameter_and_how_to_fix_it() {
        for (query, body, wanted) in [
            ("every=1m&cron=*+*+*+*+*", "", "`every` and `cron`"),
            ("after=1s&at=0", "", "`after` and `at`"),
            ("ttl=1s&until=0", "", "`ttl` and `until`"),
            ("after=soon", "", "`after`: invalid duration"),
            ("cron=0+3+*+*", "", "`cron`: invalid cron expression"),
            ("every=often", "", "`every`: invalid interval"),
            ("at=tomorrow", "", "`at`: invalid timestamp"),
            ("", "{not json", "the body is not JSON"),
        ] {
            let error = spec(query, body.as_bytes()).unwrap_err();
            assert!(error.contains(wanted), "{query}: {error}");
        }
    }

    #[test]
    fn ages_take_durations_and_whole_days() {
        assert_eq!(
            parse_age("7d").unwrap(),
            std::time::Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(
            parse_age("PT1H").unwrap(),
            std::time::Duration::from_secs(3600)
        );
        assert_eq!(parse_age("0s").unwrap(), std::time::Duration::ZERO);
        assert!(parse_age("d").unwrap_err().contains("7d"));
        assert!(parse_age("99999999999999999d").is_err());
        assert!(parse_age("-1d").is_err());
    }
}
