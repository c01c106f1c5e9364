//! The HTTP control API against the attacks a web page or a stranger could make on it: each
//! test serves the API on 127.0.0.1 and sends real HTTP/1.1 requests, shaped as a browser or a
//! rebinding page would send them, then checks the refusal and that nothing happened to the
//! actors.

use std::net::SocketAddr;

use francis::http::{ControlApi, ControlApiError, HttpToken};
use francis::prelude::*;
use francis::testing::TestHost;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Counter {
    count: u64,
}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { count: 0 }
    }

    pub async fn add(&mut self, by: u64) -> Result<u64, String> {
        self.count += by;
        Ok(self.count)
    }

    pub async fn get(&self) -> Result<u64, String> {
        Ok(self.count)
    }
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// A host with counters, and its control API served on a free loopback port.
async fn serve(api: ControlApi) -> (TestHost, SocketAddr) {
    let host = TestHost::builder()
        .register::<Counter>()
        .build()
        .await
        .unwrap();
    let listener = api.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(listener.serve(host.service(), std::future::pending()));
    (host, address)
}

/// A raw HTTP/1.1 request: exactly the headers given, plus `Content-Length` and
/// `Connection: close`.
struct Request {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// What came back: the status, the headers (names in lower case) and the body as JSON (`null`
/// when empty).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

impl Request {
    fn new(method: &'static str, path: &str) -> Self {
        Request {
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// As curl sends it: `Host` the address it connects to, a JSON content type.
    fn curl(method: &'static str, path: &str, address: SocketAddr) -> Self {
        Request::new(method, path)
            .header("Host", &address.to_string())
            .header("Content-Type", "application/json")
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }

    async fn send(&self, address: SocketAddr) -> Reply {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(self.body.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap();
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }
}

#[tokio::test]
async fn a_cross_site_form_post_without_json_content_type_is_refused() {
    let (host, address) = serve(ControlApi::new()).await;
    let bob = host.actor::<Counter>("bob");
    bob.add(1).await.unwrap();
    assert_eq!(host.active_actors(), 1);

    // What a form or a fetch of another site may send without a preflight.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("text/plain; charset=application/json"),
        None,
    ] {
        let mut invoke = Request::curl("POST", "/invoke/counter/alice/add", address)
            .without("Content-Type")
            .body("5");
        let mut halt_all = Request::curl("POST", "/halt-all", address).without("Content-Type");
        if let Some(content_type) = content_type {
            invoke = invoke.header("Content-Type", content_type);
            halt_all = halt_all.header("Content-Type", content_type);
        }
        for request in [invoke, halt_all] {
            let reply = request.send(address).await;
            assert_eq!(reply.status, 415, "{content_type:?}: {reply:?}");
            assert_eq!(reply.code(), "unsupported_media_type", "{reply:?}");
            assert!(
                reply.error().contains("Content-Type: application/json"),
                "the error says what to send: {reply:?}"
            );
        }
        let reply = Request::curl("DELETE", "/alarm/counter/bob/tick", address)
            .without("Content-Type")
            .send(address)
            .await;
        assert_eq!(reply.status, 415, "{reply:?}");
    }
    // Nothing happened: alice was never activated, bob was not halted.
    assert!(!host.is_active::<Counter>("alice"));
    assert!(host.is_active::<Counter>("bob"));
    assert_eq!(host.active_actors(), 1);
    assert_eq!(bob.get().await.unwrap(), 1);

    // JSON, with or without parameters, goes through.
    let reply = Request::curl("POST", "/invoke/counter/alice/add", address)
        .without("Content-Type")
        .header("Content-Type", "Application/JSON; charset=utf-8")
        .body("5")
        .send(address)
        .await;
    assert_eq!((reply.status, reply.body), (200, json!(5)));
    let reply = Request::curl("POST", "/halt-all", address)
        .send(address)
        .await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(host.active_actors(), 0);
}

#[tokio::test]
async fn a_request_from_a_foreign_origin_is_refused() {
    let (host, address) =
        serve(ControlApi::new().allowed_origins(["http://localhost:3000", "not an origin"])).await;
    let port = address.port();
    for origin in [
        "http://evil.example".to_owned(),
        "https://evil.example".to_owned(),
        "null".to_owned(),
        format!("http://localhost:{}", port.wrapping_add(1)),
        format!("https://127.0.0.1:{port}"),
        "http://localhost:3001".to_owned(),
        "not an origin".to_owned(),
    ] {
        let reply = Request::curl("POST", "/invoke/counter/alice/add", address)
            .header("Origin", &origin)
            .body("5")
            .send(address)
            .await;
        assert_eq!(reply.status, 403, "{origin}: {reply:?}");
        assert_eq!(reply.code(), "origin_not_allowed", "{reply:?}");
        assert!(reply.error().contains("allowed_origins"), "{reply:?}");
        // Reading is refused as well.
        let reply = Request::curl("GET", "/status", address)
            .header("Origin", &origin)
            .send(address)
            .await;
        assert_eq!(reply.status, 403, "{origin}: {reply:?}");
    }
    assert!(!host.is_active::<Counter>("alice"));

    // An allowed origin is answered, with CORS headers, and so is its preflight.
    let reply = Request::curl("POST", "/invoke/counter/alice/add", address)
        .header("Origin", "http://localhost:3000")
        .body("5")
        .send(address)
        .await;
    assert_eq!((reply.status, &reply.body), (200, &json!(5)), "{reply:?}");
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    let reply = Request::curl("OPTIONS", "/invoke/counter/alice/add", address)
        .without("Content-Type")
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send(address)
        .await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert!(
        reply
            .header("access-control-allow-headers")
            .is_some_and(|h| h.contains("content-type"))
    );
    // A foreign origin's preflight gets no such answer.
    let reply = Request::curl("OPTIONS", "/invoke/counter/alice/add", address)
        .without("Content-Type")
        .header("Origin", "http://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send(address)
        .await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert_eq!(host.actor::<Counter>("alice").get().await.unwrap(), 5);
}

#[tokio::test]
async fn a_dns_rebinding_host_header_is_refused() {
    let (host, address) = serve(ControlApi::new().allowed_hosts([
        "Francis.Internal",
        "proxy.internal:443",
        "fd00::5",
    ]))
    .await;
    let port = address.port();
    // A page of evil.example whose name now resolves to 127.0.0.1: to the browser it is
    // same-origin, so the Origin matches the Host; the Host does not name this machine.
    for evil in [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("10.0.0.1:{port}"),
        "localhost:port".to_owned(),
        "".to_owned(),
    ] {
        let reply = Request::curl("GET", "/status", address)
            .without("Host")
            .header("Host", &evil)
            .header("Origin", &format!("http://{evil}"))
            .send(address)
            .await;
        assert_eq!(reply.status, 403, "{evil}: {reply:?}");
        assert_eq!(reply.code(), "host_not_allowed", "{reply:?}");
        assert!(reply.error().contains("allowed_hosts"), "{reply:?}");
        let reply = Request::curl("POST", "/invoke/counter/alice/add", address)
            .without("Host")
            .header("Host", &evil)
            .body("5")
            .send(address)
            .await;
        assert_eq!(reply.status, 403, "{evil}: {reply:?}");
    }
    assert!(!host.is_active::<Counter>("alice"));

    // No Host at all, or two.
    let reply = Request::curl("GET", "/status", address)
        .without("Host")
        .send(address)
        .await;
    assert_eq!((reply.status, reply.code()), (400, "missing_host"));
    let reply = Request::curl("GET", "/status", address)
        .header("Host", "evil.example")
        .send(address)
        .await;
    assert_eq!(reply.status, 400, "{reply:?}");

    // Loopback names with any port, and the allowed host, are answered.
    for good in [
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        "localhost".to_owned(),
        format!("127.0.0.1:{port}"),
        format!("127.8.9.10:{port}"),
        format!("[::1]:{port}"),
        format!("francis.internal:{port}"),
        "FRANCIS.internal".to_owned(),
        format!("proxy.internal:{port}"),
        "[fd00::5]".to_owned(),
    ] {
        let reply = Request::curl("GET", "/status", address)
            .without("Host")
            .header("Host", &good)
            .send(address)
            .await;
        assert_eq!(reply.status, 200, "{good}: {reply:?}");
        assert_eq!(reply.body["topology"], json!("local"));
    }
    let reply = Request::curl("POST", "/invoke/counter/alice/add", address)
        .without("Host")
        .header("Host", &format!("francis.internal:{port}"))
        .body("5")
        .send(address)
        .await;
    assert_eq!((reply.status, reply.body), (200, json!(5)));
}

/// A server with tokens answers a request by any name when it proves a token (a page doing DNS
/// rebinding cannot: it does not know the token), such as a Prometheus scraping a pod by its
/// IP; without the token the foreign name is still refused, and the probes answer anyone.
#[tokio::test]
async fn a_foreign_host_is_answered_only_with_a_bearer_token() {
    let token = "scrape-token-0123456789abcdef";
    let (_host, address) = serve(ControlApi::new().role_token(
        francis::http::Role::Viewer,
        francis::http::HttpToken::new(token).unwrap(),
    ))
    .await;
    let foreign = format!("10.1.2.3:{}", address.port());
    let reply = Request::curl("GET", "/status", address)
        .without("Host")
        .header("Host", &foreign)
        .header("Authorization", &format!("Bearer {token}"))
        .send(address)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = Request::curl("GET", "/status", address)
        .without("Host")
        .header("Host", &foreign)
        .send(address)
        .await;
    assert_eq!(
        reply.status, 401,
        "a foreign name without a token: {reply:?}"
    );
    let reply = Request::curl("GET", "/readyz", address)
        .without("Host")
        .header("Host", &foreign)
        .send(address)
        .await;
    assert_eq!(reply.status, 200, "the probes answer anyone: {reply:?}");
}

#[tokio::test]
async fn a_request_without_the_bearer_token_is_refused() {
    let (host, address) = serve(ControlApi::new().token(HttpToken::new(TOKEN).unwrap())).await;
    let wrong = format!("{}0", &TOKEN[..TOKEN.len() - 1]);
    for authorization in [
        None,
        Some(format!("Bearer {wrong}")),
        Some(format!("Bearer {TOKEN}0")),
        Some("Bearer ".to_owned()),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_owned()),
    ] {
        let mut requests = vec![
            Request::curl("POST", "/invoke/counter/alice/add", address).body("5"),
            Request::curl("GET", "/status", address),
        ];
        for request in &mut requests {
            if let Some(value) = &authorization {
                request
                    .headers
                    .push(("Authorization".into(), value.clone()));
            }
            let reply = request.send(address).await;
            assert_eq!(reply.status, 401, "{authorization:?}: {reply:?}");
            assert_eq!(reply.code(), "unauthorized", "{reply:?}");
            assert!(
                reply
                    .header("www-authenticate")
                    .is_some_and(|h| h.starts_with("Bearer")),
                "{reply:?}"
            );
            assert!(reply.error().contains("FRANCIS_HTTP_TOKEN"), "{reply:?}");
            assert!(!reply.error().contains(TOKEN), "{reply:?}");
        }
    }
    // Two Authorization headers, one of them right, are refused too.
    let reply = Request::curl("GET", "/status", address)
        .header("Authorization", &format!("Bearer {wrong}"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(address)
        .await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert!(!host.is_active::<Counter>("alice"));

    let reply = Request::curl("POST", "/invoke/counter/alice/add", address)
        .header("Authorization", &format!("bearer {TOKEN}"))
        .body("5")
        .send(address)
        .await;
    assert_eq!((reply.status, &reply.body), (200, &json!(5)), "{reply:?}");
    let reply = Request::curl("GET", "/status", address)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(address)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["activeActors"], json!(1));
}

#[tokio::test]
async fn binding_to_a_non_loopback_address_without_a_token_is_refused() {
    let port = francis::testing::free_port();
    for address in [format!("0.0.0.0:{port}"), format!("[::]:{port}")] {
        let address: SocketAddr = address.parse().unwrap();
        let error = ControlApi::new().bind(address).await.unwrap_err();
        assert!(
            matches!(error, ControlApiError::TokenRequired { address: a } if a == address),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("without a bearer token")
                && message.contains("FRANCIS_HTTP_TOKEN")
                && message.contains(&address.to_string()),
            "{message}"
        );
    }
    // It refused before binding: the port is still free.
    drop(
        tokio::net::TcpListener::bind(("0.0.0.0", port))
            .await
            .unwrap(),
    );
    // A listener bound already is refused (and closed) as well.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let error = ControlApi::new().listener(listener).unwrap_err();
    assert!(
        matches!(error, ControlApiError::TokenRequired { .. }),
        "{error:?}"
    );

    // With a token it serves there, and asks for the token.
    let host = TestHost::builder()
        .register::<Counter>()
        .build()
        .await
        .unwrap();
    let listener = ControlApi::new()
        .token(HttpToken::new(TOKEN).unwrap())
        .bind("0.0.0.0:0".parse().unwrap())
        .await
        .unwrap();
    let address = SocketAddr::from(([127, 0, 0, 1], listener.local_addr().unwrap().port()));
    tokio::spawn(listener.serve(host.service(), std::future::pending()));
    let reply = Request::curl("GET", "/status", address).send(address).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    let reply = Request::curl("GET", "/status", address)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(address)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn a_same_origin_browser_request_and_a_plain_curl_request_still_work() {
    let (host, address) = serve(ControlApi::new()).await;
    let port = address.port();

    // curl: no Origin, Host as typed, a JSON content type.
    let reply = Request::curl("POST", "/invoke/counter/alice/add", address)
        .body("5")
        .send(address)
        .await;
    assert_eq!((reply.status, &reply.body), (200, &json!(5)), "{reply:?}");
    let reply = Request::curl("POST", "/peek/counter/alice/get", address)
        .send(address)
        .await;
    assert_eq!((reply.status, &reply.body), (200, &json!(5)), "{reply:?}");
    let reply = Request::new("GET", "/status")
        .header("Host", &format!("localhost:{port}"))
        .send(address)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["activeActors"], json!(1));

    // A page served by the control server itself, as a browser sends its fetch.
    let reply = Request::new("POST", "/invoke/counter/alice/add")
        .header("Host", &format!("localhost:{port}"))
        .header("Origin", &format!("http://localhost:{port}"))
        .header("Sec-Fetch-Site", "same-origin")
        .header("Content-Type", "application/json")
        .body("2")
        .send(address)
        .await;
    assert_eq!((reply.status, &reply.body), (200, &json!(7)), "{reply:?}");
    assert_eq!(reply.header("access-control-allow-origin"), None);

    // A real client library, as the examples' tests use.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .post(format!("http://{address}/invoke/counter/alice/add"))
        .json(&json!(3))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!(10));
    let response = client
        .post(format!("http://{address}/halt-all"))
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(host.active_actors(), 0);

    // The plain router, served as an app would, has the same defaults (alice was halted, and
    // keeps no state).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, francis::http::router(host.service())).await });
    let reply = Request::curl("POST", "/invoke/counter/alice/add", plain)
        .body("1")
        .send(plain)
        .await;
    assert_eq!((reply.status, &reply.body), (200, &json!(1)), "{reply:?}");
    let reply = Request::curl("POST", "/halt-all", plain)
        .without("Content-Type")
        .header("Content-Type", "text/plain")
        .send(plain)
        .await;
    assert_eq!(reply.status, 415, "{reply:?}");
    let reply = Request::curl("GET", "/status", plain)
        .without("Host")
        .header("Host", "evil.example")
        .send(plain)
        .await;
    assert_eq!(reply.status, 403, "{reply:?}");
}
