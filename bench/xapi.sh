#!/usr/bin/env bash
# xAPI benchmark (issue 22): statements POSTed in arrays of 100 by 8 clients (wrk, 8
# connections) with an LRS credential, each stored durably (SQLite synchronous=FULL,
# PostgreSQL synchronous_commit=on) and applied to its person's enrolment in the same
# transaction; statements/s and latency per engine, then PostgreSQL's ratio to SQLite.
# Afterwards the enrolments' attempts are summed: every `failed` statement adds one, so
# the sum shows each statement was applied.
#
#   bench/xapi.sh             10,000 enrolled people, 30 s per engine
#   bench/xapi.sh --quick     2,000 people, 5 s per engine (under a minute each)
#   ENGINES=sqlite bench/xapi.sh        one engine (see bench/engines.sh)
#   BENCH_BIN=path                      measure that build instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."

people=${PEOPLE:-10000}; duration=${DURATION:-30s}
[ "${1:-}" = "--quick" ] && people=${PEOPLE:-2000} && duration=${DURATION:-5s}
port=${BENCH_PORT:-18282}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
source bench/engines.sh
[ -n "${BENCH_BIN:-}" ] || cargo build --release -q -p coachloop
bin=${BENCH_BIN:-target/release/coachloop}
data=$(mktemp -d /tmp/coachloop-xapi-bench-XXXXXX)
trap 'kill ${server:-} 2>/dev/null || true; wait ${server:-} 2>/dev/null || true; rm -rf "$data"; drop_bench_databases' EXIT

measure() { # engine
  echo "#### $1"
  mkdir -p "$data/$1"
  engine_db "$1" "$data/$1"
  {
    echo "email,first_name,department"
    for ((i = 0; i < people; i++)); do echo "user$i@bench.example,User$i,Dept$((i % 10))"; done
  } > "$data/people.csv"
  $bin users import "${DB_ARGS[@]}" "$data/people.csv" >/dev/null
  local admin cred key secret
  admin=$($bin tokens create "${DB_ARGS[@]}" --name bench-admin --scopes admin 2>/dev/null)
  cred=$($bin lrs create "${DB_ARGS[@]}" --name bench 2>/dev/null)
  key=$(echo "$cred" | sed -n 's/^key: //p'); secret=$(echo "$cred" | sed -n 's/^secret: //p')
  export LRS_BASIC=$(printf '%s:%s' "$key" "$secret" | base64 -w0) LRS_PEOPLE=$people
  $bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$port" >"$data/$1/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  api() { curl -sf -X "$1" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' ${3:+-d "$3"} "http://127.0.0.1:$port$2"; }
  local content
  content=$(api GET '/api/content?per_page=500' | python3 -c 'import json,sys; print(next(c["id"] for c in json.load(sys.stdin)["data"] if c["slug"] == "password-management"))')
  api POST /api/campaigns "{\"name\":\"Passwords\",\"content\":[$content],\"groups\":[0]}" >/dev/null
  echo "== $people people enrolled; 8 clients POST arrays of 100 statements for $duration"
  local out rps
  out=$(wrk -t2 -c8 -d"$duration" --latency -s bench/xapi.lua "http://127.0.0.1:$port" 2>&1)
  rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  echo "   $(awk -v r="$rps" 'BEGIN {printf "%.0f", r * 100}') statements/s ($rps req/s), p50 $(echo "$out" | awk '$1 == "50%" {print $2}'), p99 $(echo "$out" | awk '$1 == "99%" {print $2}')$(echo "$out" | awk '/Non-2xx/ {print ", non-2xx: " $NF}')"
  local sent attempts
  sent=$(echo "$out" | awk '/requests in/ {print $1 * 100}')
  attempts=$(for page in $(seq 1 $(( (people + 499) / 500 ))); do api GET "/api/enrollments?per_page=500&page=$page"; echo; done |
    python3 -c 'import json,sys; print(sum(e["attempts"] for line in sys.stdin if line.strip() for e in json.loads(line)["data"]))')
  echo "   statements sent (answered): $sent; attempts recorded (3 in 4 statements are \`failed\`): $attempts"
  kill $server; wait $server 2>/dev/null || true; server=
  eval "rate_$1=$(awk -v r="$rps" 'BEGIN {printf "%.0f", r * 100}')"
}

for engine in $ENGINES; do measure "$engine"; done
if [ -n "${rate_sqlite:-}" ] && [ -n "${rate_postgres:-}" ]; then
  echo "== PostgreSQL / SQLite, same run: $(ratio "$rate_postgres" "$rate_sqlite") ($rate_postgres / $rate_sqlite statements/s)"
fi
