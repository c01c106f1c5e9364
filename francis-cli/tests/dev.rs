//! `francis dev` end to end, with plain (non-terminal) output: a generated project run as a
//! cluster of two hosts on free loopback ports, called through the curl API on every host,
//! a crashed host restarted, Ctrl-C (SIGINT) ending it with exit code 0, and the state still
//! there when it starts again from the same data directory. The same for `francis dev
//! --remote` on a generated remote-worker project: a dev runtime and two workers, the runtime
//! restarted after a crash, the workers stopped before it.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{
    BUILD_TIMEOUT, Guard, HOST_TIMEOUT, Lines, cargo_env, eventually, francis, free_base_port,
    generate, http, send_signal, wait_bounded,
};
use serde_json::{Value, json};

struct Dev {
    guard: Guard,
    out: Lines,
    err: Lines,
}

impl Dev {
    /// Start `francis dev` in `project` and wait until every host is ready.
    fn start(project: &Path, data: &Path, base: u16) -> Dev {
        Dev::start_with(project, data, base, false)
    }

    /// Start `francis dev` (with `--remote`: a runtime and workers) in `project` and wait until
    /// every process is ready.
    fn start_with(project: &Path, data: &Path, base: u16, remote: bool) -> Dev {
        let mut command = francis();
        cargo_env(&mut command)
            .current_dir(project)
            .args(["dev", "--hosts", "2", "--base-port", &base.to_string()])
            .args(remote.then_some("--remote"))
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start francis dev");
        let (out, err) = (Lines::default(), Lines::default());
        out.collect(child.stdout.take().unwrap());
        err.collect(child.stderr.take().unwrap());
        let dev = Dev {
            guard: Guard(Some(child)),
            out,
            err,
        };
        dev.err
            .wait_for(0, BUILD_TIMEOUT, "saying the build is done", |l| {
                l.starts_with("Built ")
            });
        let ready = if remote {
            "the runtime and all 2 workers ready"
        } else {
            "all 2 hosts ready"
        };
        dev.out
            .wait_for(0, HOST_TIMEOUT, "saying all hosts are ready", |l| {
                l.contains(ready)
            });
        dev
    }

    /// The pid `francis dev` reported last for `name` ("<name> starting (pid N)" or
    /// "<name> restarting (pid N)"), after line `skip`.
    fn pid_of(&self, skip: usize, name: &str) -> u32 {
        let i = self
            .out
            .wait_for(skip, HOST_TIMEOUT, &format!("with {name}'s pid"), |l| {
                l.contains(&format!("{name} starting (pid "))
                    || l.contains(&format!("{name} restarting (pid "))
            });
        let line = &self.out.all()[i];
        line.split("(pid ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {line:?}"))
    }

    fn pid(&self) -> u32 {
        self.guard.0.as_ref().unwrap().id()
    }

    /// Ctrl-C: expect a clean stop with exit code 0.
    fn interrupt(mut self) -> Lines {
        send_signal(self.pid(), rustix::process::Signal::INT);
        let child = self.guard.0.as_mut().unwrap();
        let status = wait_bounded(child, HOST_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "francis dev did not stop after SIGINT:\n{}",
                self.out.text()
            )
        });
        self.guard.0 = None;
        assert_eq!(
            status.code(),
            Some(0),
            "francis dev exited with {status}:\n{}\n{}",
            self.out.text(),
            self.err.text()
        );
        self.out.clone()
    }
}

fn post(address: &str, path: &str, body: &str) -> Value {
    let (status, text) =
        http("POST", address, path, body).unwrap_or_else(|e| panic!("POST {address}{path}: {e}"));
    assert_eq!(status, 200, "POST {address}{path} {body}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn status(address: &str) -> Value {
    let (code, text) = http("GET", address, "/status", "").unwrap();
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// For each of the two processes: an actor first called through it, then through the other,
/// holds one state (every actor is one activation whichever process is called).
fn calls_reach_one_activation_through_either(addresses: &[String; 2], prefix: &str) {
    for (i, address) in addresses.iter().enumerate() {
        let other = &addresses[1 - i];
        let id = format!("{prefix}{i}");
        assert_eq!(
            post(address, &format!("/invoke/counter/{id}/add"), "5"),
            json!({"total": 5, "ticks": 0})
        );
        assert_eq!(
            post(other, &format!("/invoke/counter/{id}/add"), "2"),
            json!({"total": 7, "ticks": 0})
        );
        assert_eq!(
            post(other, &format!("/peek/counter/{id}/get"), ""),
            json!({"total": 7, "ticks": 0})
        );
    }
}

#[test]
fn a_dev_cluster_serves_on_every_host_restarts_crashes_and_keeps_state() {
    let tmp = tempfile::tempdir().unwrap();
    let project = generate(tmp.path(), "devapp", &[]);
    let data = tmp.path().join("data");
    let base = free_base_port(2);
    let hosts = [
        format!("127.0.0.1:{base}"),
        format!("127.0.0.1:{}", base + 1),
    ];

    let dev = Dev::start(&project, &data, base);
    let psk = std::fs::read_to_string(data.join("runtime-psk")).unwrap();
    assert!(data.join("cluster.db").is_file());

    // Every host answers, and every actor is one activation whichever host is called.
    calls_reach_one_activation_through_either(&hosts, "a");
    let statuses: Vec<Value> = hosts.iter().map(|h| status(h)).collect();
    for (status, host) in statuses.iter().zip(&hosts) {
        assert_eq!(status["address"], json!(host), "{status}");
        assert!(!status["hostId"].as_str().unwrap().is_empty());
    }
    assert_ne!(statuses[0]["hostId"], statuses[1]["hostId"]);
    let active: u64 = statuses
        .iter()
        .map(|s| s["activeActors"].as_u64().unwrap())
        .sum();
    assert_eq!(
        active, 2,
        "two actors, each active on exactly one host: {statuses:?}"
    );

    // Each host's output is prefixed with its name; the status changes are reported.
    let text = dev.out.text();
    for name in ["host-1", "host-2"] {
        assert!(
            dev.out
                .all()
                .iter()
                .any(|l| l.trim_start().starts_with(&format!("{name} | "))),
            "no {name} lines:\n{text}"
        );
    }
    dev.out
        .wait_for(0, HOST_TIMEOUT, "reporting active actors", |l| {
            l.contains("active actor")
        });

    // A crashed host is restarted, and says so.
    let pid_line = dev.out.wait_for(0, HOST_TIMEOUT, "with host-2's pid", |l| {
        l.contains("host-2 starting (pid ")
    });
    let line = &dev.out.all()[pid_line];
    let pid: u32 = line
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .expect("a pid");
    let seen = dev.out.all().len();
    send_signal(pid, rustix::process::Signal::KILL);
    dev.out
        .wait_for(seen, HOST_TIMEOUT, "reporting the crash", |l| {
            l.contains("host-2 was killed by SIGKILL; restarting it in")
        });
    dev.out
        .wait_for(seen, HOST_TIMEOUT, "restarting host-2", |l| {
            l.contains("host-2 restarting (pid ")
        });
    dev.out
        .wait_for(seen, HOST_TIMEOUT, "host-2 ready again", |l| {
            l.contains("host-2 ready in")
        });
    assert_ne!(
        status(&hosts[1])["hostId"],
        statuses[1]["hostId"],
        "a new process, a new host ID"
    );
    // Actors of the crashed host move once its registration expires; none is lost.
    for host in &hosts {
        for id in ["a0", "a1"] {
            let value = eventually(HOST_TIMEOUT, "reading an actor after the crash", || {
                let (code, body) =
                    http("POST", host, &format!("/peek/counter/{id}/get"), "").ok()?;
                (code == 200).then(|| serde_json::from_str::<Value>(&body).unwrap())
            });
            assert_eq!(value, json!({"total": 7, "ticks": 0}));
        }
    }

    // Ctrl-C stops every host cleanly, with exit code 0.
    let out = dev.interrupt();
    let text = out.text();
    for name in ["host-1", "host-2"] {
        assert!(
            text.contains(&format!("{name} stopped (exited with code 0)")),
            "{text}"
        );
    }
    assert!(
        text.contains("every host stopped; the state is kept"),
        "{text}"
    );
    for host in &hosts {
        assert!(
            http("GET", host, "/status", "").is_err(),
            "{host} still answers"
        );
    }

    // Started again on the same data directory: the same cluster key, the same state.
    let dev = Dev::start(&project, &data, base);
    assert_eq!(
        std::fs::read_to_string(data.join("runtime-psk")).unwrap(),
        psk
    );
    for host in &hosts {
        for id in ["a0", "a1"] {
            assert_eq!(
                post(host, &format!("/peek/counter/{id}/get"), ""),
                json!({"total": 7, "ticks": 0})
            );
        }
    }
    assert_eq!(
        post(&hosts[1], "/invoke/counter/a0/add", "1"),
        json!({"total": 8, "ticks": 0})
    );
    dev.interrupt();
}

#[test]
fn a_project_that_cannot_be_found_or_built_is_exit_code_4() {
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base_port(2).to_string();
    let output = francis()
        .current_dir(tmp.path())
        .args(["dev", "--base-port", &base])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{err}");
    assert!(err.contains("francis new myapp creates one"), "{err}");

    // A project whose code does not compile.
    let project = generate(tmp.path(), "broken", &[]);
    std::fs::write(
        project.join("src/main.rs"),
        "fn main() { this is not rust }\n",
    )
    .unwrap();
    let mut command = francis();
    cargo_env(&mut command)
        .current_dir(&project)
        .args(["dev", "--base-port", &base])
        .stdin(Stdio::null());
    let (status, output) = common::run_bounded(&mut command, BUILD_TIMEOUT);
    assert_eq!(status.code(), Some(4), "{output}");
    assert!(
        output.contains("cargo build failed")
            && output.contains("fix the errors cargo printed above"),
        "{output}"
    );
}

#[test]
fn a_remote_dev_cluster_serves_on_every_worker_survives_a_runtime_crash_and_keeps_state() {
    let tmp = tempfile::tempdir().unwrap();
    let project = generate(tmp.path(), "remoteapp", &["--template", "remote-worker"]);
    let data = tmp.path().join("remote-data");
    let base = free_base_port(2);
    let workers = [
        format!("127.0.0.1:{base}"),
        format!("127.0.0.1:{}", base + 1),
    ];

    let dev = Dev::start_with(&project, &data, base, true);
    let config = std::fs::read_to_string(data.join("runtime.yaml")).unwrap();
    assert!(
        config.contains("method: psk") && config.contains("type: sqlite"),
        "{config}"
    );
    assert!(data.join("runtime.db").is_file(), "the runtime's store");
    assert!(
        std::fs::read_to_string(data.join("ca.pem"))
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(
        dev.err
            .text()
            .contains("Generated the dev runtime's configuration"),
        "{}",
        dev.err.text()
    );

    // Every worker answers, and every actor is one activation whichever worker is called.
    calls_reach_one_activation_through_either(&workers, "r");
    let statuses: Vec<Value> = workers.iter().map(|w| status(w)).collect();
    assert_ne!(statuses[0]["hostId"], statuses[1]["hostId"]);
    let active: u64 = statuses
        .iter()
        .map(|s| s["activeActors"].as_u64().unwrap())
        .sum();
    assert_eq!(
        active, 2,
        "each actor active on exactly one worker: {statuses:?}"
    );

    // The runtime and each worker have their own prefix.
    let lines = dev.out.all();
    for name in ["runtime", "worker-1", "worker-2"] {
        assert!(
            lines
                .iter()
                .any(|l| l.trim_start().starts_with(&format!("{name} | "))),
            "no {name} lines:\n{}",
            dev.out.text()
        );
    }

    // A crashed runtime is restarted; the workers rejoin it and the state is still there.
    let pid = dev.pid_of(0, "runtime");
    let seen = dev.out.all().len();
    send_signal(pid, rustix::process::Signal::KILL);
    dev.out
        .wait_for(seen, HOST_TIMEOUT, "reporting the runtime's crash", |l| {
            l.contains("runtime was killed by SIGKILL; restarting it in")
        });
    dev.out
        .wait_for(seen, HOST_TIMEOUT, "the runtime ready again", |l| {
            l.contains("runtime ready in")
        });
    for worker in &workers {
        for id in ["r0", "r1"] {
            let value = eventually(
                HOST_TIMEOUT,
                "reading an actor after the runtime's crash",
                || {
                    let (code, body) =
                        http("POST", worker, &format!("/peek/counter/{id}/get"), "").ok()?;
                    (code == 200).then(|| serde_json::from_str::<Value>(&body).unwrap())
                },
            );
            assert_eq!(value, json!({"total": 7, "ticks": 0}));
        }
    }

    // Ctrl-C stops the workers, then the runtime, with exit code 0.
    let out = dev.interrupt();
    let lines = out.all();
    let position = |what: &str| {
        lines
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line {what:?}:\n{}", out.text()))
    };
    let runtime_stopped = position("runtime stopped (exited with code 0)");
    for name in ["worker-1", "worker-2"] {
        assert!(
            position(&format!("{name} stopped (exited with code 0)")) < runtime_stopped,
            "{name} stopped after the runtime:\n{}",
            out.text()
        );
    }
    position("every worker and the runtime stopped; the state is kept");
    for worker in &workers {
        assert!(
            http("GET", worker, "/status", "").is_err(),
            "{worker} still answers"
        );
    }

    // Started again on the same data directory: the same configuration, the same state.
    let dev = Dev::start_with(&project, &data, base, true);
    assert_eq!(
        std::fs::read_to_string(data.join("runtime.yaml")).unwrap(),
        config
    );
    for worker in &workers {
        for id in ["r0", "r1"] {
            assert_eq!(
                post(worker, &format!("/peek/counter/{id}/get"), ""),
                json!({"total": 7, "ticks": 0})
            );
        }
    }
    assert_eq!(
        post(&workers[1], "/invoke/counter/r0/add", "1"),
        json!({"total": 8, "ticks": 0})
    );
    dev.interrupt();
}
