//! `francis new` end to end, as a script runs it: every template generated non-interactively
//! into a temporary directory, then built and tested with cargo (all of them in one shared
//! target directory, so the second reuses the dependencies the first compiled); refusals with
//! their exit codes and fixes; and the help, version and completions every subcommand offers.

mod common;

use std::process::Stdio;

use common::{BUILD_TIMEOUT, cargo_env, francis, generate, run_bounded};

fn run(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let output = francis()
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run francis");
    (
        output.status.code().expect("an exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn templates() -> Vec<String> {
    let (code, out, _) = run(&std::env::temp_dir(), &["new", "--list"]);
    assert_eq!(code, 0);
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_template_generates_a_project_that_builds_and_passes_its_tests() {
    let names = templates();
    assert!(
        names.contains(&"local-app".to_owned()) && names.contains(&"remote-worker".to_owned()),
        "{names:?}"
    );
    for template in names {
        let started = std::time::Instant::now();
        let tmp = tempfile::tempdir().unwrap();
        let name = format!("gen-{template}");
        let (code, out, err) = {
            let o = francis()
                .current_dir(tmp.path())
                .args([
                    "new",
                    &name,
                    "--template",
                    &template,
                    "--actor",
                    "order_book",
                    "--no-interactive",
                ])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        };
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains("Next steps:") && out.contains("francis dev"),
            "{out}"
        );
        let dir = tmp.path().join(&name);
        // Placeholders in file names and contents, through cargo-generate's filters.
        let actor = std::fs::read_to_string(dir.join("src/order_book.rs")).unwrap();
        assert!(
            actor.contains("pub struct OrderBook {") && actor.contains("name = \"order_book\""),
            "{actor}"
        );
        assert!(dir.join("tests/order_book.rs").is_file());
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(
            readme.contains("# gen-")
                && readme.contains("francis dev")
                && readme.contains("/invoke/order_book/"),
            "{readme}"
        );
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("edition = \"2024\"") && manifest.contains("rust-version = \"1.95\""),
            "{manifest}"
        );
        assert!(
            manifest.contains("francis = { path = "),
            "the default dependency is this checkout: {manifest}"
        );
        assert!(!dir.join("cargo-generate.toml").exists());
        assert!(!readme.contains("{{") && !actor.contains("{{") && !manifest.contains("{%"));

        std::fs::copy(
            common::workspace_root().join("Cargo.lock"),
            dir.join("Cargo.lock"),
        )
        .unwrap();
        let (status, output) = run_bounded(
            cargo_env(
                std::process::Command::new(env!("CARGO"))
                    .current_dir(&dir)
                    .args(["fmt", "--check"]),
            ),
            BUILD_TIMEOUT,
        );
        assert!(
            status.success(),
            "the generated code is not rustfmt-clean:\n{output}"
        );
        let (status, output) = run_bounded(
            cargo_env(
                std::process::Command::new(env!("CARGO"))
                    .current_dir(&dir)
                    .args(["build", "--offline"]),
            ),
            BUILD_TIMEOUT,
        );
        assert!(
            status.success(),
            "cargo build of {template} failed:\n{output}"
        );
        let (status, output) = run_bounded(
            cargo_env(
                std::process::Command::new(env!("CARGO"))
                    .current_dir(&dir)
                    .args(["test", "--offline"]),
            ),
            BUILD_TIMEOUT,
        );
        assert!(
            status.success(),
            "cargo test of {template} failed:\n{output}"
        );
        assert!(output.contains("test result: ok. 5 passed"), "{output}");
        if template == "remote-worker" {
            check_runtime_yaml(&dir);
        }
        // The binary reads the environment contract of francis dev (--remote for a worker).
        let (status, help) = run_bounded(
            cargo_env(
                std::process::Command::new(env!("CARGO"))
                    .current_dir(&dir)
                    .args(["run", "--offline", "-q", "--", "--help"]),
            ),
            BUILD_TIMEOUT,
        );
        assert!(status.success(), "{help}");
        let contract: &[&str] = if template == "remote-worker" {
            &[
                "FRANCIS_RUNTIME_ADDRESS",
                "FRANCIS_HOST_BOOTSTRAP_PSK",
                "FRANCIS_CA_FILE",
            ]
        } else {
            &["FRANCIS_DB"]
        };
        for var in [
            "FRANCIS_HTTP_ADDRESS",
            "FRANCIS_PEER_ADDRESS",
            "FRANCIS_HOST_NAME",
        ]
        .iter()
        .chain(contract)
        {
            assert!(help.contains(var), "{var} missing from:\n{help}");
        }
        eprintln!(
            "{template}: generated, built and tested in {:.0?}",
            started.elapsed()
        );
    }
}

/// The remote-worker's runtime.yaml: rendered, and valid for `francis runtime check` in the
/// prod profile once its keys and the operations token are in the environment (and refused,
/// naming them, when they are not).
fn check_runtime_yaml(dir: &std::path::Path) {
    let text = std::fs::read_to_string(dir.join("runtime.yaml")).unwrap();
    assert!(
        !text.contains("{{") && text.contains("# The runtime of gen-remote-worker"),
        "{text}"
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for step in [
        "francis dev --remote",
        "francis runtime --config runtime.yaml",
        "francis ca print --config runtime.yaml",
    ] {
        assert!(readme.contains(step), "{step} missing from:\n{readme}");
    }
    let check = |keys: bool| {
        let mut command = francis();
        command
            .current_dir(dir)
            .args(["runtime", "check", "--config", "runtime.yaml"])
            .env_remove("FRANCIS_RUNTIME_PSK")
            .env_remove("FRANCIS_HOST_BOOTSTRAP_PSK")
            .env_remove("FRANCIS_HTTP_TOKEN")
            .env_remove("FRANCIS_PROFILE")
            .stdin(Stdio::null());
        if keys {
            command
                .env("FRANCIS_RUNTIME_PSK", "k".repeat(32))
                .env("FRANCIS_HOST_BOOTSTRAP_PSK", "h".repeat(16))
                .env("FRANCIS_HTTP_TOKEN", "t".repeat(32));
        }
        let output = command.output().unwrap();
        (
            output.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let (code, output) = check(true);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("127.0.0.1:7400"), "{output}");
    assert!(
        output.contains(" prod\n"),
        "the deploy config runs prod: {output}"
    );
    let (code, output) = check(false);
    assert_eq!(code, Some(6), "{output}");
    assert!(output.contains("FRANCIS_RUNTIME_PSK"), "{output}");
}

#[test]
fn an_existing_directory_is_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    std::fs::write(tmp.path().join("taken/keep.txt"), "mine").unwrap();
    let (code, _, err) = run(tmp.path(), &["new", "taken", "--yes"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("already exists") && err.contains("pick another project name, or remove it"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("taken/keep.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("taken")).unwrap().count(),
        1
    );

    // A second run into a generated project refuses too.
    generate(tmp.path(), "made", &[]);
    let (code, _, err) = run(tmp.path(), &["new", "made", "--yes"]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn bad_values_are_usage_errors_that_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["new", "--yes"], "no project name"),
        (&["new"], "francis new <NAME>"),
        (&["new", "MyApp", "--yes"], "try \"my-app\""),
        (&["new", "my app", "--yes"], "lowercase letters, digits"),
        (&["new", "francis", "--yes"], "reserved"),
        (
            &["new", "ok", "--template", "nope", "--yes"],
            "pick one of: local-app",
        ),
        (
            &["new", "ok", "--actor", "ShoppingCart", "--yes"],
            "try \"shopping_cart\"",
        ),
        (&["new", "ok", "--actor", "match", "--yes"], "Rust keyword"),
        (
            &["new", "ok", "--define", "colour=red", "--yes"],
            "its placeholders are: actor",
        ),
        (
            &["new", "ok", "--francis-path", "/", "--yes"],
            "no francis crate",
        ),
        (
            &[
                "new",
                "ok",
                "--francis-path",
                "/",
                "--francis-version",
                "0.1",
            ],
            "cannot be used with",
        ),
        (&["dev", "--hosts", "0"], "0 is not in 1..=64"),
        (&["dev", "--base-port", "65535"], "--base-port"),
        (&["nope"], "unrecognized subcommand"),
    ];
    for (args, expected) in cases {
        let (code, _, err) = run(tmp.path(), args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in:\n{err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing was created"
    );
}

#[test]
fn the_crates_io_dependency_is_a_flag_away() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        tmp.path(),
        &["new", "pub-app", "--francis-version", "0.1", "--yes"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("francis 0.1 from crates.io"), "{out}");
    let manifest = std::fs::read_to_string(tmp.path().join("pub-app/Cargo.toml")).unwrap();
    assert!(
        manifest.contains(
            "francis = { version = \"0.1\", default-features = false, features = [\"sqlite\", \"http\"] }"
        ),
        "{manifest}"
    );
    let path = common::workspace_root().join("francis");
    let (code, _, err) = run(
        tmp.path(),
        &[
            "new",
            "path-app",
            "--francis-path",
            path.to_str().unwrap(),
            "--yes",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let manifest = std::fs::read_to_string(tmp.path().join("path-app/Cargo.toml")).unwrap();
    let expected = format!(
        "francis = {{ path = \"{}\"",
        path.canonicalize().unwrap().display()
    );
    assert!(manifest.contains(&expected), "{manifest}");
}

#[test]
fn help_version_and_completions() {
    let tmp = std::env::temp_dir();
    let (code, out, _) = run(&tmp, &["--version"]);
    assert_eq!(
        (code, out.trim()),
        (0, concat!("francis ", env!("CARGO_PKG_VERSION")))
    );
    let (code, out, _) = run(&tmp, &["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Examples:") && out.contains("Exit codes:") && out.contains("130"),
        "{out}"
    );
    for sub in ["new", "dev", "completions"] {
        let (code, out, _) = run(&tmp, &[sub, "--help"]);
        assert_eq!(code, 0);
        assert!(
            out.contains("Examples:"),
            "francis {sub} --help has no examples:\n{out}"
        );
    }
    let (_, out, _) = run(&tmp, &["dev", "--help"]);
    for var in [
        "FRANCIS_HOST_NAME",
        "FRANCIS_HTTP_ADDRESS",
        "FRANCIS_PEER_ADDRESS",
        "FRANCIS_DB",
        "FRANCIS_RUNTIME_PSK",
        "--remote",
        "FRANCIS_RUNTIME_ADDRESS",
        "FRANCIS_HOST_BOOTSTRAP_PSK",
        "FRANCIS_CA_FILE",
    ] {
        assert!(out.contains(var), "{var} missing from francis dev --help");
    }
    // Every template is named in francis new --help.
    let (_, out, _) = run(&tmp, &["new", "--help"]);
    for template in templates() {
        assert!(
            out.contains(&template),
            "{template} missing from francis new --help:\n{out}"
        );
    }
    for (shell, marker) in [
        ("bash", "_francis()"),
        ("zsh", "#compdef francis"),
        ("fish", "complete -c francis"),
        ("elvish", "francis"),
        ("powershell", "francis"),
    ] {
        let (code, out, err) = run(&tmp, &["completions", shell]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains(marker) && out.contains("completions"),
            "{shell}: {out}"
        );
    }
}
