#!/usr/bin/env bash
# Every check the project runs: formatting, lints, all tests, benchmark compilation, and the
# guide's build.
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

step "cargo test (workspace: every test, plus a short smoke run of every benchmark)"
# --all-targets builds the benches in the test profile and runs each once, briefly: they must
# compile and work. Their real runs are release builds: cargo bench -p francis (BENCHMARKS.md).
cargo test --locked --workspace --all-features --all-targets

step "doc tests"
cargo test --locked --workspace --all-features --doc

step "the guide builds with mdBook (links and includes are checked by francis-tests' book test)"
MDBOOK_VERSION=0.5.4
mdbook=$(command -v mdbook || true)
if [[ -z "$mdbook" ]] || ! "$mdbook" --version | grep -qx "mdbook v$MDBOOK_VERSION"; then
  # Not packaged by Debian: build it from crates.io (a few minutes, once per machine).
  cargo install --locked mdbook --version "$MDBOOK_VERSION"
  mdbook="${CARGO_HOME:-$HOME/.cargo}/bin/mdbook"
fi
# mdBook reports a missing include as an error but still exits 0: fail on any warning or error.
book_log=$("$mdbook" build book 2>&1) || { echo "$book_log"; exit 1; }
echo "$book_log"
if grep -qE '(WARN|ERROR)' <<<"$book_log"; then
  echo "mdbook build reported warnings or errors" >&2
  exit 1
fi
