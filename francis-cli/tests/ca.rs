//! `francis runtime check`, `francis ca print` and `francis ca pin` as a user runs them, in a
//! fresh temporary directory: a broken configuration names its key and line and exits 6; the
//! printed CA is the one a running runtime presents; pinning with the wrong expected fingerprint
//! exits 7 and writes nothing; pinning with the right one writes the PEM; an operator's client
//! certificate is issued by the cluster CA, with its key readable by its owner only.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const RUNTIME_PSK: &str = "ca-cli-test-runtime-psk-0123456789abcdef";

fn francis(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_francis"))
        .current_dir(dir)
        .args(args)
        .env_remove("FRANCIS_CONFIG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_config(dir: &Path, port: u16) {
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "bind: \"127.0.0.1:{port}\"\nruntimePSKs:\n  - \"{RUNTIME_PSK}\"\nbootstrap:\n  method: psk\n  hostPSK: \"a-host-psk-for-tests\"\nprovider:\n  type: memory\nhttp:\n  bind: \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
}

/// A runtime child process, stopped when dropped.
struct Runtime(Child);

impl Runtime {
    /// `francis runtime --config config.yaml` in `dir`.
    fn start(dir: &Path) -> Self {
        Runtime(
            Command::new(env!("CARGO_BIN_EXE_francis"))
                .current_dir(dir)
                .args(["runtime", "--config", "config.yaml"])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_broken_configuration_names_the_key_and_line_and_exits_6() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "bind: \"127.0.0.1:7400\"\nruntimePSKs:\n  - \"short\"\nbootstrap:\n  method: psk\n  hostPSK: \"a-host-psk-for-tests\"\nprovider:\n  type: memory\nhealthCheckDeadLine: 20s\n",
    )
    .unwrap();
    let out = francis(dir.path(), &["runtime", "check", "--config", "config.yaml"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("runtimePSKs[0]") && err.contains(":3:"),
        "{err}"
    );
    assert!(err.contains("healthCheckDeadline"), "did-you-mean: {err}");
    assert!(!err.contains("short\""), "the secret is not echoed: {err}");

    // No configuration at all: usage error, with the fix.
    let empty = tempfile::tempdir().unwrap();
    let out = francis(empty.path(), &["ca", "print"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--config"));
}

#[test]
fn runtime_check_lists_what_the_profile_refuses_or_allows() {
    let dir = tempfile::tempdir().unwrap();
    let port = francis::testing::free_port();
    write_config(dir.path(), port);
    let check = |profile: &str| {
        Command::new(env!("CARGO_BIN_EXE_francis"))
            .current_dir(dir.path())
            .args(["runtime", "check", "--config", "config.yaml"])
            .env_remove("FRANCIS_CONFIG")
            .env_remove("FRANCIS_HTTP_TOKEN")
            .env_remove("FRANCIS_HTTP_OPERATOR_TOKEN")
            .env_remove("FRANCIS_HTTP_VIEWER_TOKEN")
            .env("FRANCIS_PROFILE", profile)
            .output()
            .unwrap()
    };
    let dev = check("dev");
    assert!(dev.status.success(), "{}", text(&dev.stderr));
    assert!(
        text(&dev.stdout).contains(
            " dev (allows in_memory_store, operations_api_without_auth, \
             literal_psk_in_config)\n"
        ),
        "{}",
        text(&dev.stdout)
    );
    let prod = check("prod");
    assert_eq!(prod.status.code(), Some(6), "{}", text(&prod.stdout));
    let err = text(&prod.stderr);
    for code in [
        "in_memory_store",
        "operations_api_without_auth",
        "runtimePSKs[0]: the runtime PSK",
        "bootstrap.hostPSK: the host bootstrap PSK",
    ] {
        assert!(err.contains(code), "{code} missing from:\n{err}");
    }
    assert!(
        !err.contains(RUNTIME_PSK),
        "the secret is not echoed: {err}"
    );
}

#[test]
fn ca_print_gives_what_the_runtime_presents_and_ca_pin_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = francis::testing::free_port();
    write_config(dir.path(), port);

    let check = francis(dir.path(), &["runtime", "check", "--config", "config.yaml"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(text(&check.stdout).contains("valid"));
    let printed = francis(dir.path(), &["ca", "print", "--config", "config.yaml"]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let pem = text(&printed.stdout);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let fp = francis(
        dir.path(),
        &["ca", "print", "--config", "config.yaml", "--fingerprint"],
    );
    let fingerprint = text(&fp.stdout).trim().to_owned();
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");

    let _runtime = Runtime::start(dir.path());
    let address = format!("127.0.0.1:{port}");

    // A wrong expected fingerprint: exit 7, nothing written.
    let wrong = "00:".repeat(31) + "00";
    let start = Instant::now();
    let out = loop {
        let out = francis(
            dir.path(),
            &[
                "ca",
                "pin",
                "--runtime",
                &address,
                "--expect",
                &wrong,
                "--output",
                "pinned.pem",
            ],
        );
        // Until the runtime listens, pin reports it unreachable (8).
        if out.status.code() != Some(8) || start.elapsed() > Duration::from_secs(30) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&fingerprint),
        "shows the fingerprint"
    );
    assert!(
        !dir.path().join("pinned.pem").exists(),
        "nothing written on a mismatch"
    );

    // The right one (written without colons, lower case): the PEM is written.
    let loose = fingerprint.replace(':', "").to_lowercase();
    let out = francis(
        dir.path(),
        &[
            "ca",
            "pin",
            "--runtime",
            &address,
            "--expect",
            &loose,
            "--output",
            "pinned.pem",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pinned = std::fs::read_to_string(dir.path().join("pinned.pem")).unwrap();
    assert_eq!(
        pinned.trim(),
        pem.trim(),
        "the pinned CA is the printed one"
    );

    // An existing file with other content is not replaced without --force.
    std::fs::write(dir.path().join("other.pem"), "something else").unwrap();
    let out = francis(
        dir.path(),
        &["ca", "pin", "--runtime", &address, "--output", "other.pem"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("other.pem")).unwrap(),
        "something else"
    );

    // Nothing listening: exit 8.
    let nobody = format!("127.0.0.1:{}", francis::testing::free_port());
    let out = francis(
        dir.path(),
        &["ca", "pin", "--runtime", &nobody, "--timeout", "1s"],
    );
    assert_eq!(out.status.code(), Some(8), "{}", text(&out.stderr));
}

#[test]
fn an_operator_certificate_is_issued_by_the_cluster_ca_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), 7400);
    let issue = |role: &str| {
        francis(
            dir.path(),
            &[
                "ca",
                "issue-operator",
                "--config",
                "config.yaml",
                "--role",
                role,
                "--name",
                "alice",
                "--ttl",
                "24h",
            ],
        )
    };
    let out = issue("viewer");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("spiffe://francis/operator/viewer/alice"));
    let cert = std::fs::read_to_string(dir.path().join("alice.pem")).unwrap();
    let der = francis::net::tls::parse_pem_certs(&cert).unwrap();
    let ca = francis::net::pki::ClusterCa::from_psks(&[RUNTIME_PSK]).unwrap();
    let now = rustls::pki_types::UnixTime::now();
    let id = francis::net::tls::verify_chain(&ca.trust(), &der, "/operator/", now)
        .expect("the certificate chains to the cluster CA");
    assert_eq!(id.as_str(), "spiffe://francis/operator/viewer/alice");
    let key = dir.path().join("alice-key.pem");
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key is its owner's only");
    }
    // A second issue for the same name writes nothing; a role that does not exist is refused.
    let out = issue("admin");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("exists already"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("alice.pem")).unwrap(),
        cert
    );
    let out = issue("root");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// A runtime serving its operations endpoints over TLS (`http.tls: true`): `francis runtime
/// healthcheck` verifies it with the cluster CA, and `francis cluster status` reads the state
/// as the holder of an operator certificate, who is named in it.
#[test]
fn cluster_status_reads_a_tls_runtime_with_an_operator_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let port = francis::testing::free_port();
    write_config(dir.path(), port);
    let mut config = std::fs::read_to_string(dir.path().join("config.yaml")).unwrap();
    config.push_str("  tls: true\n");
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let issued = francis(
        dir.path(),
        &[
            "ca",
            "issue-operator",
            "--config",
            "config.yaml",
            "--role",
            "viewer",
            "--name",
            "carol",
        ],
    );
    assert!(issued.status.success(), "{}", text(&issued.stderr));
    let printed = francis(dir.path(), &["ca", "print", "--config", "config.yaml"]);
    std::fs::write(dir.path().join("ca.pem"), &printed.stdout).unwrap();

    let _runtime = Runtime::start(dir.path());
    let start = Instant::now();
    loop {
        let out = francis(
            dir.path(),
            &["runtime", "--config", "config.yaml", "healthcheck"],
        );
        if out.status.success() {
            assert!(
                text(&out.stdout).contains("https://"),
                "{}",
                text(&out.stdout)
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the runtime never became ready: {}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let url = format!("https://127.0.0.1:{port}");
    let out = francis(
        dir.path(),
        &[
            "cluster",
            "status",
            "--url",
            &url,
            "--ca-file",
            "ca.pem",
            "--cert",
            "carol.pem",
            "--key",
            "carol-key.pem",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["context"]["caller"]["principal"], "cert:carol");
    assert_eq!(state["context"]["answered_by"]["kind"], "runtime");
    // Without the cluster CA the server is not trusted.
    let out = francis(dir.path(), &["cluster", "status", "--url", &url]);
    assert!(!out.status.success());
}
