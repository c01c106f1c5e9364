//! What the CLI's end-to-end tests share: the `francis` binary, projects generated into
//! temporary directories that build offline in one shared target directory, free loopback
//! ports, bounded waits, and child processes that are killed if a test fails.

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a first build of a generated project (all of francis' dependencies) may take on a
/// small, busy machine. Later builds reuse the shared target directory and take seconds.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// How long hosts may take to become ready once built, or to stop.
pub const HOST_TIMEOUT: Duration = Duration::from_secs(90);

/// The `francis` binary under test.
pub fn francis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_francis"))
}

/// The workspace this CLI belongs to.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Where generated projects build: one directory under the workspace's target directory, so
/// their dependencies compile once, not once per run (the projects themselves live in temporary
/// directories). Separate from the workspace's own build directory, which cargo keeps locked
/// while it runs these tests.
pub fn shared_target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_francis"))
        .ancestors()
        .nth(2)
        .expect("target directory")
        .join("cli-tests")
}

/// Environment for cargo (and `francis dev`'s cargo) building a generated project: the shared
/// target directory, offline (the lockfile copied from the workspace pins versions it has
/// already downloaded), and the variables of the outer cargo removed.
pub fn cargo_env(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE")
            || key == "CARGO_MANIFEST_DIR"
            || key == "CARGO_CRATE_NAME"
            || key == "CARGO_PRIMARY_PACKAGE"
        {
            command.env_remove(key);
        }
    }
    command
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO_TERM_COLOR", "never")
}

/// Generate a project with `francis new` (non-interactively) in `parent`, and give it the
/// workspace's lockfile so it resolves offline to versions that build with Rust 1.95.
pub fn generate(parent: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let output = francis()
        .current_dir(parent)
        .args(["new", name, "--yes"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run francis new");
    assert!(
        output.status.success(),
        "francis new failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = parent.join(name);
    std::fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock"))
        .expect("copy Cargo.lock");
    dir
}

/// Run `command` to completion within `timeout` (killing it if it takes longer); its output,
/// with stdout and stderr interleaved, is returned with its status.
pub fn run_bounded(command: &mut Command, timeout: Duration) -> (ExitStatus, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = Arc::new(Mutex::new(String::new()));
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let out = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut out = out.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        })
    })
    .collect();
    let mut guard = Guard(Some(child));
    let status = wait_bounded(guard.0.as_mut().unwrap(), timeout).unwrap_or_else(|| {
        panic!(
            "{command:?} did not finish within {timeout:?}:\n{}",
            out.lock().unwrap()
        )
    });
    guard.0 = None;
    for reader in readers {
        let _ = reader.join();
    }
    let text = out.lock().unwrap().clone();
    (status, text)
}

/// Wait for `child` to exit, at most `timeout`.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed (with its process group) when dropped, e.g. when a test fails.
pub struct Guard(pub Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            if let Some(pid) = i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                // francis dev's hosts lead their own process groups; it kills them itself on
                // SIGTERM, so ask it first, then make sure.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                if wait_bounded(child, Duration::from_secs(30)).is_none() {
                    let _ = child.kill();
                }
            }
            let _ = child.wait();
        }
    }
}

/// Send `signal` to the process `pid`.
pub fn send_signal(pid: u32, signal: rustix::process::Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a valid pid");
    rustix::process::kill_process(pid, signal).expect("send a signal");
}

/// A base port P such that P..P+count are free on 127.0.0.1 for both TCP and UDP.
pub fn free_base_port(count: u16) -> u16 {
    for _ in 0..200 {
        let base = francis::testing::free_port();
        if base == 0 || base.checked_add(count).is_none() {
            continue;
        }
        let free = (base..base + count).all(|port| {
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no {count} consecutive free ports on 127.0.0.1");
}

/// Lines a process printed, collected by a background thread, with a way to wait for one.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    /// Collect the lines of `stream` in the background.
    pub fn collect(&self, stream: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
        let lines = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let (all, changed) = &*lines.0;
                all.lock().unwrap().push(line);
                changed.notify_all();
            }
        })
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.0.0.lock().unwrap().clone()
    }

    /// Every line so far, as one text.
    pub fn text(&self) -> String {
        self.all().join("\n")
    }

    /// Wait (at most `timeout`) for a line, after the first `skip` lines, that satisfies
    /// `matches`; returns its index. Panics with everything printed so far if none comes.
    pub fn wait_for(
        &self,
        skip: usize,
        timeout: Duration,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        let (all, changed) = &*self.0;
        let mut lines = all.lock().unwrap();
        loop {
            if let Some(i) = lines.iter().skip(skip).position(|l| matches(l)) {
                return skip + i;
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "no line {what} within {timeout:?}; output so far:\n{}",
                    lines.join("\n")
                );
            }
            lines = changed.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }
}

/// A blocking HTTP/1.1 request to 127.0.0.1 (the curl API), bounded by a 10 s timeout.
/// Returns the status code and the body.
pub fn http(method: &str, address: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head:?}")))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    ))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Retry `call` until it returns `Some`, at most `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut call: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = call() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
