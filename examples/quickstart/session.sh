#!/usr/bin/env bash
# The quickstart's curl session from the guide (book/src/quickstart.md), run for real: start the
# quickstart on a fresh SQLite file, make the calls the guide shows, stop it, start it again and
# read the count back. The answers go to stdout, which the quickstart's test compares with
# session.out; progress goes to stderr.
#
#   bash examples/quickstart/session.sh                  # builds the quickstart with cargo
#   QUICKSTART_BIN=target/debug/quickstart bash examples/quickstart/session.sh
set -euo pipefail

HTTP=${HTTP:-8080} PEER=${PEER:-7571}
root=$(cd "$(dirname "$0")/../.." && pwd)
if [[ -z "${QUICKSTART_BIN:-}" ]]; then
  cargo build -q -p quickstart --manifest-path "$root/Cargo.toml"
  QUICKSTART_BIN="$root/target/debug/quickstart"
fi
QUICKSTART_BIN=$(realpath "$QUICKSTART_BIN")
dir=$(mktemp -d)
pid=
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }

# Each answer on a line of its own, errors shown: what `curl -sS -w '\n'` prints.
export CURL_HOME="$dir"
printf 'silent\nshow-error\nwrite-out = "\\n"\n' > "$dir/.curlrc"

start() {
  (cd "$dir" && RUST_LOG=warn exec "$QUICKSTART_BIN" --worker-address "127.0.0.1:$HTTP" --actor-host-address "127.0.0.1:$PEER" >&2) &
  pid=$!
  for _ in $(seq 1 150); do
    curl -s -o /dev/null -w '' -X POST "127.0.0.1:$HTTP/halt-all" -H 'Content-Type: application/json' 2>/dev/null && return
    kill -0 "$pid" 2>/dev/null || fail "the quickstart exited before serving"
    sleep 0.2
  done
  fail "the quickstart did not start serving"
}
stop() { kill -TERM "$pid"; wait "$pid" || fail "the quickstart exited with an error"; pid=; }

echo "# Start the quickstart (data in $dir/data.db)" >&2
start

# ANCHOR: calls
QS=localhost:${HTTP:-8080}              # the quickstart's control server
JSON='Content-Type: application/json'   # what every POST must say it sends
curl -X POST $QS/invoke/counter/alice/increment -H "$JSON" --data '{"In": 42}'
curl -X POST $QS/invoke/counter/alice/increment -H "$JSON" --data '{"In": 1}'
curl -X POST $QS/peek/counter/alice/get -H "$JSON"
# ANCHOR_END: calls

# ANCHOR: errors
curl -X POST $QS/invoke/counter/alice/increment -H "$JSON" --data '{"In": 9223372036854775807}'
curl -X POST $QS/peek/counter/alice/increment -H "$JSON" --data '{"In": 1}'
curl -X POST $QS/invoke/counter/alice/decrement -H "$JSON"
# ANCHOR_END: errors

# ANCHOR: alarm
curl -X POST $QS/alarm/counter/carol/tick -H "$JSON" --data '{"data": {"Hello": "World"}}' -w '%{http_code}\n'
# ANCHOR_END: alarm
for _ in $(seq 1 100); do
  [[ "$(curl -X POST "$QS/peek/counter/carol/get" -H "$JSON")" == '{"Out":1}' ]] && break
  sleep 0.2
done
# ANCHOR: alarm_fired
curl -X POST $QS/peek/counter/carol/get -H "$JSON"
# ANCHOR_END: alarm_fired

# ANCHOR: halt
curl -X POST $QS/halt/counter/alice -H "$JSON" -w '%{http_code}\n'
curl -X POST $QS/halt-all -H "$JSON" -w '%{http_code}\n'
# ANCHOR_END: halt

echo "# Stop the quickstart with SIGTERM (as Ctrl-C would) and start it again" >&2
stop
start
# ANCHOR: restarted
curl -X POST $QS/peek/counter/alice/get -H "$JSON"
curl -X POST $QS/peek/counter/carol/get -H "$JSON"
# ANCHOR_END: restarted
stop
echo "# Done" >&2
