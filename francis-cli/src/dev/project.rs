//! Which program `francis dev` runs, and building it: the binary of the current package, a
//! `--bin` of the workspace, or an `--example` (a cargo example target, or a package under the
//! workspace's `examples/` folder). Cargo shows its own progress while it builds.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use serde_json::Value;

use crate::exit::{Code, Failure};
use crate::term;

/// The program to build and run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The cargo package it belongs to.
    pub package: String,
    /// A cargo example target (`--example`) rather than a binary (`--bin`).
    pub is_example: bool,
    /// The target's name.
    pub name: String,
    /// The workspace root (where `.francis/dev` goes by default).
    pub workspace_root: PathBuf,
}

impl Target {
    /// The cargo arguments that select it.
    pub fn cargo_args(&self) -> Vec<String> {
        let kind = if self.is_example {
            "--example"
        } else {
            "--bin"
        };
        vec![
            "-p".into(),
            self.package.clone(),
            kind.into(),
            self.name.clone(),
        ]
    }
}

/// A binary or example target of a workspace member.
#[derive(Debug, Clone)]
struct Candidate {
    package: String,
    manifest: PathBuf,
    kind: &'static str,
    name: String,
}

/// Find the target to run, from the current directory.
pub fn locate(example: Option<&str>, bin: Option<&str>) -> anyhow::Result<Target> {
    let metadata = cargo_json(&["metadata", "--format-version", "1", "--no-deps"])?;
    let workspace_root = PathBuf::from(metadata["workspace_root"].as_str().unwrap_or("."));
    let candidates = candidates(&metadata);
    let current = cargo_stdout(&["locate-project", "--message-format", "plain"])
        .map(|path| PathBuf::from(path.trim()))
        .ok();
    let default_run = |manifest: &Path| {
        metadata["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest))
            .and_then(|p| p["default_run"].as_str().map(str::to_owned))
    };
    let chosen = choose(
        &candidates,
        &workspace_root,
        current.as_deref(),
        example,
        bin,
        default_run,
    )?;
    Ok(Target {
        package: chosen.package.clone(),
        is_example: chosen.kind == "example",
        name: chosen.name.clone(),
        workspace_root,
    })
}

fn candidates(metadata: &Value) -> Vec<Candidate> {
    let mut out = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        for target in package["targets"].as_array().into_iter().flatten() {
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let kind = if kinds.contains(&"bin") {
                "bin"
            } else if kinds.contains(&"example") {
                "example"
            } else {
                continue;
            };
            out.push(Candidate {
                package: package["name"].as_str().unwrap_or_default().to_owned(),
                manifest: manifest.clone(),
                kind,
                name: target["name"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    out
}

/// The rules of target selection, apart from running cargo.
fn choose<'a>(
    candidates: &'a [Candidate],
    workspace_root: &Path,
    current_manifest: Option<&Path>,
    example: Option<&str>,
    bin: Option<&str>,
    default_run: impl Fn(&Path) -> Option<String>,
) -> anyhow::Result<&'a Candidate> {
    let bins: Vec<&Candidate> = candidates.iter().filter(|c| c.kind == "bin").collect();
    let bin_names = || names(bins.iter().copied());
    // A package under <workspace>/examples/ counts as an example too, by package name.
    let examples_dir = workspace_root.join("examples");
    let example_packages: Vec<&Candidate> = bins
        .iter()
        .copied()
        .filter(|c| c.manifest.starts_with(&examples_dir))
        .collect();
    let example_names = || {
        let mut all: Vec<String> = candidates
            .iter()
            .filter(|c| c.kind == "example")
            .map(|c| c.name.clone())
            .collect();
        all.extend(example_packages.iter().map(|c| c.package.clone()));
        all.sort();
        all.dedup();
        if all.is_empty() {
            "(none)".to_owned()
        } else {
            all.join(", ")
        }
    };
    if let Some(name) = bin {
        return bins
            .iter()
            .copied()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                Failure::new(
                    Code::Build,
                    format!("this workspace has no binary named {name:?}"),
                )
                .fix(format!("pick one of: {}", bin_names()))
                .into()
            });
    }
    if let Some(name) = example {
        if let Some(found) = candidates
            .iter()
            .find(|c| c.kind == "example" && c.name == name)
        {
            return Ok(found);
        }
        let package: Vec<&Candidate> = example_packages
            .iter()
            .copied()
            .filter(|c| c.package == name)
            .collect();
        return match package.as_slice() {
            [one] => Ok(one),
            [] => Err(Failure::new(
                Code::Build,
                format!("this workspace has no example named {name:?}"),
            )
            .fix(format!("pick one of: {}", example_names()))
            .into()),
            several => Err(Failure::new(
                Code::Build,
                format!(
                    "example package {name:?} has several binaries: {}",
                    names(several.iter().copied())
                ),
            )
            .fix("pick one with --bin NAME")
            .into()),
        };
    }
    // The current package's binary; else the workspace's only one.
    let here: Vec<&Candidate> = bins
        .iter()
        .copied()
        .filter(|c| Some(c.manifest.as_path()) == current_manifest)
        .collect();
    let pool = if here.is_empty() { bins.clone() } else { here };
    if let [one] = pool.as_slice() {
        return Ok(one);
    }
    if let Some(manifest) = current_manifest
        && let Some(run) = default_run(manifest)
        && let Some(found) = pool.iter().find(|c| c.name == run)
    {
        return Ok(found);
    }
    if pool.is_empty() {
        return Err(Failure::new(
            Code::Build,
            "this project has no binary to run (no src/main.rs or [[bin]])",
        )
        .fix("add a src/main.rs that starts a host, or create a project with: francis new myapp")
        .into());
    }
    Err(Failure::new(
        Code::Build,
        format!(
            "there are several binaries to choose from: {}",
            names(pool.iter().copied())
        ),
    )
    .fix(format!(
        "pick one with --bin NAME, or an example with --example NAME ({})",
        example_names()
    ))
    .into())
}

fn names<'a>(candidates: impl Iterator<Item = &'a Candidate>) -> String {
    let mut names: Vec<&str> = candidates.map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
}

/// Build `target` with cargo, its progress on standard error, and return the executable.
pub fn build(target: &Target, release: bool) -> anyhow::Result<PathBuf> {
    let mut args: Vec<String> = vec![
        "build".into(),
        "--message-format=json-render-diagnostics".into(),
    ];
    args.extend(target.cargo_args());
    if release {
        args.push("--release".into());
    }
    let rich = term::stderr_is_rich();
    eprintln!(
        "{} {} {} (cargo {})",
        term::paint(rich, term::BOLD, "Building"),
        if target.is_example {
            "example"
        } else {
            "binary"
        },
        target.name,
        args.join(" ")
    );
    let started = Instant::now();
    let mut child = Command::new(cargo())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(cargo_missing)?;
    let mut executable = None;
    let stdout = child.stdout.take().context("cargo's output")?;
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(&line?) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == target.name.as_str()
            && let Some(path) = message["executable"].as_str()
        {
            executable = Some(PathBuf::from(path));
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        return Err(
            Failure::new(Code::Build, format!("cargo build failed ({status})"))
                .fix("fix the errors cargo printed above, then run francis dev again")
                .into(),
        );
    }
    let executable = executable.ok_or_else(|| {
        Failure::new(
            Code::Build,
            format!("cargo built {} but named no executable for it", target.name),
        )
        .fix("check that it is a binary or example target")
    })?;
    eprintln!(
        "{} {} in {:.1} s",
        term::paint(rich, term::GREEN, "Built"),
        executable.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(executable)
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn cargo_missing(e: std::io::Error) -> anyhow::Error {
    Failure::new(Code::Failed, format!("cannot run cargo: {e}"))
        .fix("install Rust (https://rustup.rs), or set CARGO to the cargo binary")
        .into()
}

fn cargo_stdout(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(cargo())
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .map_err(cargo_missing)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let problem = stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or(stderr.trim())
            .to_owned();
        return Err(
            Failure::new(Code::Build, format!("cargo {} failed: {problem}", args[0]))
                .fix("run francis dev inside a cargo project (francis new myapp creates one)")
                .into(),
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn cargo_json(args: &[&str]) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&cargo_stdout(args)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(package: &str, manifest: &str, kind: &'static str, name: &str) -> Candidate {
        Candidate {
            package: package.into(),
            manifest: manifest.into(),
            kind,
            name: name.into(),
        }
    }

    fn workspace() -> Vec<Candidate> {
        vec![
            candidate("francis-cli", "/w/francis-cli/Cargo.toml", "bin", "francis"),
            candidate(
                "quickstart",
                "/w/examples/quickstart/Cargo.toml",
                "bin",
                "quickstart",
            ),
            candidate("worker", "/w/examples/worker/Cargo.toml", "bin", "worker"),
            candidate("francis", "/w/francis/Cargo.toml", "example", "hello"),
        ]
    }

    fn pick(
        current: Option<&str>,
        example: Option<&str>,
        bin: Option<&str>,
    ) -> Result<String, String> {
        let all = workspace();
        choose(
            &all,
            Path::new("/w"),
            current.map(Path::new),
            example,
            bin,
            |_| None,
        )
        .map(|c| format!("{} {} {}", c.package, c.kind, c.name))
        .map_err(|e| {
            let f = e.downcast::<Failure>().unwrap();
            format!("{} | {}", f.problem, f.fix.unwrap_or_default())
        })
    }

    #[test]
    fn examples_are_example_targets_or_packages_under_examples() {
        assert_eq!(
            pick(None, Some("worker"), None).unwrap(),
            "worker bin worker"
        );
        assert_eq!(
            pick(None, Some("hello"), None).unwrap(),
            "francis example hello"
        );
        let e = pick(None, Some("nope"), None).unwrap_err();
        assert!(e.contains("hello, quickstart, worker"), "{e}");
        // A binary outside examples/ is not an example.
        assert!(pick(None, Some("francis"), None).is_err());
    }

    #[test]
    fn bins_and_the_current_package() {
        assert_eq!(
            pick(None, None, Some("quickstart")).unwrap(),
            "quickstart bin quickstart"
        );
        assert_eq!(
            pick(Some("/w/examples/worker/Cargo.toml"), None, None).unwrap(),
            "worker bin worker"
        );
        let e = pick(Some("/w/Cargo.toml"), None, None).unwrap_err();
        assert!(
            e.contains("several binaries") && e.contains("--bin NAME"),
            "{e}"
        );
        let e = pick(None, None, Some("nope")).unwrap_err();
        assert!(e.contains("francis, quickstart, worker"), "{e}");
    }
}
