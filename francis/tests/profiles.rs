//! Security profiles end to end, on loopback with real SQLite files: a runtime or a host built
//! with `prod` refuses every unsafe setting at once, naming each by its code, and starts once
//! they are fixed; with `dev` the same unsafe setups build and serve.
//!
//! The runtime reads the operations server's tokens, and both read `FRANCIS_PROFILE`, from the
//! process environment, which these tests may not change in process: the tests that depend on
//! it run this binary again, on one ignored test, with the environment they need.

mod support;

use std::process::Command;
use std::time::Duration;

use francis::http::{ControlApi, ControlApiError};
use francis::prelude::*;
use francis::profile::{ProblemCode, Profile, ProfileError};
use francis::runtime::config::RuntimeConfig;
use francis::runtime::{Runtime, RuntimeError};
use support::Where;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RUNTIME_PSK: &str = "profiles-test-runtime-psk-0123456789abcdef";
const HOST_PSK: &str = "profiles-test-host-psk";
const TOKEN: &str = "profiles-test-http-token-0123456789";
const STEP: Duration = Duration::from_secs(10);

/// The variables of the environment a profile check reads.
const PROFILE_VARIABLES: &[&str] = &[
    "FRANCIS_PROFILE",
    "FRANCIS_HTTP_TOKEN",
    "FRANCIS_HTTP_OPERATOR_TOKEN",
    "FRANCIS_HTTP_VIEWER_TOKEN",
];

/// Run the ignored test `name` of this binary in a child process, with `set` in its
/// environment and none of the other [`PROFILE_VARIABLES`]; fail with its output if it fails.
fn run_in_child(name: &str, set: &[(&str, &str)]) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([name, "--exact", "--ignored", "--nocapture"]);
    for var in PROFILE_VARIABLES {
        command.env_remove(var);
    }
    command.envs(set.iter().copied());
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.contains("1 passed"),
        "{name}, run with {set:?}, failed:\n{text}"
    );
}

/// Check that this child runs with exactly `set` of the [`PROFILE_VARIABLES`].
fn expect_environment(set: &[(&str, &str)]) {
    for var in PROFILE_VARIABLES {
        let wanted = set
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| (*v).to_owned());
        assert_eq!(
            std::env::var(var).ok(),
            wanted,
            "{var}: this test runs in a child process with its own environment; run the test \
             that starts it instead"
        );
    }
}

/// A runtime configuration on loopback (free ports) with `profile`, the runtime and host PSKs
/// written as `runtime_psks` and `host_psk`, and `provider`.
fn runtime_yaml(profile: &str, runtime_psks: &str, host_psk: &str, provider: &str) -> String {
    format!(
        "profile: {profile}\nbind: \"127.0.0.1:0\"\nruntimePSKs:\n{runtime_psks}bootstrap:\n  \
         method: psk\n  hostPSK: {host_psk}\nprovider:\n{provider}http:\n  bind: \
         \"127.0.0.1:0\"\nhealthCheckDeadline: 5s\nshutdownGracePeriod: 1s\n"
    )
}

/// The runtime's keys as environment variables (the configuration's `${VAR}` references).
fn keys(name: &str) -> Option<String> {
    match name {
        "FRANCIS_RUNTIME_PSK" => Some(RUNTIME_PSK.to_owned()),
        "FRANCIS_HOST_BOOTSTRAP_PSK" => Some(HOST_PSK.to_owned()),
        _ => None,
    }
}

const ENV_PSKS: &str = "  - \"${FRANCIS_RUNTIME_PSK}\"\n";
const ENV_HOST_PSK: &str = "\"${FRANCIS_HOST_BOOTSTRAP_PSK}\"";

fn literal_psks() -> String {
    format!("  - \"{RUNTIME_PSK}\"\n  - \"{RUNTIME_PSK}-old\"\n")
}

fn literal_host_psk() -> String {
    format!("\"{HOST_PSK}\"")
}

const MEMORY: &str = "  type: memory\n";

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!(
        "  type: sqlite\n  connectionString: \"{}\"\n",
        dir.path().join("runtime.db").display()
    )
}

fn config(yaml: &str) -> RuntimeConfig {
    RuntimeConfig::from_yaml_str(yaml, "runtime.yaml", keys)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn codes(e: &ProfileError) -> Vec<&'static str> {
    e.codes().iter().map(|c| c.as_str()).collect()
}

/// The status of `GET path` on the HTTP server at `address`, sent with `token` if any.
async fn status_of(address: std::net::SocketAddr, path: &str, token: Option<&str>) -> u16 {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

#[test]
fn a_prod_runtime_with_a_memory_store_and_literal_psks_refuses_to_start_listing_every_problem() {
    run_in_child("prod_runtime_refuses_every_unsafe_setting", &[]);
}

#[tokio::test]
#[ignore = "run by a_prod_runtime_with_a_memory_store_and_literal_psks_refuses_to_start_listing_every_problem"]
async fn prod_runtime_refuses_every_unsafe_setting() {
    expect_environment(&[]);
    let config = config(&runtime_yaml(
        "prod",
        &literal_psks(),
        &literal_host_psk(),
        MEMORY,
    ));
    assert_eq!(config.profile, Profile::Prod);
    let expected = [
        "in_memory_store",
        "operations_api_without_auth",
        "literal_psk_in_config",
        "literal_psk_in_config",
        "literal_psk_in_config",
    ];
    // What `francis runtime check` reports, and what starting it does.
    assert_eq!(codes(&config.check_profile().unwrap_err()), expected);
    let err = Runtime::from_config(&config).await.unwrap_err();
    let RuntimeError::Profile(e) = &err else {
        panic!("expected the profile's refusal, got {err}");
    };
    assert_eq!(e.profile, Profile::Prod);
    assert_eq!(codes(e), expected);
    let text = err.to_string();
    assert!(
        text.starts_with("the prod profile refuses to start with 5 unsafe settings:"),
        "{text}"
    );
    for (problem, fix) in [
        ("provider.type is memory", "set provider.type to postgres"),
        ("http.bind 127.0.0.1:0", "set FRANCIS_HTTP_TOKEN"),
        (
            "runtimePSKs[0]: the runtime PSK",
            "\"${FRANCIS_RUNTIME_PSK}\"",
        ),
        ("runtimePSKs[1]: the runtime PSK", "EnvironmentFile="),
        (
            "bootstrap.hostPSK: the host bootstrap PSK",
            "\"${FRANCIS_HOST_BOOTSTRAP_PSK}\"",
        ),
    ] {
        assert!(text.contains(problem), "{problem:?} missing from:\n{text}");
        assert!(text.contains(fix), "{fix:?} missing from:\n{text}");
    }
    assert!(
        !text.contains(RUNTIME_PSK) && !text.contains(HOST_PSK),
        "{text}"
    );
}

#[test]
fn a_prod_runtime_with_env_psks_sqlite_and_a_token_starts() {
    run_in_child(
        "prod_runtime_with_a_token_starts",
        &[("FRANCIS_HTTP_TOKEN", TOKEN)],
    );
}

#[tokio::test]
#[ignore = "run by a_prod_runtime_with_env_psks_sqlite_and_a_token_starts"]
async fn prod_runtime_with_a_token_starts() {
    expect_environment(&[("FRANCIS_HTTP_TOKEN", TOKEN)]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(&runtime_yaml("prod", ENV_PSKS, ENV_HOST_PSK, &sqlite(&dir)));
    assert_eq!(config.check_profile(), Ok(Vec::new()));
    let runtime = Runtime::from_config(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let http = runtime.http_addr().expect("the operations server runs");
    let (stop, task) = support::run_runtime(runtime);
    assert_eq!(status_of(http, "/readyz", None).await, 200);
    assert_eq!(status_of(http, "/api/cluster/state", None).await, 401);
    assert_eq!(
        status_of(http, "/api/cluster/state", Some(TOKEN)).await,
        200
    );
    stop.send(()).unwrap();
    tokio::time::timeout(STEP, task).await.unwrap().unwrap();
    assert!(dir.path().join("runtime.db").exists());
}

#[tokio::test]
async fn a_prod_runtime_whose_operations_server_takes_client_certificates_starts() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = runtime_yaml("prod", ENV_PSKS, ENV_HOST_PSK, &sqlite(&dir)).replace(
        "  bind: \"127.0.0.1:0\"\n",
        "  bind: \"127.0.0.1:0\"\n  tls: true\n",
    );
    let runtime = Runtime::from_config(&config(&yaml))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(runtime.http_addr().is_some());
}

#[tokio::test]
async fn a_prod_runtime_refuses_a_jwks_url_over_http_even_on_loopback() {
    let yaml = "profile: prod\nbind: \"127.0.0.1:0\"\nruntimePSKs: [\"${FRANCIS_RUNTIME_PSK}\"]\n\
                bootstrap:\n  method: jwt\n  jwt:\n    issuer: https://issuer.example.com\n    \
                audience: francis\n    jwksURL: \"http://127.0.0.1:9/jwks.json\"\nprovider:\n  \
                type: memory\nhttp:\n  bind: \"127.0.0.1:0\"\n  tls: true\n";
    let err = Runtime::from_config(&config(yaml)).await.unwrap_err();
    let RuntimeError::Profile(e) = &err else {
        panic!("expected the profile's refusal, got {err}");
    };
    assert_eq!(codes(e), ["in_memory_store", "jwks_over_http"]);
    assert!(
        err.to_string().contains("serve the JWKS over https"),
        "{err}"
    );
}

#[tokio::test]
async fn a_prod_local_host_refuses_a_memory_store_and_builds_on_sqlite() {
    let memory = support::local(std::path::Path::new("unused.db"), "h", RUNTIME_PSK)
        .memory_store()
        .address(francis::testing::free_local_address())
        .profile(Profile::Prod)
        .build()
        .await;
    let Err(Error::Profile(e)) = memory else {
        panic!(
            "expected the profile's refusal, got {:?}",
            memory.map(|_| ())
        );
    };
    assert_eq!(codes(&e), ["in_memory_store"]);
    assert!(e.to_string().contains("call .sqlite(path)"), "{e}");

    // The development key is refused too, even on loopback.
    let development = Host::local()
        .address(francis::testing::free_local_address())
        .memory_store()
        .runtime_psk(francis::host::DEVELOPMENT_PSK)
        .profile(Profile::Prod)
        .build()
        .await;
    let Err(Error::Profile(e)) = development else {
        panic!("expected the profile's refusal");
    };
    assert_eq!(codes(&e), ["in_memory_store", "development_psk"]);

    let dir = tempfile::tempdir().unwrap();
    let host = support::local(&dir.path().join("cluster.db"), "h", RUNTIME_PSK)
        .address(francis::testing::free_local_address())
        .profile(Profile::Prod)
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (service, stop, run) = support::run(host);
    let here: ActorRef<Where> = service.actor("a");
    assert_eq!(here.whereabouts().await.unwrap(), ("h".to_owned(), 1));
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_prod_worker_refuses_an_unpinned_ca_before_it_connects() {
    let result = Host::remote()
        .address(francis::testing::free_local_address())
        // Nothing listens there: the refusal comes first.
        .runtime_address(francis::testing::free_local_address())
        .host_bootstrap_psk(HOST_PSK)
        .unsafe_no_pinned_ca()
        .runtime_connect_timeout(Duration::from_secs(1))
        .profile(Profile::Prod)
        .register::<Where>()
        .build()
        .await;
    let Err(Error::Profile(e)) = result else {
        panic!("expected the profile's refusal");
    };
    assert_eq!(e.codes(), [ProblemCode::UnsafeNoPinnedCa]);
    assert!(e.to_string().contains(".pinned_ca(pem)"), "{e}");
}

#[tokio::test]
async fn dev_builds_a_runtime_and_hosts_with_every_unsafe_setting() {
    // A runtime in memory, with its keys written in the file and no token.
    let config = config(&runtime_yaml(
        "dev",
        &literal_psks(),
        &literal_host_psk(),
        MEMORY,
    ));
    assert_eq!(config.profile, Profile::Dev);
    let allowed = config.check_profile().unwrap();
    assert!(allowed.len() >= 4, "{allowed:#?}");
    let runtime = Runtime::from_config(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = runtime.local_addr();
    let (stop_runtime, runtime_task) = support::run_runtime(runtime);

    // A worker that does not pin the CA joins it.
    let worker = Host::remote()
        .address(francis::testing::free_local_address())
        .runtime_address(address.to_string())
        .host_bootstrap_psk(HOST_PSK)
        .unsafe_no_pinned_ca()
        .runtime_connect_timeout(STEP)
        .profile(Profile::Dev)
        .register::<Where>()
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let here: ActorRef<Where> = worker.service().actor("a");
    assert_eq!(here.whereabouts().await.unwrap().1, 1);
    worker.run(async {}).await.unwrap();

    // A local host in memory on the development key.
    let host = Host::local()
        .address(francis::testing::free_local_address())
        .memory_store()
        .runtime_psk(francis::host::DEVELOPMENT_PSK)
        .profile(Profile::Dev)
        .register::<Where>()
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let here: ActorRef<Where> = host.service().actor("a");
    assert_eq!(here.whereabouts().await.unwrap().1, 1);
    host.run(async {}).await.unwrap();

    stop_runtime.send(()).unwrap();
    tokio::time::timeout(STEP, runtime_task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_control_api_off_loopback_without_a_token_is_refused_in_every_profile() {
    let address = "0.0.0.0:0".parse().unwrap();
    let err = ControlApi::new().bind(address).await.unwrap_err();
    assert!(
        matches!(err, ControlApiError::TokenRequired { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("control_server_open_off_loopback, refused in every profile"),
        "{err}"
    );
}

#[test]
fn francis_profile_sets_the_profile_where_the_code_does_not() {
    run_in_child(
        "the_environment_chooses_prod",
        &[("FRANCIS_PROFILE", "prod")],
    );
}

#[tokio::test]
#[ignore = "run by francis_profile_sets_the_profile_where_the_code_does_not"]
async fn the_environment_chooses_prod() {
    expect_environment(&[("FRANCIS_PROFILE", "prod")]);
    let memory = || {
        Host::local()
            .address(francis::testing::free_local_address())
            .memory_store()
            .runtime_psk(RUNTIME_PSK)
            .register::<Where>()
    };
    let refused = memory().build().await;
    assert!(
        matches!(&refused, Err(Error::Profile(e)) if e.profile == Profile::Prod),
        "{:?}",
        refused.map(|_| ())
    );
    // The code's choice wins over the environment.
    let host = memory()
        .profile(Profile::Dev)
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    host.run(async {}).await.unwrap();
    // And so does the configuration's, read as `francis runtime` reads it.
    let profile_of = |yaml: &str| {
        RuntimeConfig::from_yaml_str(yaml, "runtime.yaml", |name| {
            std::env::var(name).ok().or_else(|| keys(name))
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .profile
    };
    let yaml = runtime_yaml("dev", ENV_PSKS, ENV_HOST_PSK, MEMORY);
    assert_eq!(profile_of(&yaml), Profile::Dev);
    assert_eq!(
        profile_of(&yaml.replace("profile: dev\n", "")),
        Profile::Prod
    );
}

#[test]
fn an_unknown_francis_profile_is_an_error_naming_the_variable() {
    run_in_child(
        "an_unknown_profile_in_the_environment_fails",
        &[("FRANCIS_PROFILE", "production")],
    );
}

#[tokio::test]
#[ignore = "run by an_unknown_francis_profile_is_an_error_naming_the_variable"]
async fn an_unknown_profile_in_the_environment_fails() {
    expect_environment(&[("FRANCIS_PROFILE", "production")]);
    let dir = tempfile::tempdir().unwrap();
    let err = support::local(&dir.path().join("cluster.db"), "h", RUNTIME_PSK)
        .address(francis::testing::free_local_address())
        .build()
        .await
        .expect_err("an unknown profile is refused");
    assert_eq!(
        err.to_string(),
        "invalid host configuration: FRANCIS_PROFILE: unknown profile \"production\"; expected \
         dev or prod"
    );
    let err = RuntimeConfig::from_yaml_str(
        &runtime_yaml("prod", ENV_PSKS, ENV_HOST_PSK, MEMORY),
        "runtime.yaml",
        |name| std::env::var(name).ok().or_else(|| keys(name)),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(
            "profile: FRANCIS_PROFILE: unknown profile \"production\"; expected dev or prod"
        ),
        "{err}"
    );
}
