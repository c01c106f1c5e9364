//! The generated parts of the guide: the runtime's configuration reference, rendered from
//! `RuntimeConfig::reference()`, and the `francis` command reference, the `--help` of every
//! command of the built binary. Each lives in its page between two marker comments,
//!
//! ```text
//! <!-- BEGIN GENERATED name ... -->
//! <!-- END GENERATED name -->
//! ```
//!
//! and these tests fail when what is between them is not what the code gives now, so the
//! guide cannot drift from the code. `FRANCIS_BLESS=1 cargo test -p francis-tests --test
//! reference` rewrites them instead.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use francis::runtime::config::RuntimeConfig;

const REGENERATE: &str = "FRANCIS_BLESS=1 cargo test -p francis-tests --test reference";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the repository")
        .to_path_buf()
}

/// Compare the generated region `name` of `page` (under `book/src`) with `generated`, or
/// rewrite it when `FRANCIS_BLESS=1`.
fn check_region(page: &str, name: &str, generated: &str) {
    let path = repo_root().join("book/src").join(page);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let begin = format!("<!-- BEGIN GENERATED {name}");
    let end = format!("<!-- END GENERATED {name} -->");
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.starts_with(&begin));
    let stop = lines.iter().position(|l| l.trim_end() == end);
    let (Some(start), Some(stop)) = (start, stop) else {
        panic!(
            "book/src/{page} has no generated region {name}: add the lines\n{begin} ({REGENERATE}) -->\n{end}\nwhere it belongs, then run {REGENERATE}"
        );
    };
    assert!(
        start < stop,
        "book/src/{page}: {name} ends before it begins"
    );
    let current = lines[start + 1..stop].join("\n");
    let wanted = generated.trim_end_matches('\n');
    if current == wanted {
        return;
    }
    if std::env::var("FRANCIS_BLESS").is_ok_and(|v| v == "1") {
        let mut out: Vec<&str> = lines[..=start].to_vec();
        out.extend(wanted.lines());
        out.extend(&lines[stop..]);
        let mut rewritten = out.join("\n");
        rewritten.push('\n');
        fs::write(&path, rewritten).unwrap_or_else(|e| panic!("cannot write {page}: {e}"));
        eprintln!("rewrote the generated region {name} of book/src/{page}");
        return;
    }
    let first_difference = current
        .lines()
        .zip(wanted.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| current.lines().count().min(wanted.lines().count()));
    panic!(
        "book/src/{page}: the generated region {name} is out of date (first difference at its line {}):\n  page: {:?}\n  code: {:?}\nRegenerate it with: {REGENERATE}",
        first_difference + 1,
        current.lines().nth(first_difference).unwrap_or("(end)"),
        wanted.lines().nth(first_difference).unwrap_or("(end)"),
    );
}

/// Text for a Markdown table cell: pipes escaped, angle brackets shown rather than read as
/// HTML.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The configuration keys as a Markdown table.
fn runtime_config_table() -> String {
    let mut table = String::from("| Key | Default | Description |\n|---|---|---|\n");
    for key in RuntimeConfig::reference() {
        let default = key.default.map_or("—".to_owned(), |d| format!("`{d}`"));
        table.push_str(&format!(
            "| `{}` | {default} | {} |\n",
            key.key,
            cell(key.description)
        ));
    }
    table
}

#[test]
fn the_runtime_configuration_reference_is_generated_from_the_code() {
    check_region(
        "cluster/runtime.md",
        "runtime-config",
        &runtime_config_table(),
    );
}

/// The runtime configurations the guide includes are valid, and set up what the guide says.
#[test]
fn the_configurations_the_guide_shows_are_valid() {
    use francis::runtime::config::{Bootstrap, Provider};
    let env = |name: &str| match name {
        "FRANCIS_RUNTIME_PSK" => Some("r".repeat(64)),
        "FRANCIS_HOST_BOOTSTRAP_PSK" => Some("h".repeat(64)),
        "FRANCIS_DATABASE_URL" => Some("postgres://francis:secret@db.internal/francis".into()),
        _ => None,
    };
    let load = |file: &str| {
        let path = repo_root().join("examples/remote-worker").join(file);
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        RuntimeConfig::from_yaml_str(&text, file, env).unwrap_or_else(|e| panic!("{e}"))
    };
    let example = load("config.yaml");
    assert!(matches!(example.bootstrap, Bootstrap::Psk { .. }));
    assert!(matches!(example.provider, Provider::Sqlite { .. }));
    let replica = load("deploy/runtime.yaml");
    assert!(matches!(replica.bootstrap, Bootstrap::Psk { .. }));
    assert!(matches!(replica.provider, Provider::Postgres { .. }));
    assert_eq!(replica.bind.to_string(), "0.0.0.0:7400");
    let jwt = load("deploy/runtime-jwt.yaml");
    assert!(matches!(jwt.bootstrap, Bootstrap::Jwt(_)));
}

/// The newest modification time of the files under `path`.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = fs::metadata(path).ok()?;
    if meta.is_file() {
        return meta.modified().ok();
    }
    fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|entry| newest(&entry.path()))
        .max()
}

/// The `francis` binary next to this test's executable (`target/<profile>/francis`), built
/// with cargo when it is missing or older than its sources.
fn francis_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let bin = profile_dir.join(format!("francis{}", std::env::consts::EXE_SUFFIX));
    let root = repo_root();
    let sources = [
        "francis-cli/src",
        "francis-cli/Cargo.toml",
        "templates",
        "francis/src",
    ]
    .iter()
    .filter_map(|p| newest(&root.join(p)))
    .max();
    let built = fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if built.is_some() && built >= sources {
        return bin;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "--locked", "-p", "francis-cli", "--bin", "francis"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    // The variables cargo sets for this test would make the build look different from the
    // workspace's own (build scripts watch some of them) and rebuild dependencies.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
            ]
            .contains(&key.as_ref())
            || key == "CARGO_PRIMARY_PACKAGE"
        {
            command.env_remove(key.as_ref());
        }
    }
    let status = command
        .status()
        .expect("run cargo build for the francis binary");
    assert!(status.success(), "building the francis binary failed");
    assert!(
        bin.is_file(),
        "cargo built francis, but not at {}; run the tests without --target-dir",
        bin.display()
    );
    bin
}

/// `francis <args> --help`, as a terminal-less user sees it (100 columns, no colours).
fn help(bin: &Path, args: &[&str]) -> String {
    let output = Command::new(bin)
        .args(args)
        .arg("--help")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("COLUMNS", "100")
        .stdin(Stdio::null())
        .output()
        .expect("run francis --help");
    assert!(
        output.status.success(),
        "francis {} --help failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8 help");
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim_end().to_owned()
}

/// The subcommands a help text lists (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// One section per command, depth first: its name as a heading, its help as text.
fn cli_reference(bin: &Path, path: &mut Vec<String>, out: &mut String) {
    let args: Vec<&str> = path.iter().map(String::as_str).collect();
    let text = help(bin, &args);
    let name = std::iter::once("francis")
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    out.push_str(&format!("## `{name}`\n\n```text\n{text}\n```\n\n"));
    for sub in subcommands(&text) {
        path.push(sub);
        cli_reference(bin, path, out);
        path.pop();
    }
}

#[test]
fn the_cli_reference_is_the_help_of_every_command() {
    let bin = francis_bin();
    let mut out = String::new();
    cli_reference(&bin, &mut Vec::new(), &mut out);
    for verb in [
        "new",
        "dev",
        "runtime",
        "runtime check",
        "ca print",
        "ca pin",
        "cluster status",
        "completions",
    ] {
        assert!(
            out.contains(&format!("## `francis {verb}`")),
            "the reference covers francis {verb}"
        );
    }
    check_region("reference/cli.md", "cli-help", &out);
}

/// The helpers find what they are meant to find.
#[test]
fn subcommands_are_read_from_the_commands_section() {
    let help = "About\n\nCommands:\n  new   Create\n          a wrapped line\n  ca    Print\n  help  Print this\n\nOptions:\n  -h, --help  Print help\n";
    assert_eq!(subcommands(help), vec!["new", "ca"]);
    assert_eq!(cell("a | b <id>"), "a \\| b &lt;id&gt;");
}
