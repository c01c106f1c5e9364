//! `runtime.yaml`, the configuration of the runtime the workers join, checked the way
//! `francis runtime check` reads it: every key valid, the PSKs taken from the environment, and
//! nothing the prod profile refuses once the operations server has its token.

use francis::Profile;
use francis::runtime::config::{Bootstrap, Provider, RuntimeConfig};

const RUNTIME_YAML: &str = include_str!("../runtime.yaml");

/// The environment `francis runtime` would see, with keys of the required lengths.
fn env(name: &str) -> Option<String> {
    match name {
        "FRANCIS_RUNTIME_PSK" => Some("r".repeat(32)),
        "FRANCIS_HOST_BOOTSTRAP_PSK" => Some("h".repeat(16)),
        _ => None,
    }
}

#[test]
fn runtime_yaml_is_valid_and_takes_its_keys_from_the_environment() {
    let config = RuntimeConfig::from_yaml_str(RUNTIME_YAML, "runtime.yaml", env)
        .unwrap_or_else(|e| panic!("runtime.yaml is invalid:\n{e}"));
    assert_eq!(
        config.bind.to_string(),
        "127.0.0.1:7400",
        "the workers' default"
    );
    assert_eq!(config.runtime_psks[0].expose(), "r".repeat(32));
    match &config.bootstrap {
        Bootstrap::Psk { host_psk } => assert_eq!(host_psk.expose(), "h".repeat(16)),
        other => panic!("expected PSK bootstrap, got {other:?}"),
    }
    assert!(
        matches!(&config.provider, Provider::Sqlite { connection_string } if connection_string == "runtime.db")
    );
    assert_eq!(config.profile, Profile::Prod);
    // With FRANCIS_HTTP_TOKEN set, prod has nothing to refuse; without it, only that.
    assert_eq!(config.profile_setup(true).problems(), []);
    let missing: Vec<&str> = config
        .profile_setup(false)
        .problems()
        .iter()
        .map(|p| p.code.as_str())
        .collect();
    assert_eq!(missing, ["operations_api_without_auth"]);
}

#[test]
fn runtime_yaml_refuses_to_start_without_its_keys() {
    let e = RuntimeConfig::from_yaml_str(RUNTIME_YAML, "runtime.yaml", |_| None).unwrap_err();
    let message = e.to_string();
    assert!(message.contains("FRANCIS_RUNTIME_PSK"), "{message}");
    assert!(message.contains("FRANCIS_HOST_BOOTSTRAP_PSK"), "{message}");
}
