//! The CLI as a person sees it in a terminal: run under a pseudo-terminal (pty-process), with
//! what it draws read back through a terminal emulator's screen model (vt100). `francis dev`
//! keeps one status table at the bottom, redrawn in place as hosts become ready and actors
//! activate; Ctrl-C typed at the terminal stops it cleanly with exit code 0. `francis new`
//! asks for what is missing, and asks again when an answer is not valid.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    BUILD_TIMEOUT, Guard, HOST_TIMEOUT, cargo_env, francis, free_base_port, generate, http,
    wait_bounded,
};

const ROWS: u16 = 40;
const COLS: u16 = 150;

/// A program running in a pseudo-terminal, and the screen it draws.
struct Terminal {
    pty: Arc<pty_process::blocking::Pty>,
    screen: Arc<Mutex<vt100::Parser>>,
    child: Guard,
}

impl Terminal {
    /// Run `command` (built from `francis()` and `cargo_env`) in a new pseudo-terminal.
    fn spawn(dir: &Path, args: &[&str]) -> Terminal {
        let (pty, pts) = pty_process::blocking::open().expect("open a pty");
        pty.resize(pty_process::Size::new(ROWS, COLS))
            .expect("size the pty");
        // The same environment the other tests give francis and its cargo.
        let template = cargo_env(&mut francis())
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
            .collect::<Vec<_>>();
        let mut command = pty_process::blocking::Command::new(env!("CARGO_BIN_EXE_francis"))
            .args(args)
            .current_dir(dir)
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR");
        for (key, value) in template {
            command = match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let child: Child = command.spawn(pts).expect("spawn in the pty");
        let pty = Arc::new(pty);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            ROWS.try_into().unwrap(),
            COLS.try_into().unwrap(),
            2000,
        )));
        let (reader, parser) = (pty.clone(), screen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            // Reading fails (EIO) once the program and its children are gone.
            while let Ok(n) = (&*reader).read(&mut buf) {
                if n == 0 {
                    break;
                }
                parser.lock().unwrap().process(&buf[..n]);
            }
        });
        Terminal {
            pty,
            screen,
            child: Guard(Some(child)),
        }
    }

    /// The screen as text, one line per row.
    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Wait (at most `timeout`) until the screen satisfies `test`.
    fn wait_for(&self, timeout: Duration, what: &str, test: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let contents = self.contents();
            if test(&contents) {
                return contents;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what} within {timeout:?}; it shows:\n{contents}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Type `text` at the terminal.
    fn type_text(&self, text: &str) {
        (&*self.pty)
            .write_all(text.as_bytes())
            .expect("type at the terminal");
    }

    /// Wait for the program to exit; its exit code.
    fn exit_code(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.0.as_mut().unwrap();
        let status = wait_bounded(child, timeout)
            .unwrap_or_else(|| panic!("still running after {timeout:?}"));
        self.child.0 = None;
        status.code()
    }
}

/// The table row of `host` on the screen, split into columns.
fn row<'a>(screen: &'a str, host: &str) -> Option<Vec<&'a str>> {
    screen
        .lines()
        .rev()
        .find(|l| l.starts_with(&format!("{host} ")))
        .map(|l| l.split_whitespace().collect())
}

fn actors(screen: &str, host: &str) -> Option<u64> {
    row(screen, host)?.last()?.parse().ok()
}

#[test]
fn the_status_view_updates_in_place_and_ctrl_c_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let project = generate(tmp.path(), "ptyapp", &[]);
    let base = free_base_port(2);
    let data = tmp.path().join("data");
    let mut term = Terminal::spawn(
        &project,
        &[
            "dev",
            "--base-port",
            &base.to_string(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );

    let ready = |s: &str| {
        ["host-1", "host-2"].iter().all(|h| {
            row(s, h).is_some_and(|r| r.get(1) == Some(&"ready") && r.last() == Some(&"0"))
        })
    };
    let screen = term.wait_for(
        BUILD_TIMEOUT + HOST_TIMEOUT,
        "both hosts ready with 0 actors",
        ready,
    );
    assert!(
        screen.contains("── francis dev · 2 hosts · data in"),
        "{screen}"
    );
    assert!(
        screen.contains(&format!("127.0.0.1:{base}"))
            && screen.contains(&format!("127.0.0.1:{}", base + 1)),
        "{screen}"
    );
    assert!(screen.contains("all 2 hosts ready"), "{screen}");

    // Activate actors through both hosts: the ACTORS column follows, in the same table.
    for (i, id) in ["x", "y", "z"].iter().enumerate() {
        let address = format!("127.0.0.1:{}", base + u16::try_from(i % 2).unwrap());
        let (code, body) =
            http("POST", &address, &format!("/invoke/counter/{id}/add"), "1").unwrap();
        assert_eq!(code, 200, "{body}");
    }
    let screen = term.wait_for(HOST_TIMEOUT, "3 active actors in the table", |s| {
        actors(s, "host-1").unwrap_or(0) + actors(s, "host-2").unwrap_or(0) == 3
    });
    assert_eq!(
        screen.matches("ACTORS").count(),
        1,
        "the table is redrawn in place, not repeated:\n{screen}"
    );
    let last_line = screen
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        last_line.starts_with("host-2 "),
        "the table stays at the bottom:\n{screen}"
    );
    assert!(
        screen
            .lines()
            .any(|l| l.trim_start().starts_with("host-1 | ")),
        "host logs are prefixed:\n{screen}"
    );

    // Ctrl-C at the terminal.
    term.type_text("\x03");
    let code = term.exit_code(HOST_TIMEOUT);
    let screen = term.contents();
    assert_eq!(code, Some(0), "{screen}");
    for host in ["host-1", "host-2"] {
        assert_eq!(
            row(&screen, host).and_then(|r| r.get(1).copied()),
            Some("stopped"),
            "{screen}"
        );
    }
    assert!(screen.contains("every host stopped"), "{screen}");
}

#[test]
fn new_asks_for_what_is_missing_on_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let mut term = Terminal::spawn(tmp.path(), &["new"]);
    term.wait_for(Duration::from_secs(30), "the name prompt", |s| {
        s.contains("Project name?")
    });
    term.type_text("Bad Name\r");
    term.wait_for(Duration::from_secs(30), "a retry", |s| {
        s.contains("try again")
    });
    term.type_text("asked\r");
    term.wait_for(
        Duration::from_secs(30),
        "the actor prompt with its default",
        |s| s.contains("Actor name") && s.contains("[counter]"),
    );
    term.type_text("basket\r");
    assert_eq!(
        term.exit_code(Duration::from_secs(30)),
        Some(0),
        "{}",
        term.contents()
    );
    assert!(term.contents().contains("Next steps:"));
    assert!(tmp.path().join("asked/src/basket.rs").is_file());
}
