#!/usr/bin/env bash
# The remote-cluster walkthrough of the docs, scripted: a runtime owning a SQLite file
# (data.db) and two stateless workers that pin the CA `francis ca print` wrote. It shows
# `francis ca pin` fetching the same CA from the running runtime by its fingerprint (and
# refusing a wrong one), calls for one ID always landing on one activation whichever worker is
# called, and the counter continuing after the runtime is restarted. It checks each claim and
# exits non-zero if one does not hold.
#
#   bash examples/remote-worker/demo.sh        # builds francis and the worker with cargo
#   FRANCIS_BIN=target/debug/francis WORKER_BIN=target/debug/remote-worker bash examples/remote-worker/demo.sh
set -euo pipefail

HTTP1=${HTTP1:-8081} HTTP2=${HTTP2:-8082} PEER1=${PEER1:-7571} PEER2=${PEER2:-7572} RUNTIME=${RUNTIME:-7400}
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$(cd "$(dirname "$0")" && pwd)
if [[ -z "${FRANCIS_BIN:-}" || -z "${WORKER_BIN:-}" ]]; then
  cargo build -q -p francis-cli -p remote-worker --manifest-path "$root/Cargo.toml"
  FRANCIS_BIN="$root/target/debug/francis" WORKER_BIN="$root/target/debug/remote-worker"
fi
FRANCIS_BIN=$(realpath "$FRANCIS_BIN") WORKER_BIN=$(realpath "$WORKER_BIN")
dir=$(mktemp -d)
runtime_pid=
cleanup() {
  # The workers first, while the runtime is still up to take their unregistration; then
  # whatever is left. SIGTERM, not SIGINT: a script's background jobs ignore SIGINT, so a worker
  # still waiting for the runtime at startup would never stop. Once running, a worker treats
  # SIGTERM like Ctrl-C.
  local workers
  workers=$(jobs -p | grep -vx "${runtime_pid:-none}" || true)
  if [[ -n "$workers" ]]; then
    kill $workers 2>/dev/null || true
    wait $workers 2>/dev/null || true
  fi
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }

# The example's config.yaml, listening where this run wants it.
sed "s/127.0.0.1:7400/127.0.0.1:$RUNTIME/" "$here/config.yaml" > "$dir/config.yaml"
cd "$dir"

echo "# Print the cluster CA so the workers can pin it"
# ANCHOR: ca
"$FRANCIS_BIN" ca print --config config.yaml > ca.pem
# ANCHOR_END: ca
head -n 1 ca.pem

echo "# Terminal 1: the runtime (owns data.db)"
# ANCHOR: runtime
RUST_LOG=warn "$FRANCIS_BIN" runtime --config config.yaml &
# ANCHOR_END: runtime
runtime_pid=$!

echo "# Terminals 2 and 3: two workers"
# ANCHOR: workers
start_worker() {
  RUST_LOG=warn "$WORKER_BIN" --worker-address "127.0.0.1:$1" --actor-host-address "127.0.0.1:$2" \
    --runtime-address "127.0.0.1:$RUNTIME" --ca-file ca.pem &
}
start_worker "$HTTP1" "$PEER1"
start_worker "$HTTP2" "$PEER2"
# ANCHOR_END: workers
for port in $HTTP1 $HTTP2; do
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$port/status" && break
    sleep 0.2
  done
done

echo "# Pin the CA from the running runtime, checked against the fingerprint of the configuration"
# ANCHOR: pin
fingerprint=$("$FRANCIS_BIN" ca print --config config.yaml --fingerprint)
"$FRANCIS_BIN" ca pin --runtime "127.0.0.1:$RUNTIME" --expect "$fingerprint" --output pinned.pem
# ANCHOR_END: pin
cmp -s pinned.pem ca.pem || fail "ca pin wrote another CA than ca print"
status=0
"$FRANCIS_BIN" ca pin --runtime "127.0.0.1:$RUNTIME" --expect "$(printf '00%.0s' $(seq 32))" \
  --output wrong.pem 2>/dev/null || status=$?
[[ $status == 7 && ! -e wrong.pem ]] || fail "ca pin accepted a CA with another fingerprint (exit $status)"
echo "# ca pin wrote the same CA, and refused a wrong fingerprint (exit code 7)"

# ANCHOR: call
call() { curl -s -X POST "http://127.0.0.1:$1$2" -H 'Content-Type: application/json' ${3:+--data "$3"}; }
# ANCHOR_END: call
field() { python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', ''))"; }

echo "# Invoke actors through both workers"
declare -A owner
for i in $(seq 1 6); do
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
echo "# Every ID answered by one activation; actors on $hosts worker(s)"

echo "# Restart the runtime: state lives in data.db"
# ANCHOR: restart
kill -INT "$runtime_pid"
wait "$runtime_pid" || fail "the runtime did not stop cleanly"
RUST_LOG=warn "$FRANCIS_BIN" runtime --config config.yaml &
# ANCHOR_END: restart
runtime_pid=$!
for _ in $(seq 1 150); do
  again=$(call $HTTP1 /invoke/myactor/id1/increment '{"In": 1}' || true)
  [[ "$(echo "$again" | field Out 2>/dev/null)" == 85 ]] && break
  sleep 0.2
done
echo "id1 after the runtime restart: $again"
[[ "$(echo "$again" | field Out)" == 85 ]] || fail "the counter did not continue after the restart"
echo "# The counter continued from where it was"
