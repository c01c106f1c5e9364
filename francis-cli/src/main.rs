//! The `francis` command-line tool. Its verbs (`new`, `dev`, `runtime`, `ca`) arrive with the
//! topologies they drive; today it reports its version and what it will offer.

use clap::Parser;

/// Francis: distributed virtual actors for Rust.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!(
        "francis {}: run `francis --help` for usage.",
        env!("CARGO_PKG_VERSION")
    );
}
