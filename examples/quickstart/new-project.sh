#!/usr/bin/env bash
# The guide's "Your own project" session (book/src/quickstart.md), run for real: `francis new`
# creates a project, `francis dev` runs it as a cluster of two hosts, curl calls one actor
# through both hosts, Ctrl-C stops the cluster, and a second `francis dev` finds the total where
# it was. The answers go to stdout, which the quickstart's test compares with new-project.out;
# francis's own output and progress go to stderr.
#
# It builds offline: the project gets the workspace's Cargo.lock (versions cargo has already
# downloaded) and builds in target/cli-tests (CARGO_TARGET_DIR), so its dependencies compile
# once, not at every run. The first run compiles them all, which takes a while.
#
#   bash examples/quickstart/new-project.sh              # builds francis with cargo
#   FRANCIS_BIN=target/debug/francis BASE=9100 bash examples/quickstart/new-project.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
if [[ -z "${FRANCIS_BIN:-}" ]]; then
  cargo build -q -p francis-cli --manifest-path "$root/Cargo.toml"
  FRANCIS_BIN="$root/target/debug/francis"
fi
FRANCIS_BIN=$(realpath "$FRANCIS_BIN")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/cli-tests} CARGO_NET_OFFLINE=true
dir=$(mktemp -d)
dev=
cleanup() {
  [[ -n "$dev" ]] && kill -INT "$dev" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }
# `francis` on the PATH is the binary under test. It is not a shell function, so that `$!` of
# `francis dev &` is francis itself, which the Ctrl-C (SIGINT) of stop() must reach.
mkdir "$dir/bin"
ln -s "$FRANCIS_BIN" "$dir/bin/francis"
export PATH="$dir/bin:$PATH"
# Until the calls, everything goes to stderr; the real stdout is kept as fd 3.
exec 3>&1 1>&2
# Each answer on a line of its own, errors shown: what `curl -sS -w '\n'` prints.
export CURL_HOME="$dir"
printf 'silent\nshow-error\nwrite-out = "\\n"\n' > "$dir/.curlrc"
cd "$dir"

echo "# Create a project" >&2
# ANCHOR: new
francis new myapp --actor counter --yes
cd myapp
# ANCHOR_END: new
cp "$root/Cargo.lock" .
[[ -f src/counter.rs && -f tests/counter.rs ]] || fail "francis new did not write the counter actor and its tests"

# Start the cluster in the background, wait until both hosts answer (or francis dev gives up).
start() {
  # ANCHOR: dev
  francis dev --base-port "${BASE:-8081}" &
  # ANCHOR_END: dev
  dev=$!
  for _ in $(seq 1 "${WAIT_SECONDS:-3600}"); do
    kill -0 "$dev" 2>/dev/null || fail "francis dev exited before its hosts were ready"
    curl -o /dev/null "localhost:${BASE:-8081}/status" 2>/dev/null &&
      curl -o /dev/null "localhost:$((${BASE:-8081} + 1))/status" 2>/dev/null && return
    sleep 1
  done
  fail "the hosts were not ready in time"
}
stop() {
  kill -INT "$dev"
  local status=0
  wait "$dev" || status=$?
  dev=
  [[ $status == 0 ]] || fail "francis dev exited with $status after Ctrl-C"
}

echo "# Run it as a cluster of two hosts" >&2
start >&2

echo "# Call counter/alice through both hosts" >&2
exec 1>&3
# ANCHOR: calls
H1=localhost:${BASE:-8081} H2=localhost:$((${BASE:-8081} + 1))   # the two hosts
JSON='Content-Type: application/json'   # what every POST must say it sends
curl -X POST $H1/invoke/counter/alice/add -H "$JSON" --data 5
curl -X POST $H2/invoke/counter/alice/add -H "$JSON" --data 2
curl -X POST $H1/peek/counter/alice/get -H "$JSON"
# ANCHOR_END: calls

echo "# Ctrl-C, then start again: the total is still there" >&2
stop >&2
start >&2
# ANCHOR: restarted
curl -X POST $H2/peek/counter/alice/get -H "$JSON"
# ANCHOR_END: restarted
stop >&2
echo "# Done" >&2
