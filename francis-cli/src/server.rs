//! Talking to an operations HTTP server (a host's control server, or a runtime's
//! `http.bind`) for the `francis cluster` and `francis jobs` commands: the connection options
//! they share, and requests whose failures say what to do.

use std::time::Duration;

use crate::exit::{Code, Failure, usage};
use crate::term;

/// How to reach and authenticate with the server.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The operations HTTP server to ask: a host's control server, or a runtime's `http.bind`.
    #[arg(
        long,
        env = "FRANCIS_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub(crate) url: String,
    /// The server's bearer token (reading needs any role; actions need the operator role, and
    /// log levels the admin's).
    #[arg(
        long,
        env = "FRANCIS_HTTP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) token: Option<String>,
    /// For an https:// server with a certificate of the cluster CA (a runtime with http.tls):
    /// the CA to verify it with (`francis ca print > ca.pem`).
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<std::path::PathBuf>,
    /// A client certificate to authenticate with instead of a token (`francis ca
    /// issue-operator`); needs --key.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub(crate) cert: Option<std::path::PathBuf>,
    /// The client certificate's private key.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub(crate) key: Option<std::path::PathBuf>,
    /// How long to wait for the answer.
    #[arg(long, default_value = "10s", value_parser = francis::time::parse_duration)]
    pub(crate) timeout: Duration,
}

/// A server to send requests to.
pub struct Server {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
    timeout: Duration,
}

impl Server {
    /// The server of `args`, with its TLS files read.
    pub fn new(args: &ServerArgs) -> anyhow::Result<Server> {
        let base = base_url(&args.url)?;
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                usage(format!("cannot read the {what} {}: {e}", path.display()))
                    .fix("check the path")
            })
        };
        let mut builder = reqwest::Client::builder().timeout(args.timeout);
        if let Some(path) = &args.ca_file {
            let ca = reqwest::Certificate::from_pem(&read(path, "CA file")?).map_err(|e| {
                usage(format!("{} is not a PEM certificate: {e}", path.display()))
                    .fix("write it with `francis ca print --config config.yaml > ca.pem`")
            })?;
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(ca);
        }
        if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
            let mut pem = read(cert, "certificate")?;
            pem.extend_from_slice(&read(key, "key")?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                usage(format!(
                    "{} and {} are not a PEM certificate and its key: {e}",
                    cert.display(),
                    key.display()
                ))
                .fix("issue them with `francis ca issue-operator`")
            })?;
            builder = builder.identity(identity);
        }
        if is_loopback(&base) {
            // A proxy from the environment cannot reach this machine's own servers.
            builder = builder.no_proxy();
        }
        let client = builder
            .build()
            .map_err(|e| Failure::new(Code::Failed, format!("creating the HTTP client: {e}")))?;
        Ok(Server {
            base,
            token: args.token.clone(),
            client,
            timeout: args.timeout,
        })
    }

    /// The URL of `path` on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path`: the body of a successful answer, or what went wrong and what to do.
    pub async fn get(&self, path: &str) -> anyhow::Result<String> {
        let url = self.url(path);
        let (status, body) = self.send(self.client.get(&url), &url).await?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(self.refusal(&url, status, &body).into())
    }

    /// POST `body` as JSON to `path`: the status and body of any answer the server gave
    /// (action answers carry their decisions whatever the status), or what went wrong.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<(u16, String)> {
        let url = self.url(path);
        let (status, answer) = self.send(self.client.post(&url).json(body), &url).await?;
        if status == 401 || (status >= 400 && !answer.trim_start().starts_with('{')) {
            return Err(self.refusal(&url, status, &answer).into());
        }
        Ok((status, answer))
    }

    /// Send `method` to `path` with `body` (JSON; empty for none) and the JSON content type the
    /// control API asks of every request that changes something: the status and body of any
    /// answer the server gave, or what went wrong before one came.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, String)> {
        let url = self.url(path);
        let request = self
            .client
            .request(method, &url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(request, &url).await
    }

    async fn send(
        &self,
        mut request: reqwest::RequestBuilder,
        url: &str,
    ) -> anyhow::Result<(u16, String)> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let unreachable = |what: String| {
            Failure::new(Code::Unreachable, what).fix(
                "check --url (or FRANCIS_URL), and that a host with its control server, or a runtime with its operations server (http.bind), is running there",
            )
        };
        let response = request.send().await.map_err(|e| {
            if e.is_builder() {
                usage(format!("{url} is not a usable URL: {e}"))
                    .fix("pass the server's URL, e.g. --url http://127.0.0.1:8080")
            } else if e.is_timeout() {
                unreachable(format!(
                    "{url} did not answer within {}",
                    term::duration_text(self.timeout)
                ))
            } else if e.is_connect() {
                unreachable(format!("cannot connect to {url}: {}", cause(&e)))
            } else {
                unreachable(format!("asking {url} failed: {}", cause(&e)))
            }
        })?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| {
            unreachable(format!("reading the answer of {url} failed: {}", cause(&e)))
        })?;
        Ok((status, body))
    }

    /// What an answer of `status` that is not the expected one means, and what to do.
    pub fn refusal(&self, url: &str, status: u16, body: &str) -> Failure {
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let problem = format!("{url} answered {status} {reason}{}", server_error(body));
        match status {
            401 if self.token.is_some() => Failure::new(Code::Failed, problem).fix(
                "the token was refused: pass a token of this server with --token or FRANCIS_HTTP_TOKEN",
            ),
            401 => Failure::new(Code::Failed, problem).fix(
                "the server needs a token: pass --token or set FRANCIS_HTTP_TOKEN (reading needs any role; actions need an operator's)",
            ),
            403 => Failure::new(Code::Failed, problem).fix(
                "use a token whose role allows this (viewer, operator or admin), and call the server by an address it answers to",
            ),
            404 => Failure::new(Code::Failed, problem).fix(
                "this server has no such endpoint: check that --url is a Francis host's control server or a runtime's operations server, of a version that serves it",
            ),
            _ => Failure::new(Code::Failed, problem),
        }
    }
}

/// The server's base URL from `--url` (`http://` is assumed when no scheme is given).
fn base_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    if url.is_empty() {
        return Err(usage("--url is empty")
            .fix("pass the server's URL, e.g. --url http://127.0.0.1:8080")
            .into());
    }
    let base = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(
            usage(format!("--url {url:?} is not an http:// or https:// URL"))
                .fix("pass the server's URL, e.g. --url http://127.0.0.1:8080")
                .into(),
        );
    }
    Ok(base)
}

/// Whether `url` names this machine (`localhost`, a loopback IP).
fn is_loopback(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The root cause of `e` (reqwest's own message only repeats the URL).
fn cause(e: &dyn std::error::Error) -> String {
    let mut root = e;
    while let Some(inner) = root.source() {
        root = inner;
    }
    root.to_string()
}

/// `: <message>` from a Francis error body (`{"error": ..., "code": ...}`), else nothing.
fn server_error(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .map(|message| format!(": {message}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;
    use crate::exit::failure_of;

    fn args(url: &str, token: Option<&str>) -> ServerArgs {
        ServerArgs {
            url: url.to_owned(),
            token: token.map(str::to_owned),
            ca_file: None,
            cert: None,
            key: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// A one-request HTTP server on loopback answering `status` with `body`; returns its URL
    /// and the request it got.
    fn serve_once(status: &str, body: &str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(response.as_bytes()).unwrap();
            String::from_utf8_lossy(&request).into_owned()
        });
        (url, server)
    }

    fn get(url: &str, token: Option<&str>) -> anyhow::Result<String> {
        let server = Server::new(&args(url, token))?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(server.get("/api/cluster/state"))
    }

    #[test]
    fn loopback_urls_are_told_apart() {
        for url in [
            "http://127.0.0.1:8080/x",
            "http://LOCALHOST/",
            "http://[::1]:8444/",
            "http://127.9.9.9",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "http://10.0.0.5:8080/",
            "https://ops.internal/",
            "http://[fe80::1]/",
            "nonsense",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn the_url_may_omit_the_scheme_and_end_with_a_slash() {
        for (url, base) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://ops.internal/", "https://ops.internal"),
            ("127.0.0.1:8444", "http://127.0.0.1:8444"),
        ] {
            assert_eq!(base_url(url).unwrap(), base);
        }
        for url in ["", "ftp://host", "  "] {
            let error = base_url(url).unwrap_err();
            let failure = error.downcast_ref::<Failure>().unwrap();
            assert_eq!(failure.code, Code::Usage, "{url:?}");
        }
    }

    #[test]
    fn requests_carry_the_bearer_token() {
        let (url, server) = serve_once("200 OK", r#"{"api_version":"1.0"}"#);
        let body = get(&url, Some("s3cret-token")).unwrap();
        assert_eq!(body, r#"{"api_version":"1.0"}"#);
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /api/cluster/state HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains("authorization: bearer s3cret-token\r\n"),
            "{request}"
        );
    }

    #[test]
    fn a_refused_or_missing_token_says_how_to_pass_one() {
        let body = r#"{"error": "the request has no bearer token", "code": "unauthorized"}"#;
        let (url, server) = serve_once("401 Unauthorized", body);
        let (code, problem, fix) = failure_of(get(&url, None));
        server.join().unwrap();
        assert_eq!(code, Code::Failed);
        assert!(
            problem.ends_with("answered 401 Unauthorized: the request has no bearer token"),
            "{problem}"
        );
        assert!(
            fix.contains("--token") && fix.contains("FRANCIS_HTTP_TOKEN"),
            "{fix}"
        );

        let (url, server) = serve_once("401 Unauthorized", "{}");
        let (_, _, fix) = failure_of(get(&url, Some("wrong")));
        server.join().unwrap();
        assert!(fix.starts_with("the token was refused"), "{fix}");

        let (url, server) = serve_once("403 Forbidden", r#"{"error": "not for you"}"#);
        let (_, problem, fix) = failure_of(get(&url, Some("t")));
        server.join().unwrap();
        assert!(problem.ends_with("403 Forbidden: not for you"), "{problem}");
        assert!(fix.contains("viewer, operator or admin"), "{fix}");

        let (url, server) = serve_once("404 Not Found", "nothing here");
        let (_, problem, fix) = failure_of(get(&url, None));
        server.join().unwrap();
        assert!(problem.ends_with("answered 404 Not Found"), "{problem}");
        assert!(fix.contains("no such endpoint"), "{fix}");
    }

    #[test]
    fn a_server_that_is_not_running_is_unreachable_and_named() {
        // A port that was just free: nothing listens on it.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let (code, problem, fix) = failure_of(get(&url, None));
        assert_eq!(code, Code::Unreachable);
        assert!(
            problem.starts_with(&format!("cannot connect to {url}/api/cluster/state")),
            "{problem}"
        );
        assert!(
            fix.contains("http.bind") && fix.contains("control server"),
            "{fix}"
        );
    }
}
