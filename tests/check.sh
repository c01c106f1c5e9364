#!/usr/bin/env bash
# Every check the project runs: formatting, lints, all tests, and benchmark compilation.
# This is the README's test command; CI (.ci/run) calls it too.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings

step "cargo test (workspace)"
cargo test --locked --workspace --all-features

step "benchmarks compile (run them with: cargo bench -p francis)"
cargo bench --locked -p francis --no-run
