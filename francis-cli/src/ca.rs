//! `francis ca`: the cluster CA that workers pin. `print` derives it from a runtime
//! configuration (no network); `pin` reads it from a running runtime, shows its fingerprint,
//! checks it against an expected one, and writes the PEM a worker pins.

use std::path::PathBuf;
use std::time::Duration;

use francis::cluster::Role;
use francis::net::pki::{ClusterCa, fingerprint};

use crate::exit::{Code, Failure, usage};

/// Arguments of `francis ca`.
#[derive(Debug, clap::Args)]
pub struct CaArgs {
    #[command(subcommand)]
    pub action: CaAction,
}

/// The `francis ca` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CaAction {
    /// Print the cluster CA certificates (PEM, primary first) derived from the runtime PSKs.
    #[command(after_help = "Examples:
  francis ca print --config config.yaml > ca.pem     # then: remote-worker --ca-file ca.pem
  francis ca print --config config.yaml --fingerprint")]
    Print {
        /// The runtime's YAML configuration [default: as for `francis runtime`].
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the primary CA's SHA-256 fingerprint instead of the PEM.
        #[arg(long)]
        fingerprint: bool,
    },
    /// Read the CA from a running runtime, check its fingerprint, and write it for workers.
    #[command(after_help = "Examples:
  francis ca pin --runtime 10.0.0.1:7400 --expect AB:CD:...   # compare with `francis ca print --fingerprint`
  francis ca pin --runtime 127.0.0.1:7400 --output /etc/francis/ca.pem

A mismatch exits with code 7 and writes nothing.")]
    Pin {
        /// The runtime's address (host:port).
        #[arg(long, value_name = "HOST:PORT")]
        runtime: String,
        /// The SHA-256 fingerprint the CA must have (hex, colons optional, any case).
        #[arg(long, value_name = "FINGERPRINT")]
        expect: Option<String>,
        /// Where to write the CA (PEM).
        #[arg(long, short, default_value = "ca.pem")]
        output: PathBuf,
        /// Replace the output file if it exists and holds something else.
        #[arg(long)]
        force: bool,
        /// How long to wait for the runtime.
        #[arg(long, default_value = "10s", value_parser = francis::time::parse_duration)]
        timeout: Duration,
    },
    /// Issue a client certificate for the runtime's operations server over TLS (http.tls):
    /// an operator identity of the cluster CA, with a role.
    #[command(after_help = "Examples:
  francis ca issue-operator --config config.yaml --role viewer --name alice
  curl --cacert ca.pem --cert alice.pem --key alice-key.pem https://127.0.0.1:8444/api/cluster/state

Writes <name>.pem (the certificate) and <name>-key.pem (its private key, mode 0600).")]
    IssueOperator {
        /// The runtime's YAML configuration [default: as for `francis runtime`].
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        /// What the holder may do: viewer, operator or admin.
        #[arg(long, value_parser = role_parser())]
        role: Role,
        /// Who holds it (letters, digits, '.', '_' and '-'): the caller's name in the state
        /// view and logs.
        #[arg(long)]
        name: String,
        /// How long it is valid.
        #[arg(long, default_value = "720h", value_parser = francis::time::parse_duration)]
        ttl: Duration,
        /// The directory to write the files in.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
}

/// `francis ca …`.
pub fn run(args: CaArgs) -> anyhow::Result<()> {
    match args.action {
        CaAction::Print {
            config,
            fingerprint: only_fingerprint,
        } => {
            let (_, config) = crate::runtime::load(config.as_deref())?;
            let ca = ClusterCa::from_psks(&config.runtime_psks)
                .map_err(|e| Failure::new(Code::Config, e.to_string()))?;
            if only_fingerprint {
                println!("{}", ca.fingerprint());
            } else {
                print!("{}", ca.bundle_pem());
            }
            Ok(())
        }
        CaAction::Pin {
            runtime,
            expect,
            output,
            force,
            timeout,
        } => pin(&runtime, expect.as_deref(), &output, force, timeout),
        CaAction::IssueOperator {
            config,
            role,
            name,
            ttl,
            out_dir,
        } => {
            let (_, config) = crate::runtime::load(config.as_deref())?;
            let ca = ClusterCa::from_psks(&config.runtime_psks)
                .map_err(|e| Failure::new(Code::Config, e.to_string()))?;
            let identity = ca
                .issue_operator_identity(role, &name, ttl)
                .map_err(|e| usage(e.to_string()))?;
            let cert = out_dir.join(format!("{name}.pem"));
            let key = out_dir.join(format!("{name}-key.pem"));
            for path in [&cert, &key] {
                if path.exists() {
                    return Err(Failure::new(
                        Code::Failed,
                        format!("{} exists already; nothing was written", path.display()),
                    )
                    .fix("remove it, or choose another --name or --out-dir")
                    .into());
                }
            }
            write_private(&key, identity.private_key_pem().as_bytes())?;
            std::fs::write(&cert, francis::net::pki::pem_of(identity.leaf_der()))?;
            eprintln!(
                "wrote {} and {} ({}, role {role}, valid for {})",
                cert.display(),
                key.display(),
                identity.spiffe_id(),
                crate::term::duration_text(ttl)
            );
            Ok(())
        }
    }
}

/// The roles, listed in `--help`, parsed into [`Role`].
fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Role::ALL.map(Role::as_str))
        .try_map(|name| name.parse::<Role>())
}

/// Write a secret file readable by its owner only.
fn write_private(path: &std::path::Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    Ok(())
}

/// Upper-case hex without separators, for comparing fingerprints however they were written.
fn normalize(fingerprint: &str) -> String {
    fingerprint
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn pin(
    runtime: &str,
    expect: Option<&str>,
    output: &std::path::Path,
    force: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    if let Some(expected) = expect
        && normalize(expected).len() != 64
    {
        return Err(usage(format!(
            "--expect {expected:?} is not a SHA-256 fingerprint (64 hex digits, colons optional)"
        ))
        .fix("copy it from `francis ca print --config config.yaml --fingerprint`")
        .into());
    }
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ca = tokio
        .block_on(francis::runtime::probe_ca(runtime, timeout))
        .map_err(|e| {
            Failure::new(Code::Unreachable, e.to_string())
                .fix("check the address and that `francis runtime` is running there")
        })?;
    let got = fingerprint(&ca);
    eprintln!("runtime {runtime} presents the cluster CA with SHA-256 fingerprint\n  {got}");
    if let Some(expected) = expect {
        if normalize(expected) != normalize(&got) {
            return Err(Failure::new(
                Code::Mismatch,
                format!("the CA's fingerprint is not the expected {expected}; nothing was written"),
            )
            .fix("do not pin it: this may not be your cluster's runtime (compare with `francis ca print --fingerprint` on a trusted machine)")
            .into());
        }
        eprintln!("it matches the expected fingerprint");
    } else {
        eprintln!(
            "no --expect given: compare it with `francis ca print --config config.yaml --fingerprint` before trusting it"
        );
    }
    let pem = francis::net::pki::pem_of(&ca);
    if output.exists() && !force {
        let existing = std::fs::read_to_string(output).unwrap_or_default();
        if existing != pem {
            return Err(Failure::new(
                Code::Exists,
                format!("{} exists and holds something else", output.display()),
            )
            .fix("choose another --output, or pass --force to replace it")
            .into());
        }
    }
    std::fs::write(output, &pem).map_err(|e| {
        Failure::new(
            Code::Failed,
            format!("cannot write {}: {e}", output.display()),
        )
    })?;
    eprintln!(
        "wrote {} (pin it with --ca-file / Host::remote().pinned_ca)",
        output.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_compare_however_they_are_written() {
        let a = "AB:cd:01";
        assert_eq!(normalize(a), "ABCD01");
        assert_eq!(normalize("abcd01"), normalize(a));
    }
}
