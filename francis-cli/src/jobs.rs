//! `francis jobs dispatch | get | list | cancel | dead-letters | retry | delete-dead-letter |
//! purge`: durable jobs through a host's control API (its `/jobs/...` routes). Each verb sends
//! one request, prints the answer as lines (or, with `--json`, as the server sent it), and
//! turns a refusal into an error that says what to do: bad input (400) ends with exit code 2,
//! an unknown job or dead letter with 1.

use francis::cron::Cron;
use francis::time::{Interval, parse_duration, parse_timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::exit::{Code, Failure, usage};
use crate::server::{Server, ServerArgs};

/// Arguments of `francis jobs`.
#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub action: JobsAction,
}

/// The `francis jobs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum JobsAction {
    /// Dispatch a job: run a #[job] method of an actor, durably, now, later or on a schedule.
    #[command(after_help = "Examples:
  francis jobs dispatch order o-1 ship --data '{\"to\": \"Oslo\"}'
  francis jobs dispatch order o-1 ship --after 10s --idempotency-key ship-o-1
  francis jobs dispatch report daily build --cron '0 3 * * *'     # every day at 03:00 UTC
  francis jobs dispatch feed f-1 refresh --every 15m --ttl 24h

With --idempotency-key, dispatching again while the job exists (pending, running, or succeeded
within 24 hours) returns the same job ID and stores nothing. Needs the operator role.")]
    Dispatch(DispatchArgs),
    /// Show one job: its actor, method, status, attempts and schedule.
    Get(GetArgs),
    /// List an actor's jobs.
    List(ListArgs),
    /// Cancel an actor's pending job (no further run or repeat).
    Cancel(CancelArgs),
    /// List the dead letters of jobs: the jobs that failed on every attempt.
    #[command(after_help = "Examples:
  francis jobs dead-letters --actor-type order     # newest first
  francis jobs retry 0193f7c2-...                  # run one again, as a new job
  francis jobs purge --older-than 7d               # delete those dropped over a week ago

Reading needs any role; retry, delete-dead-letter and purge need the operator role.")]
    DeadLetters(DeadLettersArgs),
    /// Run a dead-lettered job again, as a new job due now.
    Retry(LetterArgs),
    /// Delete a dead letter of a job without running it again.
    DeleteDeadLetter(LetterArgs),
    /// Delete the dead letters of jobs dropped longer ago than an age.
    Purge(PurgeArgs),
}

/// What every verb takes: the server, and the output format.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    #[command(flatten)]
    server: ServerArgs,
    /// Print the server's answer as JSON.
    #[arg(long)]
    json: bool,
}

/// `francis jobs dispatch`.
#[derive(Debug, clap::Args)]
pub struct DispatchArgs {
    /// The actor type.
    actor_type: String,
    /// The actor's ID.
    id: String,
    /// The #[job] method.
    method: String,
    /// The job's payload, as JSON (one value for a method of one parameter).
    #[arg(long, value_name = "JSON", value_parser = json_text)]
    data: Option<String>,
    /// First run this long from now (`10s`, `1h30m`, `PT10S`).
    #[arg(long, value_name = "DURATION", value_parser = duration_text, conflicts_with = "at")]
    after: Option<String>,
    /// First run at this time (RFC 3339, or Unix milliseconds).
    #[arg(long, value_name = "TIME", value_parser = timestamp_text)]
    at: Option<String>,
    /// Repeat at this interval (`15m`, `PT1H`, `P1M`).
    #[arg(long, value_name = "INTERVAL", value_parser = interval_text, conflicts_with = "cron")]
    every: Option<String>,
    /// Repeat on this 5-field cron schedule, in UTC (`'0 3 * * *'`).
    #[arg(long, value_name = "EXPR", value_parser = cron_text)]
    cron: Option<String>,
    /// Stop repeating this long after the first run.
    #[arg(long, value_name = "DURATION", value_parser = duration_text, conflicts_with = "until")]
    ttl: Option<String>,
    /// Stop repeating after this time (RFC 3339, or Unix milliseconds).
    #[arg(long, value_name = "TIME", value_parser = timestamp_text)]
    until: Option<String>,
    /// An idempotency key: while a job with this key exists on the actor, dispatching again
    /// returns its ID. (`--key` is the client certificate's key.)
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `francis jobs get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The job's ID (as dispatch printed it).
    job_id: String,
    #[command(flatten)]
    common: Common,
}

/// `francis jobs list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The actor type.
    actor_type: String,
    /// The actor's ID.
    id: String,
    #[command(flatten)]
    common: Common,
}

/// `francis jobs cancel`.
#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The actor type.
    actor_type: String,
    /// The actor's ID.
    id: String,
    /// The job's ID.
    job_id: String,
    #[command(flatten)]
    common: Common,
}

/// `francis jobs dead-letters`.
#[derive(Debug, clap::Args)]
pub struct DeadLettersArgs {
    /// Only those of this actor type.
    #[arg(long, value_name = "TYPE")]
    actor_type: Option<String>,
    /// At most this many, newest first (1 to 500).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    limit: u32,
    #[command(flatten)]
    common: Common,
}

/// `francis jobs retry | delete-dead-letter`.
#[derive(Debug, clap::Args)]
pub struct LetterArgs {
    /// The dead letter's ID (as `francis jobs dead-letters` lists them).
    dead_letter_id: String,
    #[command(flatten)]
    common: Common,
}

/// `francis jobs purge`.
#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    /// Delete the dead letters dropped longer ago than this (`7d`, `24h`; `0s` deletes all).
    #[arg(long, value_name = "AGE")]
    older_than: String,
    #[command(flatten)]
    common: Common,
}

/// `francis jobs …`.
pub fn run(args: JobsArgs) -> anyhow::Result<()> {
    match args.action {
        JobsAction::Dispatch(args) => dispatch(&args),
        JobsAction::Get(args) => get(&args),
        JobsAction::List(args) => list(&args),
        JobsAction::Cancel(args) => cancel(&args),
        JobsAction::DeadLetters(args) => dead_letters(&args),
        JobsAction::Retry(args) => retry(&args),
        JobsAction::DeleteDeadLetter(args) => delete_letter(&args),
        JobsAction::Purge(args) => purge(&args),
    }
}

fn json_text(text: &str) -> Result<String, String> {
    serde_json::from_str::<Value>(text)
        .map(|_| text.to_owned())
        .map_err(|e| {
            format!("not JSON ({e}); quote it for the shell, e.g. --data '{{\"to\": \"Oslo\"}}'")
        })
}

fn duration_text(text: &str) -> Result<String, String> {
    parse_duration(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

fn timestamp_text(text: &str) -> Result<String, String> {
    parse_timestamp(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

fn interval_text(text: &str) -> Result<String, String> {
    text.parse::<Interval>()
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

fn cron_text(text: &str) -> Result<String, String> {
    Cron::parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

/// The path of `segments` (each percent-encoded) with the query `params` (`None`s left out).
fn path_of(segments: &[&str], params: &[(&str, Option<&str>)]) -> String {
    let mut url = reqwest::Url::parse("http://server").expect("a constant URL parses");
    if let Ok(mut path) = url.path_segments_mut() {
        path.clear().extend(segments);
    }
    for (name, value) in params {
        if let Some(value) = value {
            url.query_pairs_mut().append_pair(name, value);
        }
    }
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Send one request; the answer's JSON (`null` for none) when it succeeded, else the failure
/// that says what to do.
fn call(common: &Common, method: Method, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
    let server = Server::new(&common.server)?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, text) = tokio.block_on(server.request(method, path, body))?;
    let url = server.url(path);
    let answer: Option<Value> = serde_json::from_str(&text).ok();
    if (200..300).contains(&status) {
        return match answer {
            Some(value) => Ok(value),
            None if text.trim().is_empty() => Ok(Value::Null),
            None => {
                Err(Failure::new(Code::Failed, format!("the answer of {url} is not JSON")).into())
            }
        };
    }
    let code = answer
        .as_ref()
        .and_then(|a| a["code"].as_str())
        .unwrap_or_default();
    let message = answer
        .as_ref()
        .and_then(|a| a["error"].as_str())
        .unwrap_or_default();
    Err(match (status, code) {
        (400 | 413, _) if !message.is_empty() => usage(format!("{url} refused it: {message}")),
        (404, "job_not_found") => Failure::new(Code::Failed, message.to_owned())
            .fix("francis jobs list <TYPE> <ID> shows an actor's jobs"),
        (404, "dead_letter_not_found") => Failure::new(Code::Failed, message.to_owned())
            .fix("francis jobs dead-letters lists the dead letters of jobs"),
        _ => server.refusal(&url, status, &text),
    }
    .into())
}

/// Print `value` as JSON when asked to, else the lines `render` makes of it.
fn print(
    common: &Common,
    value: &Value,
    render: impl FnOnce(&Value) -> String,
) -> anyhow::Result<()> {
    if common.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", render(value));
    }
    Ok(())
}

/// The text of a JSON string value (empty for anything else).
fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// `francis jobs dispatch`.
pub fn dispatch(args: &DispatchArgs) -> anyhow::Result<()> {
    let path = path_of(
        &["jobs", &args.actor_type, &args.id, &args.method],
        &[
            ("after", args.after.as_deref()),
            ("at", args.at.as_deref()),
            ("every", args.every.as_deref()),
            ("cron", args.cron.as_deref()),
            ("ttl", args.ttl.as_deref()),
            ("until", args.until.as_deref()),
            ("key", args.idempotency_key.as_deref()),
        ],
    );
    let body = args.data.clone().unwrap_or_default().into_bytes();
    let answer = call(&args.common, Method::POST, &path, body)?;
    print(&args.common, &answer, |a| {
        format!(
            "job {} dispatched: {}/{} {}\n",
            text(&a["jobId"]),
            args.actor_type,
            args.id,
            args.method
        )
    })
}

/// A job's details, a line each (what it lacks left out).
fn render_job(job: &Value) -> String {
    let mut out = format!("job {}\n", text(&job["jobId"]));
    let mut line = |name: &str, value: String| out.push_str(&format!("  {name:<10}  {value}\n"));
    line(
        "actor",
        format!("{}/{}", text(&job["actorType"]), text(&job["actorId"])),
    );
    line("method", text(&job["method"]).to_owned());
    line("status", text(&job["status"]).to_owned());
    line("attempts", job["attempts"].to_string());
    for (name, field) in [
        ("due", "dueTime"),
        ("every", "interval"),
        ("cron", "cron"),
        ("key", "idempotencyKey"),
        ("finished", "finishedTime"),
        ("last error", "lastError"),
    ] {
        if let Some(value) = job[field].as_str() {
            line(name, value.to_owned());
        }
    }
    out
}

/// A job on one line.
fn job_line(job: &Value) -> String {
    let mut line = format!(
        "{}  {}  {}  attempts {}",
        text(&job["jobId"]),
        text(&job["method"]),
        text(&job["status"]),
        job["attempts"]
    );
    for (name, field) in [
        ("due", "dueTime"),
        ("every", "interval"),
        ("cron", "cron"),
        ("key", "idempotencyKey"),
        ("finished", "finishedTime"),
    ] {
        if let Some(value) = job[field].as_str() {
            line.push_str(&format!("  {name} {value}"));
        }
    }
    line.push('\n');
    line
}

/// `francis jobs get`.
pub fn get(args: &GetArgs) -> anyhow::Result<()> {
    let answer = call(
        &args.common,
        Method::GET,
        &path_of(&["jobs", &args.job_id], &[]),
        Vec::new(),
    )?;
    print(&args.common, &answer, render_job)
}

/// `francis jobs list`.
pub fn list(args: &ListArgs) -> anyhow::Result<()> {
    let answer = call(
        &args.common,
        Method::GET,
        &path_of(&["jobs", &args.actor_type, &args.id], &[]),
        Vec::new(),
    )?;
    print(&args.common, &answer, |jobs| {
        let jobs = jobs.as_array().cloned().unwrap_or_default();
        if jobs.is_empty() {
            return format!("no jobs on {}/{}\n", args.actor_type, args.id);
        }
        jobs.iter().map(job_line).collect()
    })
}

/// `francis jobs cancel`.
pub fn cancel(args: &CancelArgs) -> anyhow::Result<()> {
    call(
        &args.common,
        Method::DELETE,
        &path_of(&["jobs", &args.actor_type, &args.id, &args.job_id], &[]),
        Vec::new(),
    )?;
    let answer = json!({"jobId": args.job_id, "cancelled": true});
    print(&args.common, &answer, |_| {
        format!(
            "job {} of {}/{} cancelled\n",
            args.job_id, args.actor_type, args.id
        )
    })
}

/// A dead letter on one line.
fn letter_line(letter: &Value) -> String {
    format!(
        "{}  {}/{}  {}  job {}  {} attempts, dropped {}: {}\n",
        text(&letter["id"]),
        text(&letter["actorType"]),
        text(&letter["actorId"]),
        text(&letter["method"]),
        text(&letter["jobId"]),
        letter["attempts"],
        text(&letter["droppedTime"]),
        text(&letter["lastError"]),
    )
}

/// `francis jobs dead-letters`.
pub fn dead_letters(args: &DeadLettersArgs) -> anyhow::Result<()> {
    let limit = args.limit.to_string();
    let path = path_of(
        &["jobs", "dead-letters"],
        &[
            ("actorType", args.actor_type.as_deref()),
            ("limit", Some(&limit)),
        ],
    );
    let answer = call(&args.common, Method::GET, &path, Vec::new())?;
    print(&args.common, &answer, |letters| {
        let letters = letters.as_array().cloned().unwrap_or_default();
        if letters.is_empty() {
            return "no dead letters of jobs\n".to_owned();
        }
        letters.iter().map(letter_line).collect()
    })
}

/// `francis jobs retry`.
pub fn retry(args: &LetterArgs) -> anyhow::Result<()> {
    let path = path_of(
        &["jobs", "dead-letters", &args.dead_letter_id, "retry"],
        &[],
    );
    let answer = call(&args.common, Method::POST, &path, Vec::new())?;
    print(&args.common, &answer, |a| {
        format!(
            "dead letter {} runs again as job {}\n",
            args.dead_letter_id,
            text(&a["jobId"])
        )
    })
}

/// `francis jobs delete-dead-letter`.
pub fn delete_letter(args: &LetterArgs) -> anyhow::Result<()> {
    let path = path_of(&["jobs", "dead-letters", &args.dead_letter_id], &[]);
    call(&args.common, Method::DELETE, &path, Vec::new())?;
    let answer = json!({"id": args.dead_letter_id, "deleted": true});
    print(&args.common, &answer, |_| {
        format!("dead letter {} deleted\n", args.dead_letter_id)
    })
}

/// `francis jobs purge`.
pub fn purge(args: &PurgeArgs) -> anyhow::Result<()> {
    let path = path_of(
        &["jobs", "dead-letters", "purge"],
        &[("olderThan", Some(&args.older_than))],
    );
    let answer = call(&args.common, Method::POST, &path, Vec::new())?;
    print(&args.common, &answer, |a| {
        format!(
            "{} dead letters of jobs dropped more than {} ago deleted\n",
            a["purged"], args.older_than
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_each_segment_and_the_query() {
        assert_eq!(
            path_of(
                &["jobs", "order", "a b/c", "ship"],
                &[("after", Some("10s"))]
            ),
            "/jobs/order/a%20b%2Fc/ship?after=10s"
        );
        assert_eq!(
            path_of(
                &["jobs", "t", "i", "m"],
                &[("cron", Some("0 3 * * *")), ("key", None)]
            ),
            "/jobs/t/i/m?cron=0+3+*+*+*"
        );
        assert_eq!(path_of(&["jobs", "j-1"], &[]), "/jobs/j-1");
    }

    #[test]
    fn a_job_prints_what_it_has() {
        let job = json!({
            "jobId": "j-1", "actorType": "order", "actorId": "o-1", "method": "ship",
            "status": "dead_lettered", "attempts": 3, "dueTime": null, "interval": null,
            "cron": null, "idempotencyKey": "k", "lastError": "carrier down",
            "finishedTime": "2026-12-05T00:00:00Z"
        });
        assert_eq!(
            render_job(&job),
            "job j-1\n  actor       order/o-1\n  method      ship\n  status      dead_lettered\n  attempts    3\n  key         k\n  finished    2026-12-05T00:00:00Z\n  last error  carrier down\n"
        );
        assert_eq!(
            job_line(&job),
            "j-1  ship  dead_lettered  attempts 3  key k  finished 2026-12-05T00:00:00Z\n"
        );
    }

    #[test]
    fn values_are_checked_before_anything_is_sent() {
        assert!(json_text("{\"to\": 1}").is_ok());
        assert!(json_text("{to: 1}").unwrap_err().contains("--data '{"));
        assert!(
            duration_text("soon")
                .unwrap_err()
                .contains("invalid duration")
        );
        assert!(interval_text("P1M").is_ok());
        assert!(cron_text("0 3 * *").unwrap_err().contains("5 fields"));
        assert!(timestamp_text("2026-01-01T00:00:00Z").is_ok());
    }
}
