#!/usr/bin/env bash
# Reporting API benchmark (issue 5). One server over a seeded database:
#   (a) every enrolment read page by page, 500 a page, sequentially: total time, and the
#       first page against the last;
#   (b) all of them as one NDJSON stream: time, and the server's peak RSS meanwhile.
#
# On each store engine in turn (ENGINES, see bench/engines.sh): the seed is written to
# SQLite and moved to PostgreSQL with `coachloop db copy`.
#
#   bench/reporting.sh           100,000 people, 1,000,000 enrolments
#   bench/reporting.sh --quick   10,000 people, 100,000 enrolments (well under a minute)
set -euo pipefail
cd "$(dirname "$0")/.."

people=100000
if [ "${1:-}" = "--quick" ]; then people=10000; fi
port=${BENCH_PORT:-18184}

source bench/engines.sh
[ -n "${BENCH_BIN:-}" ] || cargo build --release -q -p coachloop
cargo build --release -q -p coachloop-server --example reporting_bench
bin=${BENCH_BIN:-target/release/coachloop}
data=$(mktemp -d /tmp/coachloop-reporting-bench-XXXXXX)
trap 'kill ${server:-} 2>/dev/null || true; wait ${server:-} 2>/dev/null || true; rm -rf "$data"; drop_bench_databases' EXIT

$bin migrate --data-dir "$data" >/dev/null 2>&1
start=$(date +%s)
python3 bench/reporting_seed.py "$data/coachloop.db" "$people" 10
echo "== seeded in $(( $(date +%s) - start )) s"
export BASE="http://127.0.0.1:$port"

for engine in $ENGINES; do
  echo "#### $engine"
  engine_db "$engine" "$data"
  if [ "$engine" = postgres ]; then
    $bin db copy --from "sqlite://$data/coachloop.db" --to "${DB_ARGS[3]}" 2>/dev/null | tail -1
  fi
  export TOKEN=$($bin tokens create "${DB_ARGS[@]}" --name "bench-$engine" --scopes enrollments:read 2>/dev/null)
  $bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$port" 2> "$data/server.log" &
  server=$!
  export SERVER_PID=$server
  for _ in $(seq 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
  target/release/examples/reporting_bench
  kill $server; wait $server 2>/dev/null || true
done
