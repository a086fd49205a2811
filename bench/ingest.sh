#!/usr/bin/env bash
# Ingest benchmark (issues 2 and 15): single-event POST throughput and latency at 32
# connections, the no-op ceiling of the same server, bulk POST (arrays of 1,000) events/s,
# and the server's RSS after ingesting 1,000,000 events; on each store engine in turn,
# then side by side with PostgreSQL's ratio to SQLite. Every 201 is durable
# (SQLite synchronous=FULL, PostgreSQL synchronous_commit=on).
#
#   bench/ingest.sh           full run (30 s per phase)
#   bench/ingest.sh --quick   under a minute per engine (5 s per phase, no 1 M top-up)
#   ENGINES=sqlite bench/ingest.sh      one engine (see bench/engines.sh)
#   ENGINES="postgres postgres2" bench/ingest.sh   PostgreSQL with one node, then two
#       nodes on one database (the load split between them, the same connections in
#       all), and the ratio of two to one: what coordinating nodes costs
set -euo pipefail
cd "$(dirname "$0")/.."

duration=30s; top_up=1000000
[ "${1:-}" = "--quick" ] && duration=5s && top_up=0
connections=32
bulk_connections=32
port=${BENCH_PORT:-18181}

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
source bench/engines.sh
[ -n "${BENCH_BIN:-}" ] || cargo build --release -q -p coachloop
bin=${BENCH_BIN:-target/release/coachloop}
data=$(mktemp -d /tmp/coachloop-bench-XXXXXX)
trap 'kill ${server:-} ${second:-} 2>/dev/null || true; wait ${server:-} ${second:-} 2>/dev/null || true; rm -rf "$data"; drop_bench_databases' EXIT

run() { # script connections -> wrk output (with two nodes, each wrk's output, and the
  # summed rate as a last "Requests/sec" line)
  if [ "$nodes" = 1 ]; then
    wrk -t2 -c"$2" -d"$duration" --latency -s "bench/$1" "http://127.0.0.1:$port" 2>&1
    return
  fi
  wrk -t1 -c"$(($2 / 2))" -d"$duration" --latency -s "bench/$1" "http://127.0.0.1:$port" > "$data/wrk1" 2>&1 &
  local first=$!
  wrk -t1 -c"$(($2 / 2))" -d"$duration" --latency -s "bench/$1" "http://127.0.0.1:$((port + 1))" > "$data/wrk2" 2>&1
  wait $first
  cat "$data/wrk1"
  awk '/^Requests\/sec/ {sum += $2} END {printf "Requests/sec: %.2f\n", sum}' "$data/wrk1" "$data/wrk2"
}
rate() { awk '/^Requests\/sec/ {r = $2} END {print r}'; }
pct() { awk -v p="$1" '$1 == p {print $2}'; }
errors() { awk '/Non-2xx/ {print $NF}'; }
# Mean events per writer transaction since the previous call.
last_sum=0; last_count=0
commit_size() {
  local m sum count
  m=$(curl -s "http://127.0.0.1:$port/metrics")
  sum=$(echo "$m" | awk '/^coachloop_ingest_commit_events_sum/ {print $2}')
  count=$(echo "$m" | awk '/^coachloop_ingest_commit_events_count/ {print $2}')
  per_commit=$(awk -v s="$sum" -v c="$count" -v ls="$last_sum" -v lc="$last_count" \
    'BEGIN {if (c > lc) printf "%.1f", (s - ls) / (c - lc); else print "n/a"}')
  last_sum=$sum; last_count=$count
}

measure() { # engine (postgres2: PostgreSQL, two nodes)
echo "#### $1"
mkdir -p "$data/$1"
nodes=1
if [ "$1" = postgres2 ]; then
  nodes=2
  engine_db postgres "$data/$1"
else
  engine_db "$1" "$data/$1"
fi
# 1,000 people, so events are matched as in real use.
{
  echo "email,first_name,department"
  for i in $(seq 0 999); do echo "user$i@bench.example,User$i,Dept$((i % 10))"; done
} > "$data/people.csv"
$bin users import "${DB_ARGS[@]}" "$data/people.csv" >/dev/null
export EVENTS_TOKEN=$($bin tokens create "${DB_ARGS[@]}" --name bench --scopes events:write 2>/dev/null)
$bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$port" &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
if [ "$nodes" = 2 ]; then
  $bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$((port + 1))" &
  second=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((port + 1))/healthz" >/dev/null && break; sleep 0.1; done
  echo "   two nodes on one database (latencies: the first node's half of the connections)"
fi
last_sum=0; last_count=0

echo "== no-op route (GET /healthz), $connections connections, $duration"
noop=$(run noop.lua $connections); noop_rps=$(echo "$noop" | rate)
echo "   $noop_rps req/s, p50 $(echo "$noop" | pct 50%), p99 $(echo "$noop" | pct 99%)"

echo "== single-event POST /events, $connections connections, $duration"
single=$(run single.lua $connections); single_rps=$(echo "$single" | rate)
echo "   $single_rps events/s, p50 $(echo "$single" | pct 50%), p99 $(echo "$single" | pct 99%)$(echo "$single" | errors | sed 's/^/, non-2xx: /')"
commit_size; echo "   events per commit (group commit): $per_commit"
echo "   ratio to the no-op ceiling: $(awk -v a="$single_rps" -v b="$noop_rps" 'BEGIN {printf "%.2f", a / b}')"

echo "== bulk POST /events (arrays of 1,000), $bulk_connections connections, $duration"
bulk=$(run bulk.lua $bulk_connections); bulk_rps=$(echo "$bulk" | rate)
echo "   $(awk -v r="$bulk_rps" 'BEGIN {printf "%.0f", r * 1000}') events/s ($bulk_rps req/s), p50 $(echo "$bulk" | pct 50%), p99 $(echo "$bulk" | pct 99%)$(echo "$bulk" | errors | sed 's/^/, non-2xx: /')"
commit_size; echo "   events per commit: $per_commit"

# Top up to 1,000,000 events, then read the server's resident memory.
total=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^coachloop_events_ingested_total/ {print int($2)}')
while [ "$total" -lt "$top_up" ]; do
  wrk -t1 -c2 -d2s -s bench/bulk.lua "http://127.0.0.1:$port" >/dev/null 2>&1
  total=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^coachloop_events_ingested_total/ {print int($2)}')
done
echo "== after $total events ingested: server RSS $(awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' /proc/$server/status)"
kill $server ${second:-}; wait $server ${second:-} 2>/dev/null || true; second=
eval "single_$1=$single_rps bulk_$1=$(awk -v r="$bulk_rps" 'BEGIN {printf "%.0f", r * 1000}')"
}

for engine in $ENGINES; do measure "$engine"; done
if [ -n "${single_sqlite:-}" ] && [ -n "${single_postgres:-}" ]; then
  echo "== PostgreSQL / SQLite, same run: single $(ratio "$single_postgres" "$single_sqlite") ($single_postgres / $single_sqlite events/s), bulk $(ratio "$bulk_postgres" "$bulk_sqlite") ($bulk_postgres / $bulk_sqlite events/s)"
fi
if [ -n "${single_postgres:-}" ] && [ -n "${single_postgres2:-}" ]; then
  echo "== PostgreSQL, two nodes / one node, same run: single $(ratio "$single_postgres2" "$single_postgres") ($single_postgres2 / $single_postgres events/s), bulk $(ratio "$bulk_postgres2" "$bulk_postgres") ($bulk_postgres2 / $bulk_postgres events/s)"
fi
