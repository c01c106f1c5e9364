//! The `francis` command-line tool: `francis new` scaffolds a project from an embedded template,
//! `francis dev` runs a development cluster of it (local, or a runtime and workers with
//! `--remote`), `francis runtime` and `francis ca` run and pin the remote topology's control
//! plane, `francis cluster status` shows a running cluster's state, `francis jobs` dispatches
//! and manages durable jobs through a host's control API, `francis completions` prints shell
//! completions. Each subcommand lives in its own module; errors carry an exit code and a fix
//! ([`exit::Failure`]).

mod actions;
mod ca;
mod cluster;
mod dev;
mod exit;
mod jobs;
mod new;
mod runtime;
mod server;
mod templates;
mod term;

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

use crate::exit::{Code, Failure};

/// Francis: distributed virtual actors for Rust.
#[derive(Debug, Parser)]
#[command(
    name = "francis",
    version,
    about,
    long_about = "Francis: distributed virtual actors for Rust.\n\nCreate a project with `francis new`, then run it as a local cluster with `francis dev`. For the remote topology, `francis new --template remote-worker` creates a worker and `francis dev --remote` runs it with a dev runtime; run the control plane yourself with `francis runtime` and pin its CA with `francis ca`.",
    after_help = AFTER_HELP,
    after_long_help = AFTER_HELP,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const AFTER_HELP: &str = concat!(
    "Examples:
  francis new myapp                 # create a project (asks for what is missing)
  francis new myapp --actor order --yes
  cd myapp && francis dev           # two hosts sharing one SQLite file; Ctrl-C stops them
  francis new myworker --template remote-worker
  cd myworker && francis dev --remote   # a dev runtime and two workers that join it
  francis runtime --config config.yaml     # the control plane of the remote topology
  francis ca print --config config.yaml > ca.pem   # the CA workers pin
  francis cluster status --url http://127.0.0.1:8444   # the cluster as a runtime sees it
  francis jobs dispatch order o-1 ship --data '{\"to\": \"Oslo\"}' --after 10s
  francis completions bash > ~/.local/share/bash-completion/completions/francis

",
    exit::exit_codes_help!()
);

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a project from a template (offline: the templates are built in).
    New(new::NewArgs),
    /// Run the current project (or an example) as a local cluster of several hosts, or (with
    /// --remote) as workers of a dev runtime.
    Dev(dev::DevArgs),
    /// Run the remote topology's control plane from its YAML configuration (or check it).
    Runtime(runtime::RuntimeArgs),
    /// Print the cluster CA from a configuration, or pin the CA of a running runtime.
    Ca(ca::CaArgs),
    /// Show the state of a running cluster, as one of its hosts or runtimes sees it.
    Cluster(cluster::ClusterArgs),
    /// Dispatch durable jobs to actors, read and cancel them, and retry or purge the dead
    /// letters of jobs that failed (through a host's control API).
    Jobs(jobs::JobsArgs),
    /// Print shell completions for francis.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  francis completions bash > ~/.local/share/bash-completion/completions/francis
  francis completions zsh > ~/.zfunc/_francis      # with fpath+=~/.zfunc in ~/.zshrc
  francis completions fish > ~/.config/fish/completions/francis.fish";

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::New(args) => new::run(args),
        Command::Dev(args) => dev::run(args),
        Command::Runtime(args) => runtime::run(args),
        Command::Ca(args) => ca::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Jobs(args) => jobs::run(args),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "francis", &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::from(Code::Ok as u8),
        Err(error) => report(&error),
    }
}

/// Print the error (what is wrong, then what to do) and pick the exit code.
fn report(error: &anyhow::Error) -> std::process::ExitCode {
    let rich = term::stderr_is_rich();
    let mut stderr = std::io::stderr().lock();
    let (code, fix) = match error.downcast_ref::<Failure>() {
        Some(failure) => (failure.code, failure.fix.clone()),
        None => (Code::Failed, None),
    };
    let _ = writeln!(
        stderr,
        "{} {error:#}",
        term::paint(rich, term::RED, "error:")
    );
    if let Some(fix) = fix {
        let _ = writeln!(stderr, "  {} {fix}", term::paint(rich, term::BOLD, "fix:"));
    }
    std::process::ExitCode::from(code as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_help_lists_every_exit_code() {
        for code in [
            Code::Ok,
            Code::Failed,
            Code::Usage,
            Code::Exists,
            Code::Build,
            Code::HostFailed,
            Code::Config,
            Code::Mismatch,
            Code::Unreachable,
            Code::Interrupted,
        ] {
            let line = format!("\n  {:<5}", code as u8);
            assert!(
                AFTER_HELP.contains(&line),
                "exit code {code:?} is not in the help"
            );
        }
    }
}

#[cfg(test)]
mod dev_args_tests {
    use super::*;

    fn dev(args: &[&str]) -> Result<dev::DevArgs, clap::Error> {
        let mut argv = vec!["francis", "dev"];
        argv.extend(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Dev(args) => Ok(args),
            _ => unreachable!("francis dev parses as dev"),
        }
    }

    #[test]
    fn the_http_token_flag_takes_a_usable_token_only() {
        let token = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            dev(&["--http-token", token]).unwrap().http_token.as_deref(),
            Some(token)
        );
        for bad in ["short", "0123456789abcdef 0123", "================"] {
            let error = dev(&["--http-token", bad]).unwrap_err().to_string();
            assert!(
                error.contains("--http-token") && error.contains("token"),
                "{error}"
            );
        }
    }
}
