#!/usr/bin/env bash
# Console benchmark (issue 21): every console page rendered on the server, with 100,000
# people and 10,000,000 events, p50/p95 per page (bench/console_pages.py, 40 timed
# requests a page after 3 untimed), on each engine (ENGINES, bench/engines.sh). The
# dashboard's first view on a node (which reads the success metrics it then keeps for
# five minutes) is timed on its own first.
#   1. seed SQLite: import the people, write the events straight into the file
#      (bench/copy_seed.py), an administrator with a password; PostgreSQL gets a copy
#      (`coachloop db copy`);
#   2. serve; through the API create two smart groups and an auto-enrolling campaign on
#      one (their backfill over the events is waited for), map nothing; then time pages.
#
#   bench/console.sh            100,000 people, 10,000,000 events
#   QUICK=1 bench/console.sh    5,000 people, 300,000 events (about a minute once built)
#   SEED_DIR=dir                use (or, when empty, fill) a seeded coachloop.db there
#   BENCH_BIN=path              measure that build instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/engines.sh

people=100000; events=10000000; rounds=40
if [ -n "${QUICK:-}" ] || [ "${1:-}" = "--quick" ]; then people=5000; events=300000; rounds=20; fi
[ -n "${BENCH_BIN:-}" ] || cargo build --release -q -p coachloop
bin=${BENCH_BIN:-target/release/coachloop}
data=$(mktemp -d /tmp/coachloop-console-bench-XXXXXX)
server=
cleanup() { [ -z "$server" ] || kill $server 2>/dev/null || true; drop_bench_databases; rm -rf "$data"; }
trap cleanup EXIT
ms() { date +%s%3N; }
password="console bench password"

seed=${SEED_DIR:-$data/seed}
mkdir -p "$seed"
if [ ! -f "$seed/coachloop.db" ]; then
  echo "== seeding $people people and $events events"
  start=$(ms)
  $bin migrate --data-dir "$seed" >/dev/null
  {
    echo "email,first_name,last_name,department"
    for ((i = 1; i <= people; i++)); do echo "user$i@bench.example,User$i,Bench,Dept$((i % 10))"; done
  } > "$seed/people.csv"
  $bin users import --data-dir "$seed" "$seed/people.csv" >/dev/null
  python3 bench/copy_seed.py "$seed/coachloop.db" "$events" 2>/dev/null
  echo "   seeded in $(( ($(ms) - start) / 1000 )) s"
fi

measure() { # engine
  echo "#### $1"
  mkdir -p "$data/$1"
  engine_db "$1" "$data/$1"
  if [ "$1" = postgres ]; then
    start=$(ms)
    # A kept seed may come from an older build: brought to this one's migrations first.
    $bin migrate --data-dir "$seed" >/dev/null
    $bin db copy --from "sqlite://$seed/coachloop.db" --to "${DB_ARGS[3]}" >"$data/copy.log" 2>&1 || { tail -5 "$data/copy.log"; exit 1; }
    echo "== copied the seed to PostgreSQL in $(( ($(ms) - start) / 1000 )) s"
  else
    cp -a "$seed/coachloop.db" "$data/$1/"
  fi
  echo "$password" | $bin admins create "${DB_ARGS[@]}" --email ada@bench.example >/dev/null 2>&1
  admin=$($bin tokens create "${DB_ARGS[@]}" --name "bench-$RANDOM" --scopes admin 2>/dev/null)
  port=$((20000 + RANDOM % 20000)); base="http://127.0.0.1:$port"
  $bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$port" >"$data/$1/server.log" 2>&1 &
  server=$!
  for _ in $(seq 600); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.5; done
  api() { curl -sf -X "$1" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' ${3:+-d "$3"} "$base$2"; }
  start=$(ms)
  g1=$(api POST /api/groups '{"name":"Compromised twice","criteria":{"event":{"type":"dashlane_user_typed_compromised_password","count":{"at_least":2},"within":"P3M"}}}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
  api POST /api/groups '{"name":"Weak passwords in Dept1","criteria":{"all":[{"event":{"type":"dashlane_user_typed_weak_password","within":"P1M"}},{"user":{"attribute":"department","equals":"Dept1"}}]}}' >/dev/null
  content=$(api GET '/api/content?per_page=1' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
  campaign=$(api POST /api/campaigns "{\"name\":\"Compromised\",\"content\":[$content],\"groups\":[$g1],\"relative_duration\":\"P7D\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
  echo "== two smart groups and a campaign in $(( ($(ms) - start) / 1000 )) s"
  start=$(ms)
  api PUT /api/compliance/frameworks/soc2 >/dev/null
  echo "== SOC 2 enabled (everyone evaluated) in $(( ($(ms) - start) / 1000 )) s"
  member=$(api GET "/api/groups/$g1/members?per_page=1" | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d[0]["user_id"] if d else 1)')
  echo "== the dashboard's first view on this node (its success metrics read, not kept)"
  WARMUP=0 python3 bench/console_pages.py "$base" ada@bench.example "$password" 1 /console/ | tail -1
  UNTIL_READ=1 python3 bench/console_pages.py "$base" ada@bench.example "$password" 1 /console/
  echo "== every page, after 3 untimed views each"
  python3 bench/console_pages.py "$base" ada@bench.example "$password" "$rounds" \
    /console/ /console/people "/console/people?q=user4242" "/console/people?department=Dept3&page=200" \
    "/console/people/$member" /console/unmatched /console/groups "/console/groups/$g1" \
    "/console/groups/$g1?page=20" "/console/groups/$g1/history" "/console/groups/$g1/history?page=20" \
    /console/groups/new /console/content "/console/content/$content" /console/content/new \
    /console/campaigns "/console/campaigns/$campaign" "/console/campaigns/$campaign?page=20" \
    "/console/campaigns/$campaign/notices" /console/integrations /console/compliance \
    "/console/compliance?status=at_risk&page=100" /console/compliance/controls/soc2/CC1.4 \
    /console/audit
  kill $server; wait $server 2>/dev/null || true; server=
}

for engine in $ENGINES; do measure "$engine"; done
