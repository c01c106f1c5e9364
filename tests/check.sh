#!/usr/bin/env bash
# Every check the project runs: formatting, lints, all tests, and benchmark compilation.
# This is the README's test command; CI (.ci/run) calls it too. The tests run against a
# throwaway PostgreSQL server (tests/postgres.sh, stopped on exit), and fail rather than skip if
# the PostgreSQL cases cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings

step "PostgreSQL test server (tests/postgres.sh)"
# A state dir of this run's own, so concurrent runs in one checkout do not share (or stop) a server.
FRANCIS_PG_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/francis-check-pg.XXXXXX")
export FRANCIS_PG_STATE_DIR
trap 'bash tests/postgres.sh stop || true' EXIT
# shellcheck source=tests/postgres.sh
source tests/postgres.sh start
export FRANCIS_REQUIRE_POSTGRES=1

step "cargo test (workspace)"
cargo test --locked --workspace --all-features

step "benchmarks compile (run them with: cargo bench -p francis)"
cargo bench --locked -p francis --no-run
