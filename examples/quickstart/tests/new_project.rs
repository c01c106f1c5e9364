//! The guide's "Your own project" session (`new-project.sh`, included in
//! `book/src/quickstart.md`): `francis new`, then `francis dev` on the new project, prints
//! exactly the answers the guide shows (`new-project.out`). Offline and bounded: the project
//! builds from the workspace's lockfile in `target/cli-tests`, and the script is killed if it
//! runs longer than [`LIMIT`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The first run compiles every dependency of the generated project on what may be a small,
/// busy machine; later runs reuse them and take seconds.
const LIMIT: Duration = Duration::from_secs(60 * 60);

/// Two consecutive ports on 127.0.0.1, free for TCP and UDP, as `francis dev --base-port` needs.
fn free_base_port() -> u16 {
    let free = |port: u16| {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
    };
    loop {
        let base = francis::testing::free_port();
        if (1024..u16::MAX).contains(&base) && free(base) && free(base + 1) {
            return base;
        }
    }
}

/// The `francis` binary, built next to this package's binaries.
fn francis_bin() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_quickstart")).with_file_name("francis");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = without_cargo_vars(Command::new(cargo).args([
            "build",
            "-p",
            "francis-cli",
            "--bin",
            "francis",
        ]))
        .status()
        .expect("run cargo build for the francis binary");
        assert!(status.success(), "building the francis binary failed");
    }
    path
}

/// Removes the variables cargo sets for this test: the builds the script starts would otherwise
/// look different from plain ones (build scripts watch some of them) and rebuild dependencies.
fn without_cargo_vars(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
            ]
            .contains(&key.as_str())
            || key == "CARGO_PRIMARY_PACKAGE"
        {
            command.env_remove(key);
        }
    }
    command
}

#[test]
fn a_new_project_runs_as_a_dev_cluster_as_the_guide_shows() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let mut child = without_cargo_vars(
        Command::new("bash")
            .arg(format!("{dir}/new-project.sh"))
            .env("FRANCIS_BIN", francis_bin())
            .env("BASE", free_base_port().to_string())
            .env("WAIT_SECONDS", LIMIT.as_secs().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .spawn()
    .unwrap();
    // Read both pipes while waiting, so a chatty build never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).ok();
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).ok();
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            // SIGINT lets the script stop the cluster it started before it goes.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(30));
            let _ = child.kill();
            let _ = child.wait();
            panic!("new-project.sh ran longer than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    assert!(
        status.success(),
        "new-project.sh failed ({status}):\n{stdout}\n{stderr}"
    );
    let expected: String = std::fs::read_to_string(format!("{dir}/new-project.out"))
        .unwrap()
        .lines()
        .filter(|line| !line.contains("ANCHOR"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(
        stdout, expected,
        "the session's answers differ from new-project.out"
    );
}
