//! The fleet web UI in a real browser: headless Chromium, driven over the WebDriver protocol
//! by chromedriver, against a real two-host local cluster (SQLite file, QUIC peer links on
//! loopback) whose first host serves the control API and the page. Through the page, with the
//! keyboard, it selects the second host, drains it after reading the preflight's blast radius,
//! and checks that the audit ID shows up and that the actors moved.
//!
//! Without `/usr/bin/chromium` or `chromedriver` the test says so and passes, unless
//! `FRANCIS_REQUIRE_BROWSER=1` (set by `tests/check.sh`, which installs them). With
//! `FRANCIS_UI_SCREENSHOT=<file.png>` it saves a screenshot of the page after the drain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use base64::Engine as _;
use francis::http::ControlApi;
use francis::prelude::Service;
use serde_json::{Value, json};
use support::Where;
use tokio::time::Instant;

mod support;

const PSK: &str = "ui-test-psk-0123456789abcdef0123456789abcdef";
const CHROMIUM: &str = "/usr/bin/chromium";
const REQUIRE_ENV: &str = "FRANCIS_REQUIRE_BROWSER";
const SCREENSHOT_ENV: &str = "FRANCIS_UI_SCREENSHOT";
/// How long one WebDriver command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);
/// How long the page may take to show something it should.
const PAGE_LIMIT: Duration = Duration::from_secs(15);
/// WebDriver's key codes.
const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";
const TAB: &str = "\u{E004}";

/// Chromium and chromedriver, or `None` (after saying why on stderr) to skip; panics when they
/// are missing and `FRANCIS_REQUIRE_BROWSER` is set.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    use std::io::Write as _;

    let chromium = PathBuf::from(CHROMIUM);
    let driver = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("chromedriver"))
        .find(|candidate| candidate.is_file());
    let missing: Vec<&str> = [
        (!chromium.is_file()).then_some(CHROMIUM),
        driver.is_none().then_some("chromedriver"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return driver.map(|driver| (chromium, driver));
    }
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{REQUIRE_ENV} is set but {} is missing: install them with \
         `apt-get install chromium chromium-driver` (tests/browser.sh install does)",
        missing.join(" and ")
    );
    // Straight to stderr, past libtest's output capture, so a plain `cargo test` shows it.
    let line = format!(
        "skipping the fleet UI browser test: {} not found (apt-get install chromium \
         chromium-driver)\n",
        missing.join(" and ")
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}

/// chromedriver, as a child process in a process group of its own (with the browsers it
/// starts), killed with them on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Start chromedriver on a free loopback port, and wait until it says it is ready.
    async fn start(binary: &Path, log: &Path) -> anyhow::Result<Driver> {
        use std::os::unix::process::CommandExt as _;

        let port = francis::testing::free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = http_client()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = client
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .ok()
                .map(|r| r.json::<Value>());
            if let Some(status) = ready
                && let Ok(status) = status.await
                && status["value"]["ready"] == true
            {
                return Ok(driver);
            }
            if Instant::now() >= deadline {
                bail!(
                    "chromedriver did not get ready at {} within 10 s",
                    driver.url
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any browser a failed test left behind.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(COMMAND_LIMIT).build()?)
}

/// A WebDriver session: plain JSON over HTTP.
struct Browser {
    http: reqwest::Client,
    session: String,
}

impl Browser {
    /// A headless Chromium of 1280x800 that keeps its profile in `profile`.
    async fn open(driver: &Driver, chromium: &Path, profile: &Path) -> anyhow::Result<Browser> {
        let http = http_client()?;
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,800".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            "--lang=en-US".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let body = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let answer: Value = http
            .post(format!("{}/session", driver.url))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let session = answer["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("chromedriver started no session: {answer}"))?;
        Ok(Browser {
            http,
            session: format!("{}/session/{session}", driver.url),
        })
    }

    /// One command; its `value`, or the error WebDriver answered.
    async fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.session);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let answer: Value = request
            .send()
            .await
            .with_context(|| format!("WebDriver {method} {path}"))?
            .json()
            .await?;
        let value = answer["value"].clone();
        if let Some(error) = value.get("error") {
            bail!("WebDriver {method} {path}: {error}: {}", value["message"]);
        }
        Ok(value)
    }

    async fn go(&self, url: &str) -> anyhow::Result<()> {
        self.command("POST", "/url", Some(json!({"url": url})))
            .await
            .map(drop)
    }

    /// The element `css` selects, by its WebDriver reference.
    async fn find(&self, css: &str) -> anyhow::Result<String> {
        let found = self
            .command(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        // A reference is an object of one member, named by the protocol's element key.
        found
            .as_object()
            .and_then(|reference| reference.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("not an element reference: {found}"))
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.command("POST", &format!("/element/{element}/click"), None)
            .await
            .map(drop)
    }

    /// Type `keys` into the element `css` selects (which takes the focus first).
    async fn keys(&self, css: &str, keys: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": keys})),
        )
        .await
        .map(drop)
    }

    /// Run `script` (a function body) in the page with `args`; what it returns.
    async fn eval(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Poll `script` until it returns something other than null, false or "", for at most
    /// [`PAGE_LIMIT`].
    async fn until(&self, what: &str, script: &str, args: Value) -> anyhow::Result<Value> {
        let deadline = Instant::now() + PAGE_LIMIT;
        loop {
            let value = self.eval(script, args.clone()).await?;
            if !(value.is_null() || value == false || value == "") {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                let page = self
                    .eval("return document.body.innerText;", json!([]))
                    .await
                    .unwrap_or_default();
                bail!("{what}: not within {PAGE_LIMIT:?}; the page shows:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A Chrome DevTools command, through chromedriver.
    async fn devtools(&self, command: &str, params: Value) -> anyhow::Result<Value> {
        self.command(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": command, "params": params})),
        )
        .await
    }

    async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let encoded = self.command("GET", "/screenshot", None).await?;
        let encoded = encoded
            .as_str()
            .ok_or_else(|| anyhow!("the screenshot is not base64 text"))?;
        Ok(base64::engine::general_purpose::STANDARD.decode(encoded)?)
    }

    async fn quit(&self) -> anyhow::Result<()> {
        self.command("DELETE", "", None).await.map(drop)
    }
}

/// A host of the cluster.
/// The state view, from the API (the server has no token: loopback is let in).
async fn state(address: SocketAddr) -> anyhow::Result<Value> {
    Ok(http_client()?
        .get(format!("http://{address}/api/cluster/state"))
        .send()
        .await?
        .json()
        .await?)
}

/// The active actors of host `id`, from the API.
async fn actors_on(address: SocketAddr, id: &str) -> anyhow::Result<u64> {
    let state = state(address).await?;
    let node = state["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"] == id))
        .ok_or_else(|| anyhow!("no node {id} in {state}"))?;
    node["actors_total"]
        .as_u64()
        .ok_or_else(|| anyhow!("no actors_total in {node}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_drains_a_host_from_the_fleet_ui_in_a_real_browser() {
    let Some((chromium, chromedriver)) = browser_binaries() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let (a, stop_a, run_a) = support::start(&db, "a", PSK).await;
    let (b, stop_b, run_b) = support::start(&db, "b", PSK).await;
    // Host A serves the control API and the page on loopback, without a token.
    let address = support::serve_control(a.clone(), ControlApi::new()).await;
    let a_id = a.host_status().unwrap().host_id;
    let b_id = b.host_status().unwrap().host_id;
    for i in 0..20 {
        a.actor::<Where>(format!("w{i}"))
            .whereabouts()
            .await
            .unwrap();
    }

    let driver = Driver::start(&chromedriver, &dir.path().join("chromedriver.log"))
        .await
        .unwrap();
    let browser = Browser::open(&driver, &chromium, &dir.path().join("profile"))
        .await
        .unwrap();
    let outcome = drive(&browser, address, (&a_id, &b_id), &b).await;
    let closed = browser.quit().await;
    drop(driver);
    if let Err(e) = outcome {
        let log = std::fs::read_to_string(dir.path().join("chromedriver.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        panic!(
            "{e:#}\n(the end of chromedriver's log, newest first:\n{})",
            tail.join("\n")
        );
    }
    closed.unwrap();

    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    run_a.await.unwrap().unwrap();
    run_b.await.unwrap().unwrap();
}

/// Everything the test does in the browser.
async fn drive(
    browser: &Browser,
    address: SocketAddr,
    (a_id, b_id): (&str, &str),
    b: &Service,
) -> anyhow::Result<()> {
    // The page loads without credentials, and shows both hosts in the table and the graph.
    browser.go(&format!("http://{address}/ui")).await?;
    browser
        .until(
            "the table and the graph show both hosts",
            "const ids = arguments[0];
             return ids.every((id) =>
               document.querySelector(`#nodes tbody tr[data-node-id='${id}']`)?.textContent.includes(id)
               && document.querySelector(`#graph [data-node-id='${id}']`) !== null);",
            json!([[a_id, b_id]]),
        )
        .await?;
    let answered = browser
        .eval(
            "return document.getElementById('ctx-answered').title;",
            json!([]),
        )
        .await?;
    ensure!(answered == a_id, "the context bar names host A: {answered}");

    // Keyboard: every row and graph node is reachable by Tab.
    let focusable = browser
        .eval(
            "return [...document.querySelectorAll('#nodes tbody tr, #graph [data-node-id]')]
               .every((e) => e.tabIndex === 0);",
            json!([]),
        )
        .await?;
    ensure!(focusable == true, "rows and graph nodes take the focus");

    // Reduced motion: transitions run, until the browser asks for none.
    let transition =
        "return getComputedStyle(document.querySelector('#nodes tbody tr')).transitionDuration;";
    let moving = browser.eval(transition, json!([])).await?;
    ensure!(moving != "0s", "rows have a transition: {moving}");
    browser
        .devtools(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]}),
        )
        .await?;
    let still = browser.eval(transition, json!([])).await?;
    ensure!(
        still == "0s",
        "reduced motion leaves no transition: {still}"
    );

    // Select host B by keyboard; the graph shows the same selection.
    let row_b = format!("#nodes tbody tr[data-node-id='{b_id}']");
    browser.keys(&row_b, ENTER).await?;
    browser
        .until(
            "host B is selected in the table and the graph",
            "const id = arguments[0];
             return document.querySelector(`#nodes tbody tr[data-node-id='${id}']`).getAttribute('aria-selected') === 'true'
               && document.querySelector(`#graph [data-node-id='${id}']`).classList.contains('selected')
               && !document.getElementById('action-drain').disabled;",
            json!([b_id]),
        )
        .await?;

    // Drain: preflight first, with the blast radius.
    let on_b = actors_on(address, b_id).await?;
    ensure!(on_b > 0, "placement put actors on host B");
    browser.click("#action-drain").await?;
    let blast = browser
        .until(
            "the preflight shows the blast radius",
            "const d = document.getElementById('dialog');
             const blast = d.querySelector('[data-blast-radius]');
             return d.open && d.dataset.phase === 'confirm' && blast
               ? [blast.dataset.blastRadius, blast.textContent] : null;",
            json!([]),
        )
        .await?;
    ensure!(
        blast[0].as_str().and_then(|n| n.parse::<u64>().ok()) == Some(on_b)
            && blast[1] == format!("{on_b} actors will move"),
        "the blast radius is host B's {on_b} actors: {blast}"
    );
    ensure!(
        actors_on(address, b_id).await? == on_b,
        "preflight moved nothing"
    );

    // The dialog keeps the focus: Tab from its last button comes back to its first.
    browser.keys("#dialog-confirm", TAB).await?;
    let focused = browser
        .eval("return document.activeElement.id;", json!([]))
        .await?;
    ensure!(
        focused == "dialog-cancel",
        "Tab stays in the dialog: {focused}"
    );

    // Confirm: the audit ID appears.
    browser.click("#dialog-confirm").await?;
    let audit_id = browser
        .until(
            "the dispatch shows its audit ID",
            "const d = document.getElementById('dialog');
             return d.dataset.phase === 'done' ? d.querySelector('#dialog-results .audit-id')?.textContent : null;",
            json!([]),
        )
        .await?;
    let audit_id = audit_id.as_str().unwrap_or_default().to_owned();
    ensure!(!audit_id.is_empty(), "an audit ID");

    // Escape closes the dialog; the actions panel keeps the audit ID.
    browser.keys("#dialog-cancel", ESCAPE).await?;
    browser
        .until(
            "Escape closes the dialog",
            "return !document.getElementById('dialog').open;",
            json!([]),
        )
        .await?;
    let kept = browser
        .eval(
            "return document.querySelector('#last-action .audit-id')?.textContent;",
            json!([]),
        )
        .await?;
    ensure!(
        kept == audit_id.as_str(),
        "the actions panel shows the audit ID: {kept}"
    );

    // The drained host lets its actors go (the API says so, and then the page).
    let deadline = Instant::now() + PAGE_LIMIT;
    loop {
        let left = actors_on(address, b_id).await?;
        if left == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "host B still holds {left} actors"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Called again, the actors activate on host A.
    for i in 0..20 {
        let (host, _) = b.actor::<Where>(format!("w{i}")).whereabouts().await?;
        ensure!(
            host == "a",
            "w{i} runs on host A after the drain, not {host}"
        );
    }
    browser
        .until(
            "the page shows the actors on host A, host B drained, and the action in the timeline",
            "const [a, b, audit] = arguments;
             const actors = (id) => document.querySelector(`#nodes tbody tr[data-node-id='${id}'] td:nth-child(5) strong`).textContent;
             return actors(a) === '20' && actors(b) === '0'
               && document.querySelector(`#nodes tbody tr[data-node-id='${b}']`).textContent.includes('draining')
               && [...document.querySelectorAll('#timeline .audit-id')].some((e) => e.textContent === audit);",
            json!([a_id, b_id, audit_id]),
        )
        .await?;
    let audit = http_client()?
        .get(format!("http://{address}/api/cluster/audit"))
        .send()
        .await?
        .json::<Value>()
        .await?;
    let record = audit["records"]
        .as_array()
        .and_then(|records| records.iter().find(|r| r["audit_id"] == audit_id.as_str()))
        .ok_or_else(|| anyhow!("the audit trail has {audit_id}: {audit}"))?;
    ensure!(
        record["action"] == "drain_host" && record["target"] == b_id && record["result"] == "ok",
        "{record}"
    );

    if let Some(path) = std::env::var_os(SCREENSHOT_ENV) {
        // The page at 1280x800, as a reader's window shows it.
        browser
            .devtools(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await?;
        browser
            .eval("document.activeElement.blur();", json!([]))
            .await?;
        let png = browser.screenshot().await?;
        ensure!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(&path, png)
            .with_context(|| format!("cannot write {}", PathBuf::from(&path).display()))?;
    }
    Ok(())
}
