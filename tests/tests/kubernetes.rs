//! The Kubernetes example (`examples/kubernetes`) hangs together: every manifest is a known
//! kind with `apiVersion`, `kind` and `metadata.name`; the runtime's `config.yaml` parses with
//! the environment its container sets; probes ask `/healthz` or `/readyz` on the port the
//! server listens on; Services and disruption budgets select a workload and name its ports;
//! the ports agree with `bind`, `http.bind` and the workers' addresses; every `FRANCIS_*`
//! variable a container sets is one Francis reads; every Secret and ConfigMap reference names
//! a key that exists (or the CA ConfigMap the guide creates).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use francis::Profile;
use francis::runtime::config::{Provider, RuntimeConfig};
use marked_yaml::Node;

/// The `FRANCIS_*` variables Francis reads, each with a file that reads it. (The runtime also
/// reads whatever its `config.yaml` names as `${VAR}`; those are checked against the config.)
const READ: &[(&str, &str)] = &[
    // The HTTP control API's bearer token (`ControlApi::from_env`).
    ("FRANCIS_HTTP_TOKEN", "francis/src/http/server.rs"),
    // Tokens of the roles operator and viewer (`ControlApi::from_env`).
    ("FRANCIS_HTTP_OPERATOR_TOKEN", "francis/src/http/server.rs"),
    ("FRANCIS_HTTP_VIEWER_TOKEN", "francis/src/http/server.rs"),
    // The security profile of hosts and runtimes (`Profile::from_env`).
    ("FRANCIS_PROFILE", "francis/src/profile.rs"),
    // Text or JSON log lines (`Telemetry::init`).
    ("FRANCIS_LOG_FORMAT", "francis/src/telemetry/otel.rs"),
    // `francis runtime`: where the configuration is.
    ("FRANCIS_CONFIG", "francis-cli/src/runtime.rs"),
    // The remote-worker example's flags.
    ("FRANCIS_HTTP_ADDRESS", "examples/remote-worker/src/main.rs"),
    ("FRANCIS_PEER_ADDRESS", "examples/remote-worker/src/main.rs"),
    ("FRANCIS_PEER_BIND", "examples/remote-worker/src/main.rs"),
    (
        "FRANCIS_RUNTIME_ADDRESS",
        "examples/remote-worker/src/main.rs",
    ),
    (
        "FRANCIS_HOST_BOOTSTRAP_PSK",
        "examples/remote-worker/src/main.rs",
    ),
    (
        "FRANCIS_BOOTSTRAP_TOKEN_FILE",
        "examples/remote-worker/src/main.rs",
    ),
    ("FRANCIS_CA_FILE", "examples/remote-worker/src/main.rs"),
];

/// ConfigMaps the manifests use without defining them: the guide creates them with kubectl.
const CREATED_BY_HAND: &[&str] = &["francis-ca"];

/// The kinds the example uses, with their API versions.
const KINDS: &[(&str, &str)] = &[
    ("ConfigMap", "v1"),
    ("Secret", "v1"),
    ("Service", "v1"),
    ("Deployment", "apps/v1"),
    ("StatefulSet", "apps/v1"),
    ("PodDisruptionBudget", "policy/v1"),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the repository")
        .to_path_buf()
}

/// One YAML document of a manifest file.
struct Manifest {
    /// `file:line` of the document's start, for messages.
    origin: String,
    root: Node,
}

impl Manifest {
    fn kind(&self) -> &str {
        text(&self.root, &["kind"]).unwrap_or_default()
    }

    fn name(&self) -> &str {
        text(&self.root, &["metadata", "name"]).unwrap_or_default()
    }
}

/// The node at `path` (mapping keys) under `node`.
fn at<'n>(node: &'n Node, path: &[&str]) -> Option<&'n Node> {
    path.iter()
        .try_fold(node, |node, key| node.as_mapping()?.get_node(key))
}

/// The scalar at `path` under `node`.
fn text<'n>(node: &'n Node, path: &[&str]) -> Option<&'n str> {
    at(node, path)?.as_scalar().map(|s| s.as_str())
}

/// The items of the list at `path` under `node` (none when absent).
fn items<'n>(node: &'n Node, path: &[&str]) -> Vec<&'n Node> {
    at(node, path)
        .and_then(Node::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

/// Every document of every manifest of the example, in file order.
fn manifests() -> Vec<Manifest> {
    let dir = repo_root().join("examples/kubernetes");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    let mut out = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let content = fs::read_to_string(&file).unwrap();
        let mut start = 1;
        let mut document = String::new();
        let mut flush = |document: &mut String, start: usize| {
            let meaningful = document
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
            if meaningful {
                let origin = format!("{name}:{start}");
                let root = marked_yaml::parse_yaml(0, document.as_str())
                    .unwrap_or_else(|e| panic!("{origin}: not YAML: {e}"));
                out.push(Manifest { origin, root });
            }
            document.clear();
        };
        for (index, line) in content.lines().enumerate() {
            if line.trim_end() == "---" {
                flush(&mut document, start);
                start = index + 2;
            } else {
                // Keep line numbers: a document's text starts at its first line.
                if document.is_empty() {
                    start = index + 1;
                }
                document.push_str(line);
                document.push('\n');
            }
        }
        flush(&mut document, start);
    }
    out
}

/// The pod template of a workload.
fn pod(manifest: &Manifest) -> Option<&Node> {
    matches!(manifest.kind(), "Deployment" | "StatefulSet")
        .then(|| at(&manifest.root, &["spec", "template"]))
        .flatten()
}

/// A container's environment: name to literal value (`None` for values from elsewhere).
fn env_of(container: &Node) -> BTreeMap<String, Option<String>> {
    items(container, &["env"])
        .into_iter()
        .map(|var| {
            let name = text(var, &["name"]).expect("an env entry has a name");
            (name.to_owned(), text(var, &["value"]).map(str::to_owned))
        })
        .collect()
}

/// A container's ports: name to (number, protocol).
fn ports_of(container: &Node) -> BTreeMap<String, (u16, String)> {
    items(container, &["ports"])
        .into_iter()
        .map(|port| {
            let name = text(port, &["name"]).expect("every container port is named");
            let number = text(port, &["containerPort"])
                .and_then(|n| n.parse().ok())
                .expect("a container port has a number");
            let protocol = text(port, &["protocol"]).unwrap_or("TCP").to_owned();
            (name.to_owned(), (number, protocol))
        })
        .collect()
}

/// A probe's or Service's port (a name or a number) as a container port number.
fn resolve_port(port: &str, ports: &BTreeMap<String, (u16, String)>) -> Option<(u16, String)> {
    match port.parse::<u16>() {
        Ok(number) => ports.values().find(|(n, _)| *n == number).cloned(),
        Err(_) => ports.get(port).cloned(),
    }
}

/// The port of a `host:port` address.
fn port_of(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{address:?} is not host:port"))
}

/// Whether the labels of a pod template match a selector's `matchLabels` (or plain labels).
fn selects(selector: &Node, pod: &Node) -> bool {
    let Some(wanted) = selector.as_mapping() else {
        return false;
    };
    !wanted.is_empty()
        && wanted.iter().all(|(key, value)| {
            text(pod, &["metadata", "labels", key.as_str()])
                == value.as_scalar().map(|s| s.as_str())
        })
}

#[test]
fn every_manifest_is_a_known_kind_with_a_name() {
    let all = manifests();
    let mut names = BTreeSet::new();
    for m in &all {
        let api = text(&m.root, &["apiVersion"]);
        let kind = m.kind();
        let expected = KINDS.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v);
        assert!(expected.is_some(), "{}: unknown kind {kind:?}", m.origin);
        assert_eq!(api, expected, "{}: apiVersion of a {kind}", m.origin);
        assert!(!m.name().is_empty(), "{}: no metadata.name", m.origin);
        assert!(
            names.insert((kind.to_owned(), m.name().to_owned())),
            "{}: a second {kind} {}",
            m.origin,
            m.name()
        );
    }
    for kind in [
        "ConfigMap",
        "Secret",
        "Service",
        "Deployment",
        "StatefulSet",
        "PodDisruptionBudget",
    ] {
        assert!(
            all.iter().any(|m| m.kind() == kind),
            "the example has no {kind}"
        );
    }
}

/// The runtime's StatefulSet, its container, and its configuration as the container's
/// environment expands it.
fn runtime() -> (Manifest, RuntimeConfig) {
    let mut all = manifests();
    let config_text = all
        .iter()
        .find(|m| m.kind() == "ConfigMap" && m.name() == "francis-runtime")
        .and_then(|m| text(&m.root, &["data", "config.yaml"]).map(str::to_owned))
        .expect("the ConfigMap francis-runtime holds config.yaml");
    let index = all
        .iter()
        .position(|m| m.kind() == "StatefulSet" && m.name() == "francis-runtime")
        .expect("the runtime runs as the StatefulSet francis-runtime");
    let statefulset = all.swap_remove(index);
    let container = items(pod(&statefulset).unwrap(), &["spec", "containers"])[0];
    // What the container's environment holds at run time: secrets and downward-API fields
    // get stand-ins; anything else is unset, so a ${VAR} the container lacks fails here.
    let env = env_of(container);
    let stand_in = move |name: &str| match env.get(name) {
        Some(Some(value)) => Some(value.clone()),
        Some(None) => Some(match name {
            "POD_NAME" => "francis-runtime-0".to_owned(),
            "POD_NAMESPACE" => "francis".to_owned(),
            n if n.ends_with("_URL") => "postgres://francis:secret@postgres:5432/francis".into(),
            _ => "a-secret-from-the-secret-store-of-at-least-32-bytes".to_owned(),
        }),
        None => None,
    };
    let config = RuntimeConfig::from_yaml_str(&config_text, "config.yaml", stand_in)
        .unwrap_or_else(|e| panic!("the runtime's config.yaml: {e}"));
    (statefulset, config)
}

#[test]
fn the_runtime_config_parses_and_its_ports_match_the_manifests() {
    let (statefulset, config) = runtime();
    assert!(matches!(config.provider, Provider::Postgres { .. }));
    assert_eq!(
        config.advertise_address.as_deref(),
        Some("francis-runtime-0.francis-runtime.francis.svc.cluster.local:7400"),
        "each replica advertises its own stable name"
    );
    assert_eq!(config.runtime_id.as_deref(), Some("francis-runtime-0"));

    let container = items(pod(&statefulset).unwrap(), &["spec", "containers"])[0];
    let ports = ports_of(container);
    assert_eq!(
        ports.get("webtransport"),
        Some(&(config.bind.port(), "UDP".to_owned())),
        "the WebTransport port is bind's, over UDP"
    );
    assert_eq!(
        ports.get("http"),
        Some(&(config.http.bind.port(), "TCP".to_owned())),
        "the HTTP port is http.bind's"
    );
    assert_eq!(
        port_of(config.advertise_address.as_deref().unwrap()),
        config.bind.port()
    );
    // Off loopback, the operations server needs a token.
    assert!(!config.http.bind.ip().is_loopback());
    let env = env_of(container);
    assert!(env.contains_key("FRANCIS_HTTP_TOKEN"));
    // The runtime runs prod, and has nothing prod refuses with the environment it is given.
    assert_eq!(config.profile, Profile::Prod);
    assert_eq!(
        Profile::Prod.check(&config.profile_setup(env.contains_key("FRANCIS_HTTP_TOKEN"))),
        Ok(Vec::new())
    );
    // Probes ask the HTTP server.
    for probe in ["livenessProbe", "readinessProbe"] {
        let port = text(container, &[probe, "httpGet", "port"]).expect(probe);
        assert_eq!(
            resolve_port(port, &ports).map(|(n, _)| n),
            Some(config.http.bind.port()),
            "{probe}"
        );
    }
    // The stable names the workers list exist: one per replica of the headless Service.
    let replicas: usize = text(&statefulset.root, &["spec", "replicas"])
        .and_then(|r| r.parse().ok())
        .unwrap();
    assert_eq!(
        text(&statefulset.root, &["spec", "serviceName"]),
        Some("francis-runtime")
    );
    let workers = manifests()
        .into_iter()
        .find(|m| m.kind() == "Deployment" && m.name() == "francis-worker")
        .expect("the workers run as the Deployment francis-worker");
    let worker = items(pod(&workers).unwrap(), &["spec", "containers"])[0];
    let listed = env_of(worker)["FRANCIS_RUNTIME_ADDRESS"].clone().unwrap();
    // The workers run prod too, with a pinned CA.
    assert_eq!(env_of(worker)["FRANCIS_PROFILE"].as_deref(), Some("prod"));
    assert!(env_of(worker).contains_key("FRANCIS_CA_FILE"));
    let expected: Vec<String> = (0..replicas)
        .map(|i| format!("francis-runtime-{i}.francis-runtime:{}", config.bind.port()))
        .collect();
    assert_eq!(listed.split(',').collect::<Vec<_>>(), expected);
}

#[test]
fn workers_listen_everywhere_and_advertise_their_pod_ip() {
    let workers = manifests()
        .into_iter()
        .find(|m| m.kind() == "Deployment" && m.name() == "francis-worker")
        .expect("the workers run as the Deployment francis-worker");
    let container = items(pod(&workers).unwrap(), &["spec", "containers"])[0];
    let env = env_of(container);
    let ports = ports_of(container);
    let literal = |name: &str| {
        env.get(name)
            .cloned()
            .flatten()
            .unwrap_or_else(|| panic!("{name} has a literal value"))
    };
    let bind = literal("FRANCIS_PEER_BIND");
    let advertised = literal("FRANCIS_PEER_ADDRESS");
    assert!(bind.starts_with("0.0.0.0:"), "{bind}");
    assert!(advertised.starts_with("$(POD_IP):"), "{advertised}");
    assert_eq!(port_of(&bind), port_of(&advertised));
    assert_eq!(ports.get("peer"), Some(&(port_of(&bind), "UDP".to_owned())));
    // POD_IP is the pod's address, from the downward API, and defined before its use.
    let pod_ip = items(container, &["env"])
        .into_iter()
        .find(|v| text(v, &["name"]) == Some("POD_IP"))
        .expect("POD_IP is set");
    assert_eq!(
        text(pod_ip, &["valueFrom", "fieldRef", "fieldPath"]),
        Some("status.podIP")
    );
    let names: Vec<&str> = items(container, &["env"])
        .into_iter()
        .filter_map(|v| text(v, &["name"]))
        .collect();
    let position = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(position("POD_IP") < position("FRANCIS_PEER_ADDRESS"));

    let http = literal("FRANCIS_HTTP_ADDRESS");
    assert_eq!(ports.get("http"), Some(&(port_of(&http), "TCP".to_owned())));
    assert!(
        env.contains_key("FRANCIS_HTTP_TOKEN"),
        "the control API listens off loopback, so it needs a token"
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        let port = text(container, &[probe, "httpGet", "port"]).expect(probe);
        assert_eq!(
            resolve_port(port, &ports).map(|(n, _)| n),
            Some(port_of(&http)),
            "{probe}"
        );
    }
    // A disruption budget keeps all but one worker through a drain.
    let pdb = manifests()
        .into_iter()
        .find(|m| {
            m.kind() == "PodDisruptionBudget"
                && at(&m.root, &["spec", "selector", "matchLabels"])
                    .is_some_and(|s| selects(s, pod(&workers).unwrap()))
        })
        .expect("a PodDisruptionBudget selects the workers");
    assert_eq!(text(&pdb.root, &["spec", "maxUnavailable"]), Some("1"));
}

#[test]
fn probes_services_and_budgets_point_at_what_exists() {
    let all = manifests();
    let workloads: Vec<&Manifest> = all.iter().filter(|m| pod(m).is_some()).collect();
    for workload in &workloads {
        for container in items(pod(workload).unwrap(), &["spec", "containers"]) {
            let ports = ports_of(container);
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                let Some(get) = at(container, &[probe, "httpGet"]) else {
                    continue;
                };
                let path = text(get, &["path"]).unwrap_or_default();
                assert!(
                    ["/healthz", "/readyz"].contains(&path),
                    "{}: {probe} asks {path:?}; Francis serves /healthz and /readyz",
                    workload.origin
                );
                let port = text(get, &["port"]).unwrap_or_default();
                assert!(
                    resolve_port(port, &ports).is_some_and(|(_, p)| p == "TCP"),
                    "{}: {probe} port {port:?} is no TCP port of the container",
                    workload.origin
                );
            }
        }
    }
    for service in all.iter().filter(|m| m.kind() == "Service") {
        let selector = at(&service.root, &["spec", "selector"]).expect("a selector");
        let targets: Vec<&&Manifest> = workloads
            .iter()
            .filter(|w| selects(selector, pod(w).unwrap()))
            .collect();
        assert_eq!(targets.len(), 1, "{}: selects one workload", service.origin);
        let containers = items(pod(targets[0]).unwrap(), &["spec", "containers"]);
        for port in items(&service.root, &["spec", "ports"]) {
            let target = text(port, &["targetPort"])
                .or(text(port, &["port"]))
                .unwrap();
            let protocol = text(port, &["protocol"]).unwrap_or("TCP");
            let found = containers
                .iter()
                .find_map(|c| resolve_port(target, &ports_of(c)));
            assert_eq!(
                found.map(|(_, p)| p),
                Some(protocol.to_owned()),
                "{}: port {target:?} over {protocol}",
                service.origin
            );
        }
    }
    for pdb in all.iter().filter(|m| m.kind() == "PodDisruptionBudget") {
        let selector = at(&pdb.root, &["spec", "selector", "matchLabels"]).unwrap();
        assert!(
            workloads.iter().any(|w| selects(selector, pod(w).unwrap())),
            "{}: selects no workload",
            pdb.origin
        );
    }
}

#[test]
fn every_francis_variable_is_one_francis_reads_and_every_reference_exists() {
    let root = repo_root();
    for (name, file) in READ {
        let source = fs::read_to_string(root.join(file)).unwrap();
        assert!(source.contains(name), "{file} does not read {name}");
    }
    let all = manifests();
    let (_, config) = runtime();
    let config_text = all
        .iter()
        .find(|m| m.kind() == "ConfigMap" && m.name() == "francis-runtime")
        .and_then(|m| text(&m.root, &["data", "config.yaml"]))
        .unwrap()
        .to_owned();
    assert!(config.runtime_psks[0].len() >= 32);

    let secrets: BTreeMap<&str, BTreeSet<&str>> = all
        .iter()
        .filter(|m| m.kind() == "Secret")
        .map(|m| {
            let keys = at(&m.root, &["stringData"])
                .or(at(&m.root, &["data"]))
                .and_then(Node::as_mapping)
                .map(|d| d.keys().map(|k| k.as_str()).collect())
                .unwrap_or_default();
            (m.name(), keys)
        })
        .collect();
    let config_maps: BTreeSet<&str> = all
        .iter()
        .filter(|m| m.kind() == "ConfigMap")
        .map(Manifest::name)
        .chain(CREATED_BY_HAND.iter().copied())
        .collect();

    for workload in all.iter().filter(|m| pod(m).is_some()) {
        let pod = pod(workload).unwrap();
        for container in items(pod, &["spec", "containers"]) {
            for var in items(container, &["env"]) {
                let name = text(var, &["name"]).unwrap();
                if name.starts_with("FRANCIS_") {
                    let read = READ.iter().any(|(n, _)| *n == name);
                    let expanded = workload.name() == "francis-runtime"
                        && config_text.contains(&format!("${{{name}}}"));
                    assert!(
                        read || expanded,
                        "{}: {name} is read by nothing in Francis",
                        workload.origin
                    );
                }
                if let Some(secret) = at(var, &["valueFrom", "secretKeyRef"]) {
                    let (secret, key) = (
                        text(secret, &["name"]).unwrap(),
                        text(secret, &["key"]).unwrap(),
                    );
                    assert!(
                        secrets.get(secret).is_some_and(|keys| keys.contains(key)),
                        "{}: {name} reads key {key:?} of Secret {secret:?}, which is not there",
                        workload.origin
                    );
                }
            }
        }
        for volume in items(pod, &["spec", "volumes"]) {
            if let Some(name) = text(volume, &["configMap", "name"]) {
                assert!(
                    config_maps.contains(name),
                    "{}: ConfigMap {name:?} is neither in the example nor created by the guide",
                    workload.origin
                );
            }
        }
    }
}
