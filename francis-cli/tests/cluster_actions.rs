//! `francis cluster drain | resume | halt | audit` as an operator runs them against a real
//! remote cluster: a runtime (SQLite file, operations server on loopback) and two workers in
//! this process, QUIC on loopback. The runtime relays the drain to the worker over its own peer
//! link; the drained worker's actors move to the other one.

use std::net::SocketAddr;
use std::process::Output;
use std::time::{Duration, Instant};

use francis::prelude::*;
use francis::runtime::Runtime;

const RUNTIME_PSK: &str = "cluster-cli-test-runtime-psk-0123456789abcdef";
const HOST_PSK: &str = "cluster-cli-test-host-psk";
const STEP: Duration = Duration::from_secs(30);

struct WorkerName(String);

struct Echo {
    worker: String,
}

#[francis::actor]
impl Echo {
    fn activate(ctx: &ActorContext) -> Self {
        let worker = ctx
            .data::<WorkerName>()
            .map(|w| w.0.clone())
            .unwrap_or_default();
        Echo { worker }
    }

    /// Which worker runs this activation.
    pub async fn worker(&self) -> Result<String, String> {
        Ok(self.worker.clone())
    }
}

/// Run the `francis` binary (blocking, off the test's runtime threads).
async fn francis(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_francis"))
            .args(&args)
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

async fn worker(name: &str, runtime: SocketAddr, ca_pem: &str) -> (Service, String) {
    let host = Host::remote()
        .address(francis::testing::free_local_address())
        .runtime_address(runtime.to_string())
        .pinned_ca(ca_pem.to_owned())
        .host_bootstrap_psk(HOST_PSK)
        .runtime_connect_timeout(STEP)
        .data(WorkerName(name.to_owned()))
        .register::<Echo>()
        .build()
        .await
        .unwrap();
    let service = host.service();
    let host_id = host.host_id().to_owned();
    tokio::spawn(host.run(std::future::pending::<()>()));
    (service, host_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_drains_a_worker_through_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .http_bind("127.0.0.1:0".parse().unwrap())
        .runtime_psk(RUNTIME_PSK)
        .host_psk(HOST_PSK)
        .sqlite(dir.path().join("runtime.db"))
        .build()
        .await
        .unwrap();
    let address = runtime.local_addr();
    let url = format!("http://{}", runtime.http_addr().unwrap());
    let ca_pem = runtime.cluster_ca().bundle_pem();
    tokio::spawn(runtime.run(std::future::pending::<()>()));
    let (a, _) = worker("a", address, &ca_pem).await;
    let (_b, b_id) = worker("b", address, &ca_pem).await;

    let mut on_b = 0;
    for i in 0..20 {
        if a.actor::<Echo>(format!("e{i}")).worker().await.unwrap() == "b" {
            on_b += 1;
        }
    }
    assert!(on_b > 0, "placement spread the actors");

    let cli = |args: &[&str]| {
        let mut all: Vec<String> = vec!["cluster".into()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all.extend(["--url".into(), url.clone()]);
        francis(all)
    };
    let dry = cli(&["drain", &b_id, "--dry-run"]).await;
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains(&format!("{b_id}  allowed ({on_b} actors)")),
        "{}",
        text(&dry)
    );

    let unknown = cli(&["drain", "no-such-host"]).await;
    assert_eq!(unknown.status.code(), Some(9), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("target_unknown"),
        "{}",
        text(&unknown)
    );

    let drained = cli(&["drain", &b_id, "--request-id", "drain-b"]).await;
    assert!(drained.status.success(), "{}", text(&drained));
    assert!(text(&drained).contains("audit "), "{}", text(&drained));

    // The runtime told the worker over its peer link; the actors move on their next call.
    let deadline = Instant::now() + STEP;
    loop {
        let mut still_on_b = 0;
        for i in 0..20 {
            if a.actor::<Echo>(format!("e{i}")).worker().await.unwrap() == "b" {
                still_on_b += 1;
            }
        }
        if still_on_b == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{still_on_b} actors stayed on b");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let audit = cli(&["audit", "--request-id", "drain-b"]).await;
    assert!(audit.status.success(), "{}", text(&audit));
    let audit = text(&audit);
    assert!(audit.contains(&format!("drain_host {b_id}")), "{audit}");
    assert!(audit.contains("by loopback"), "{audit}");
    assert!(audit.contains(" ok"), "{audit}");

    let halted = cli(&["halt", "echo"]).await;
    assert!(halted.status.success(), "{}", text(&halted));
    let resumed = cli(&["resume", &b_id]).await;
    assert!(resumed.status.success(), "{}", text(&resumed));
}
