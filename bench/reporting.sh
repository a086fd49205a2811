#!/usr/bin/env bash
# Reporting API benchmark (issue 5). One server over a seeded database:
#   (a) every enrolment read page by page, 500 a page, sequentially: total time, and the
#       first page against the last;
#   (b) all of them as one NDJSON stream: time, and the server's peak RSS meanwhile.
#
#   bench/reporting.sh           100,000 people, 1,000,000 enrolments
#   bench/reporting.sh --quick   10,000 people, 100,000 enrolments (well under a minute)
set -euo pipefail
cd "$(dirname "$0")/.."

people=100000
if [ "${1:-}" = "--quick" ]; then people=10000; fi
port=${BENCH_PORT:-18184}

cargo build --release -q -p coachloop
cargo build --release -q -p coachloop-server --example reporting_bench
bin=${BENCH_BIN:-target/release/coachloop}
data=$(mktemp -d /tmp/coachloop-reporting-bench-XXXXXX)
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT

$bin migrate --data-dir "$data" >/dev/null 2>&1
start=$(date +%s)
python3 bench/reporting_seed.py "$data/coachloop.db" "$people" 10
echo "== seeded in $(( $(date +%s) - start )) s"
export TOKEN=$($bin tokens create --data-dir "$data" --name bench --scopes enrollments:read 2>/dev/null)
export BASE="http://127.0.0.1:$port"

$bin serve --data-dir "$data" --listen "127.0.0.1:$port" 2> "$data/server.log" &
server=$!
export SERVER_PID=$server
for _ in $(seq 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done

target/release/examples/reporting_bench
