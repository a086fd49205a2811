#!/usr/bin/env bash
# Smart-group benchmark (issue 3). One run, one server:
#   1. seed 100,000 people and 10,000,000 events spread over the last 12 months;
#   2. measure ingest with no smart groups (single-event and bulk POST, 32 connections);
#   3. create 49 smart groups, then time the 50th's creation (backfill over the history)
#      and a preview (now and each of the last 90 days);
#   4. measure ingest again with the 50 groups active;
#   5. time scheduled leaves: 500 people join a PT5S-window group; print the lag between
#      each leave's scheduled instant and when it was recorded;
#   6. archive the groups, measure rule-free ingest again, and print the ratio of step 4
#      to the mean of the two rule-free phases;
#   7. print the server's peak and current RSS;
#   and (issue 15) ingest latency while a smart group is created: single-event POSTs for a
#   few seconds, a group created one second in; its p99 and the creation's wall time. The
#   p99 is printed as wrk sees it and as the server measures it (bench/server_p99.py).
# Steps 2-7 run on each store engine in turn (ENGINES, see bench/engines.sh): the seed is
# made once on SQLite and moved to PostgreSQL with `coachloop db copy`.
#
#   bench/groups.sh           the issue's sizes, 30 s per ingest phase
#   bench/groups.sh --quick   5,000 people, 300,000 events, 2 s phases (about a minute per engine)
set -euo pipefail
cd "$(dirname "$0")/.."

people=100000; events=10000000; duration=30s; create_window=12s
if [ "${1:-}" = "--quick" ]; then people=5000; events=300000; duration=2s; create_window=4s; fi
port=${BENCH_PORT:-18182}
export PEOPLE=$people SEED_EVENTS=$events SEED_THREADS=2

source bench/engines.sh
for tool in wrk jq curl; do
  command -v $tool >/dev/null || { echo "$tool is needed: apt-get install -y $tool" >&2; exit 1; }
done
[ -n "${BENCH_BIN:-}" ] || cargo build --release -q -p coachloop
bin=${BENCH_BIN:-target/release/coachloop}
data=$(mktemp -d /tmp/coachloop-groups-bench-XXXXXX)
log=$(mktemp /tmp/coachloop-groups-bench-log-XXXXXX)
trap 'kill ${server:-} 2>/dev/null || true; wait ${server:-} 2>/dev/null || true; rm -rf "$data" "$log"; drop_bench_databases' EXIT
base="http://127.0.0.1:$port"
ms() { date +%s%3N; }

# SEED_DIR=dir: keep the seeded data directory there, or start from it if it exists (to
# skip the seeding; history is relative to the seeding day, so reuse a seed the same day).
if [ -n "${SEED_DIR:-}" ] && [ -f "$SEED_DIR/people.csv" ]; then
  echo "== copying the seeded data of $SEED_DIR"
  cp -a "$SEED_DIR/." "$data/"
  reuse=1
fi
[ -z "${reuse:-}" ] && echo "== seeding $people people" && {
  echo "email,first_name,department"
  for ((i = 1; i <= people; i++)); do echo "user$i@bench.example,User$i,Dept$((i % 10))"; done
} > "$data/people.csv.part" && mv "$data/people.csv.part" "$data/people.csv" \
  && $bin users import --data-dir "$data" "$data/people.csv" >/dev/null
DB_ARGS=(--data-dir "$data")
tokens() { # -> EVENTS_TOKEN, ADMIN for the database of DB_ARGS
  export EVENTS_TOKEN=$($bin tokens create "${DB_ARGS[@]}" --name "bench-$$-$RANDOM" --scopes events:write 2>/dev/null)
  ADMIN=$($bin tokens create "${DB_ARGS[@]}" --name "bench-admin-$$-$RANDOM" --scopes admin 2>/dev/null)
}
tokens

# The server's log is also kept to see when its start-up work is done: at start it records
# the day's risk scores, a read of every event that weighs (seconds at full size), which
# must not fall in a measured phase.
risk_records() { grep -c "daily risk scores" "$log" || true; }
start_server() {
  local before
  before=$(risk_records)
  $bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$port" 2> >(tee -a "$log" >&2) &
  server=$!
  for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
  while [ "$(risk_records)" -le "$before" ]; do
    kill -0 $server || { echo "the server stopped" >&2; exit 1; }
    sleep 0.2
  done
}
start_server

ingested() { curl -s "$base/metrics" | awk '/^coachloop_events_ingested_total/ {print int($2)}'; }
if [ -z "${reuse:-}" ]; then
  start=$(ms)
  # Each wrk thread stops after its share; wrk itself waits out -d, so stop it when done.
  wrk -t2 -c8 -d1h -s bench/groups_seed.lua "$base" >/dev/null 2>&1 &
  seeder=$!
  while [ "$(ingested)" -lt "$events" ] && kill -0 $seeder 2>/dev/null; do sleep 1; done
  kill -INT $seeder 2>/dev/null || true; wait $seeder 2>/dev/null || true
  echo "== seeded $(ingested) events over 12 months in $(( ($(ms) - start) / 1000 )) s"
  if [ -n "${SEED_DIR:-}" ]; then
    # A consistent copy: stop the server, copy, start it again.
    kill $server; wait $server 2>/dev/null || true
    mkdir -p "$SEED_DIR" && cp -a "$data/." "$SEED_DIR/"
    start_server
  fi
fi

# The seed is ready: stop its server, then measure each engine on a copy of it.
kill $server; wait $server 2>/dev/null || true
seed="$data/seed"; mkdir -p "$seed"; mv "$data"/coachloop.db* "$data"/people.csv "$seed/"

run() { wrk -t2 -c32 -d"$duration" --latency -s "bench/$1" "$base" 2>&1; }
rate() { awk '/^Requests\/sec/ {print $2}'; }
pct() { awk -v p="$1" '$1 == p {print $2}'; }
phase() { # label -> sets single_rps, bulk_eps
  local single bulk records
  records=$(risk_records)
  single=$(run groups_single.lua); single_rps=$(echo "$single" | rate)
  bulk=$(run groups_bulk.lua); bulk_eps=$(awk -v r="$(echo "$bulk" | rate)" 'BEGIN {printf "%.0f", r * 1000}')
  echo "   $1: single $single_rps events/s (p50 $(echo "$single" | pct 50%), p99 $(echo "$single" | pct 99%)); bulk $bulk_eps events/s"
  # The hourly risk record competes with ingest; say so when it fell in the phase.
  [ "$(risk_records)" -eq "$records" ] || echo "   (the hourly risk record ran during this phase)"
}

measure() { # engine
echo "#### $1"
mkdir -p "$data/$1"
engine_db "$1" "$data/$1"
if [ "$1" = postgres ]; then
  start=$(ms)
  $bin db copy --from "sqlite://$seed/coachloop.db" --to "${DB_ARGS[3]}" 2>/dev/null | tail -1
  echo "== copied the seed to PostgreSQL in $(( ($(ms) - start) / 1000 )) s"
else
  cp -a "$seed/." "$data/$1/"
fi
tokens
start_server

echo "== ingest, no smart groups, 32 connections, $duration per phase"
phase "rule-free"; free_single=$single_rps; free_bulk=$bulk_eps

api() { # method path [body] -> body
  curl -s -X "$1" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    ${3:+-d "$3"} "$base$2"
}
types=(dashlane_user_typed_compromised_password dashlane_user_typed_weak_password
  dashlane_user_dismissed_vault_phishing_alert dashlane_user_entered_credential_phishing_website_ai
  dashlane_user_received_vault_phishing_alert dashlane_user_entered_password_risky_site
  dashlane_user_dismissed_ai_phishing_alert dashlane_user_received_credential_risk_alert
  dashlane_user_changed_at_risk_password dashlane_user_accepted_ai_phishing_alert)
windows=(P1M P3M P6M P12M any)
ids=()
echo "== creating 49 smart groups"
start=$(ms)
for ((g = 0; g < 49; g++)); do
  type=${types[$((g % 10))]}; window=${windows[$((g / 10))]}; n=$((g % 3 + 1))
  leaf="{\"event\":{\"type\":\"$type\",\"count\":{\"at_least\":$n},\"within\":\"$window\"}}"
  case $((g % 4)) in
    1) criteria="{\"all\":[$leaf,{\"not\":{\"user\":{\"attribute\":\"department\",\"in\":[\"Dept1\",\"Dept2\"]}}}]}" ;;
    2) criteria="{\"event\":{\"type\":\"$type\",\"description\":{\"contains\":\"not logged in\"},\"count\":{\"at_least\":$n},\"within\":\"$window\"}}" ;;
    *) criteria=$leaf ;;
  esac
  ids+=("$(api POST /api/groups "{\"name\":\"bench $g\",\"criteria\":$criteria}" | jq -e .data.id)")
done
echo "   49 groups in $(( ($(ms) - start) / 1000 )) s"

criteria='{"all":[{"event":{"type":"dashlane_user_typed_compromised_password","count":{"at_least":2},"within":"P3M"}},{"not":{"event":{"type":"dashlane_user_changed_at_risk_password","within":"P1M"}}}]}'
start=$(ms)
created=$(api POST /api/groups "{\"name\":\"bench 49 (measured)\",\"criteria\":$criteria}")
ids+=("$(echo "$created" | jq .data.id)")
echo "== backfill of the 50th group: $(( $(ms) - start )) ms wall ($(echo "$created" | jq -c .backfill))"
start=$(ms)
preview=$(api POST /api/groups/preview "{\"criteria\":$criteria}")
echo "== preview (now + 90 days): $(( $(ms) - start )) ms wall; matching $(echo "$preview" | jq .data.matching), took_ms $(echo "$preview" | jq .data.took_ms)"

# The engine loads an account's people in one pass on the first event after its groups
# change; time that apart from the throughput phases.
start=$(ms)
curl -s -H "Authorization: Bearer $EVENTS_TOKEN" -H 'Content-Type: application/json' \
  -d '{"target_user":"user1@bench.example","event_type":"dashlane_user_typed_weak_password"}' "$base/events" >/dev/null
echo "== engine load of $people people after the groups changed (first event): $(( $(ms) - start )) ms"
echo "== ingest with 50 smart groups active"
# PERF=1: profile the server during this phase (perf.data in the working directory).
[ -n "${PERF:-}" ] && { perf record -F 199 ${PERF_ARGS:--g} -p $server -o perf.data >/dev/null 2>&1 & perf=$!; }
phase "50 groups"
[ -n "${PERF:-}" ] && { kill -INT $perf; wait $perf || true; }
grouped_single=$single_rps; grouped_bulk=$bulk_eps

echo "== scheduled leaves: 500 people join a PT5S group, leave 5 s later"
probe=$(api POST /api/groups '{"name":"lag probe","criteria":{"event":{"type":"bench_lag_probe","within":"PT5S"}}}' | jq .data.id)
# Creating the probe reloaded the engine: load it first, so the lag is the executor's.
curl -s -H "Authorization: Bearer $EVENTS_TOKEN" -H 'Content-Type: application/json' \
  -d '{"target_user":"user1@bench.example","event_type":"dashlane_user_typed_weak_password"}' "$base/events" >/dev/null
body=$(for i in $(seq 1 500); do printf '{"target_user":"user%d@bench.example","event_type":"bench_lag_probe"}\n' "$i"; done | jq -s -c .)
curl -s -H "Authorization: Bearer $EVENTS_TOKEN" -H 'Content-Type: application/json' -d "$body" "$base/events" >/dev/null
# The probe group's creation reloads the engine, so the first event may wait for that.
for _ in $(seq 120); do
  left=$(api GET "/api/groups/$probe/history?per_page=1" | jq '[.meta.count][0]')
  [ "${left:-0}" -ge 1000 ] && break; sleep 1
done
api GET "/api/groups/$probe/history?per_page=500" | jq -r '.data[] | select(.change == "left") | [.at, .recorded_at] | @tsv' > "$data/lag.tsv"
python3 - "$data/lag.tsv" <<'PY'
import sys, datetime, statistics
def ms(t): return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000
lags = sorted(ms(r) - ms(a) for a, r in (line.split("\t") for line in open(sys.argv[1]).read().split("\n") if line))
if not lags: print("   no leaves recorded"); sys.exit()
print(f"   {len(lags)} leaves; lag scheduled -> recorded: p50 {statistics.median(lags):.0f} ms, "
      f"p99 {lags[int(len(lags) * 0.99) - 1]:.0f} ms, max {lags[-1]:.0f} ms")
PY

# Rule-free again, with the 50 groups archived: the ratio is taken to the mean of the
# rule-free phases before and after, so a drift of the machine over the minutes between
# them does not land on the ratio.
for id in "${ids[@]}" "$probe"; do api DELETE "/api/groups/$id" >/dev/null; done
echo "== ingest, the groups archived"
phase "rule-free again"
ratio() { awk -v g="$1" -v a="$2" -v b="$3" 'BEGIN {printf "%.2f", g / ((a + b) / 2)}'; }
echo "== ratio with 50 groups to the rule-free mean: single $(ratio "$grouped_single" "$free_single" "$single_rps"), bulk $(ratio "$grouped_bulk" "$free_bulk" "$bulk_eps")"

# Ingest while a smart group is created (its backfill reads the whole history).
echo "== single-event ingest while a smart group is created"
# Let the writes of the phases before settle (SQLite checkpoints its log after a burst).
sleep 2
curl -s "$base/metrics" > "$data/metrics-before.txt"
wrk -t2 -c32 -d"$create_window" --latency -s bench/groups_single.lua "$base" > "$data/during.txt" 2>&1 &
during=$!
sleep 1
start=$(ms)
created=$(api POST /api/groups "{\"name\":\"created under load\",\"criteria\":$criteria}")
created_ms=$(( $(ms) - start ))
wait $during
curl -s "$base/metrics" > "$data/metrics-after.txt"
echo "   created in $created_ms ms ($(echo "$created" | jq -c .backfill)); ingest meanwhile: $(rate < "$data/during.txt") events/s, p50 $(pct 50% < "$data/during.txt"), p99 $(pct 99% < "$data/during.txt") (wrk); server p99 <= $(bench/server_p99.py "$data/metrics-before.txt" "$data/metrics-after.txt")"

echo "== server memory: peak RSS $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' /proc/$server/status), now $(awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' /proc/$server/status)"
kill $server; wait $server 2>/dev/null || true
}

for engine in $ENGINES; do measure "$engine"; done
