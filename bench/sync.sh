#!/usr/bin/env bash
# Remote sync benchmark (issue 17). A remote coachloop (SQLite, the Reporting benchmark's
# seed: PEOPLE people in an all-users campaign of ten pieces of content, so ten enrolments
# each) serves its Reporting API on loopback; a local coachloop on each store engine in
# turn connects to it and syncs, 500 rows a page. Prints:
#   (a) the initial sync, run by the server as soon as the connection is made: every
#       person and enrolment written and evaluated (SOC 2 enabled); time from the
#       connection to its first success, rows/s;
#   (b) a re-sync with `coachloop compliance sync` (the server stopped): everything read
#       again, nothing new; the command's own figure.
#
#   bench/sync.sh           10,000 people, 100,000 enrolments
#   bench/sync.sh --quick   1,000 people, 10,000 enrolments (seconds once built)
set -euo pipefail
cd "$(dirname "$0")/.."

people=10000
if [ "${1:-}" = "--quick" ]; then people=1000; fi
port=${BENCH_PORT:-18186}
remote_port=$((port + 1))

source bench/engines.sh
command -v jq >/dev/null || { echo "jq is needed (apt-get install jq)" >&2; exit 1; }
[ -n "${BENCH_BIN:-}" ] || cargo build --release -q -p coachloop
bin=${BENCH_BIN:-target/release/coachloop}
data=$(mktemp -d /tmp/coachloop-sync-bench-XXXXXX)
trap 'kill ${server:-} ${remote:-} 2>/dev/null || true; wait ${server:-} ${remote:-} 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$data"; drop_bench_databases' EXIT

mkdir -p "$data/remote"
$bin migrate --data-dir "$data/remote" >/dev/null 2>&1
python3 bench/reporting_seed.py "$data/remote/coachloop.db" "$people" 10
key=$($bin tokens create --data-dir "$data/remote" --name sync \
  --scopes account:read,user:read,campaign:read,enrollments:read 2>/dev/null)
$bin serve --data-dir "$data/remote" --listen "127.0.0.1:$remote_port" 2> "$data/remote/server.log" &
remote=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$remote_port/healthz" >/dev/null && break; sleep 0.1; done
echo "== remote: $people people, $((people * 10)) enrolments at http://127.0.0.1:$remote_port"

base="http://127.0.0.1:$port"
export COACHLOOP_ALLOW_PRIVATE_DESTINATIONS=true
for engine in $ENGINES; do
  echo "#### $engine"
  mkdir -p "$data/$engine"
  engine_db "$engine" "$data/$engine"
  $bin migrate "${DB_ARGS[@]}" >/dev/null 2>&1
  admin=$($bin tokens create "${DB_ARGS[@]}" --name "bench-admin-$engine" --scopes admin 2>/dev/null)
  $bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$port" 2> "$data/$engine/server.log" &
  server=$!
  for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
  auth=(-H "Authorization: Bearer $admin")
  curl -sf -X PUT "${auth[@]}" "$base/api/compliance/frameworks/soc2" >/dev/null

  t0=$(date +%s%N)
  id=$(curl -sf "${auth[@]}" -H 'Content-Type: application/json' \
    -d "{\"name\":\"remote\",\"base_url\":\"http://127.0.0.1:$remote_port\",\"key\":\"$key\"}" \
    "$base/api/compliance/connections" | jq .data.id)
  while :; do
    c=$(curl -sf "${auth[@]}" "$base/api/compliance/connections/$id")
    status=$(jq -r .data.status <<<"$c")
    [ "$status" != pending ] && break
    if [ "$(jq -r '.data.last_error // empty' <<<"$c")" != "" ]; then
      echo "sync failed: $(jq -r .data.last_error <<<"$c")" >&2; exit 1
    fi
    sleep 0.05
  done
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
  enrolments=$(jq .data.enrollments <<<"$c")
  synced=$(jq .data.people <<<"$c")
  in_scope=$(curl -sf "${auth[@]}" "$base/api/compliance/people?per_page=1" | jq .meta.count)
  echo "== initial sync (server): $enrolments enrolments, $synced people in $ms ms" \
    "($(awk -v n="$enrolments" -v ms="$ms" 'BEGIN {printf "%.0f", n * 1000 / ms}') enrolments/s);" \
    "$in_scope people evaluated"
  kill "$server"; wait "$server" 2>/dev/null || true; server=

  $bin compliance sync "${DB_ARGS[@]}" 2>/dev/null | sed 's/^/== re-sync (coachloop compliance sync): /'
done
