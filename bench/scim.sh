#!/usr/bin/env bash
# SCIM benchmark (issue 18), on each store engine (ENGINES, see bench/engines.sh):
#   1. provision users through POST /scim/v2/Users from 8 concurrent clients (wrk, 8
#      connections; creates that arrive together share a transaction); users/s (target >= 2,000);
#   2. Okta's look-up before create, `GET /Users?filter=userName eq "…"` of random
#      existing users from 8 clients; its p99 (target < 5 ms);
#   then the figures of both engines side by side.
#
#   bench/scim.sh           100,000 users, 20 s of look-ups
#   bench/scim.sh --quick   2,000 users, 3 s of look-ups (under a minute for both engines)
set -euo pipefail
cd "$(dirname "$0")/.."

users=100000; lookups=20s
if [ "${1:-}" = "--quick" ]; then users=2000; lookups=3s; fi
port=${BENCH_PORT:-18183}
export SCIM_USERS=$users SCIM_THREADS=2

source bench/engines.sh
for tool in wrk curl; do
  command -v $tool >/dev/null || { echo "$tool is needed: apt-get install -y $tool" >&2; exit 1; }
done
[ -n "${BENCH_BIN:-}" ] || cargo build --release -q -p coachloop
bin=${BENCH_BIN:-target/release/coachloop}
data=$(mktemp -d /tmp/coachloop-scim-bench-XXXXXX)
trap 'kill ${server:-} 2>/dev/null || true; wait ${server:-} 2>/dev/null || true; rm -rf "$data"; drop_bench_databases' EXIT
base="http://127.0.0.1:$port"
ms() { date +%s%3N; }
count() {
  curl -s -H "Authorization: Bearer $SCIM_TOKEN" "$base/scim/v2/Users?count=0" |
    sed -n 's/.*"totalResults":\([0-9]*\).*/\1/p'
}

declare -A rate p50 p99 failed
measure() { # engine
  echo "#### $1"
  mkdir -p "$data/$1"
  engine_db "$1" "$data/$1"
  $bin migrate "${DB_ARGS[@]}" >/dev/null 2>&1 || true
  export SCIM_TOKEN=$($bin tokens create "${DB_ARGS[@]}" --name "bench-scim-$$" --scopes scim 2>/dev/null)
  $bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$port" 2>"$data/$1/server.log" &
  server=$!
  for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done

  echo "== provisioning $users users: POST /scim/v2/Users, 8 connections"
  local start elapsed
  start=$(ms)
  # Each wrk thread stops after its share; wrk itself waits out -d, so stop it when done.
  wrk -t2 -c8 -d1h -s bench/scim_create.lua "$base" > "$data/$1/create.txt" 2>&1 &
  local creator=$!
  while [ "$(count)" -lt "$users" ] && kill -0 $creator 2>/dev/null; do sleep 0.2; done
  elapsed=$(( $(ms) - start ))
  kill -INT $creator 2>/dev/null || true; wait $creator 2>/dev/null || true
  local made; made=$(count)
  failed[$1]=$(awk '/Non-2xx/ {print $5}' "$data/$1/create.txt"); failed[$1]=${failed[$1]:-0}
  rate[$1]=$(awk -v n="$made" -v ms="$elapsed" 'BEGIN {printf "%.0f", n / (ms / 1000)}')
  echo "   $made users in $elapsed ms: ${rate[$1]} users/s (${failed[$1]} requests failed)"

  echo "== userName eq look-ups, 8 connections, $lookups"
  wrk -t2 -c8 -d"$lookups" --latency -s bench/scim_lookup.lua "$base" > "$data/$1/lookup.txt" 2>&1
  p50[$1]=$(awk '$1 == "50%" {print $2}' "$data/$1/lookup.txt")
  p99[$1]=$(awk '$1 == "99%" {print $2}' "$data/$1/lookup.txt")
  echo "   $(awk '/^Requests\/sec/ {print $2}' "$data/$1/lookup.txt") look-ups/s, p50 ${p50[$1]}, p99 ${p99[$1]}"
  kill $server; wait $server 2>/dev/null || true
}

for engine in $ENGINES; do measure "$engine"; done

echo
echo "== SCIM, $users users (targets: >= 2000 users/s, look-up p99 < 5 ms)"
printf '%-10s %14s %10s %12s %12s\n' engine "users/s" failed "lookup p50" "lookup p99"
for engine in $ENGINES; do
  printf '%-10s %14s %10s %12s %12s\n' "$engine" "${rate[$engine]}" "${failed[$engine]}" "${p50[$engine]}" "${p99[$engine]}"
done
