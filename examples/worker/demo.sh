#!/usr/bin/env bash
# The local-cluster walkthrough of the docs, scripted: two workers sharing one SQLite file form
# one cluster. It shows actors spread over both workers, every ID answered by one activation
# whichever worker is called, idle actors deactivated after 10 s, and an alarm firing. It checks
# each claim and exits non-zero if one does not hold.
#
#   bash examples/worker/demo.sh              # builds and runs the worker with cargo
#   WORKER_BIN=target/debug/worker bash examples/worker/demo.sh
set -euo pipefail

HTTP1=${HTTP1:-8081} HTTP2=${HTTP2:-8082} PEER1=${PEER1:-7571} PEER2=${PEER2:-7572}
root=$(cd "$(dirname "$0")/../.." && pwd)
if [[ -z "${WORKER_BIN:-}" ]]; then
  cargo build -q -p worker --manifest-path "$root/Cargo.toml"
  WORKER_BIN="$root/target/debug/worker"
fi
WORKER_BIN=$(realpath "$WORKER_BIN")
dir=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }

echo "# Two workers, one shared store ($dir/cluster.db)"
cd "$dir"
# ANCHOR: start
mkdir -p worker1 worker2
(cd worker1 && RUST_LOG=warn "$WORKER_BIN" --worker-address 127.0.0.1:$HTTP1 --actor-host-address 127.0.0.1:$PEER1 --db ../cluster.db) &
(cd worker2 && RUST_LOG=warn "$WORKER_BIN" --worker-address 127.0.0.1:$HTTP2 --actor-host-address 127.0.0.1:$PEER2 --db ../cluster.db) &
# ANCHOR_END: start
for port in $HTTP1 $HTTP2; do
  for _ in $(seq 1 150); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.2
  done
done

# ANCHOR: call
call() { curl -s -X POST "http://127.0.0.1:$1$2" -H 'Content-Type: application/json' ${3:+--data "$3"}; }   # call PORT PATH [BODY]
# ANCHOR_END: call
field() { python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', ''))"; }

echo "# Invoke eight actors through worker 1, then again through worker 2"
declare -A owner
for i in $(seq 1 8); do
  # ANCHOR: invoke
  first=$(call $HTTP1 /invoke/myactor/id$i/increment '{"In": 42}')
  second=$(call $HTTP2 /invoke/myactor/id$i/increment '{"In": 42}')
  # ANCHOR_END: invoke
  host1=$(echo "$first" | field Host); host2=$(echo "$second" | field Host)
  out=$(echo "$second" | field Out)
  echo "id$i -> $host1 (via worker 2: $host2, Out=$out)"
  [[ "$host1" == "$host2" && "$out" == 84 ]] || fail "id$i was answered by two activations"
  owner[id$i]=$host1
done
hosts=$(printf '%s\n' "${owner[@]}" | sort -u | wc -l)
[[ $hosts == 2 ]] || fail "all actors landed on one worker"
echo "# Actors spread over $hosts workers; every ID answered by one activation"

echo "# An alarm, due now, repeating every 60s until 2028-10-08"
# ANCHOR: alarm
call $HTTP1 /alarm/myactor/actor1/alarm1 '{"dueTime":"'"$(date -u +"%Y-%m-%dT%H:%M:%SZ")"'","interval":"60s","ttl":"2028-10-08T10:00:02Z","data":{"Hello":"World"}}'
# ANCHOR_END: alarm
for _ in $(seq 1 50); do
  alarms=$(call $HTTP2 /peek/myactor/actor1/get | field Alarms)
  [[ "$alarms" -ge 1 ]] 2>/dev/null && break
  sleep 0.2
done
[[ "$alarms" -ge 1 ]] || fail "the alarm did not fire"
echo "actor1 received $alarms alarm(s)"

echo "# Wait 12 s: idle actors deactivate after 10 s"
sleep 12
port_of() { [[ "$1" == "127.0.0.1:$PEER1" ]] && echo $HTTP1 || echo $HTTP2; }
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' "http://127.0.0.1:$(port_of "${owner[id1]}")/halt/myactor/id1")
[[ "$status" == 404 ]] || fail "id1 was still active after 12 s idle (halt answered $status)"
again=$(call $HTTP2 /invoke/myactor/id1/increment '{"In": 1}')
echo "id1 after idling: $again"
[[ "$(echo "$again" | field Out)" == 85 && "$(echo "$again" | field Activations)" == 2 ]] || fail "id1 did not come back with its state"
echo "# id1 was deactivated, and came back with its count on its next call"
