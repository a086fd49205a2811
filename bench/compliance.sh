#!/usr/bin/env bash
# Compliance benchmark (issue 17). One server over the Reporting benchmark's seed (people
# in an all-users campaign of ten pieces of content, one enrolment each, mixed states),
# with SOC 2, ISO/IEC 27001, PCI DSS and NIST CSF enabled (12 controls over 4
# requirements), prints:
#   (a) enabling them: the first evaluation of everyone, every row written;
#   (b) a full evaluation (`POST /api/compliance/evaluate`): everything read and evaluated
#       again, nothing to write — the server's own time;
#   (c) an OSCAL assessment-results export of one control (SOC 2 CC1.4) over a year;
#   (d) a completion's request (an xAPI statement; the person's status is updated in its
#       transaction): p50 / p99 over COMPLETIONS requests, one at a time, and that the
#       status did change.
#
# On each store engine in turn (ENGINES, see bench/engines.sh): the seed is written to
# SQLite and moved to PostgreSQL with `coachloop db copy`.
#
#   bench/compliance.sh           100,000 people, 1,000,000 enrolments
#   bench/compliance.sh --quick   10,000 people, 100,000 enrolments (under a minute once built)
set -euo pipefail
cd "$(dirname "$0")/.."

people=100000
if [ "${1:-}" = "--quick" ]; then people=10000; fi
completions=${COMPLETIONS:-200}
# FRAMEWORKS="" measures the completions with nothing enabled (what compliance adds).
frameworks=${FRAMEWORKS-soc2 iso27001 pci-dss nist-csf}
port=${BENCH_PORT:-18185}

source bench/engines.sh
command -v jq >/dev/null || { echo "jq is needed (apt-get install jq)" >&2; exit 1; }
[ -n "${BENCH_BIN:-}" ] || cargo build --release -q -p coachloop
bin=${BENCH_BIN:-target/release/coachloop}
data=$(mktemp -d /tmp/coachloop-compliance-bench-XXXXXX)
trap 'kill ${server:-} 2>/dev/null || true; wait ${server:-} 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$data"; drop_bench_databases' EXIT

# The seed is kept apart: each engine starts from it untouched.
mkdir -p "$data/seed"
$bin migrate --data-dir "$data/seed" >/dev/null 2>&1
start=$(date +%s)
python3 bench/reporting_seed.py "$data/seed/coachloop.db" "$people" 10
echo "== seeded in $(( $(date +%s) - start )) s"
export BASE="http://127.0.0.1:$port"

ms() { # command... -> milliseconds it took
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}

for engine in $ENGINES; do
  echo "#### $engine"
  mkdir -p "$data/$engine"
  engine_db "$engine" "$data/$engine"
  if [ "$engine" = postgres ]; then
    $bin db copy --from "sqlite://$data/seed/coachloop.db" --to "${DB_ARGS[3]}" 2>/dev/null | tail -1
  else
    cp "$data/seed/coachloop.db" "$data/$engine/coachloop.db"
  fi
  admin=$($bin tokens create "${DB_ARGS[@]}" --name "bench-admin-$engine" --scopes admin 2>/dev/null)
  lms=$($bin tokens create "${DB_ARGS[@]}" --name "bench-lms-$engine" --scopes events:write 2>/dev/null)
  $bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$port" 2> "$data/$engine/server.log" &
  server=$!
  for _ in $(seq 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
  auth=(-H "Authorization: Bearer $admin")

  total=0
  for framework in $frameworks; do
    took=$(ms curl -sf -X PUT "${auth[@]}" "$BASE/api/compliance/frameworks/$framework")
    total=$((total + took))
  done
  controls=$(curl -sf "${auth[@]}" "$BASE/api/compliance/controls" | jq '.data | length')
  standings=$(curl -sf "${auth[@]}" "$BASE/api/compliance/people?per_page=1" | jq '.meta.count')
  echo "== enabling ${frameworks:-no frameworks} ($controls controls): $total ms, $standings standings written"

  for round in 1 2 3; do
    curl -sf -X POST "${auth[@]}" "$BASE/api/compliance/evaluate" \
      | jq -r --arg r "$round" '"== full evaluation " + $r + ": " + (.data.took_ms|tostring) + " ms, " + (.data.changed|tostring) + " rows changed"'
  done

  if [ -n "$frameworks" ]; then
    from=$(date -u -d '1 year ago' +%F); to=$(date -u +%F)
    took=$(ms curl -sf "${auth[@]}" -o "$data/oscal.json" \
      "$BASE/api/compliance/evidence?framework=soc2&control=CC1.4&from=$from&to=$to&format=oscal")
    echo "== OSCAL export of SOC 2 CC1.4 ($from to $to): $took ms, $(( $(stat -c %s "$data/oscal.json") / 1024 )) KiB"
  fi

  # Open enrolments of distinct people, finished one request at a time.
  open=$(curl -sf "${auth[@]}" "$BASE/api/enrollments?status=Not%20Started&per_page=500" \
    | jq -r --argjson n "$completions" \
      '.data | unique_by(.user_id) | .[:$n] | .[] | "\(.user_id) \(.email) \(.content_title)"')
  slugs=$(curl -sf "${auth[@]}" "$BASE/api/content?per_page=500" | jq -c '.data | map({(.title): .slug}) | add')
  times=()
  changed=0
  while read -r user email title; do
    [ -n "$user" ] || continue
    slug=$(jq -r --arg t "$title" '.[$t]' <<< "$slugs")
    before=$(curl -sf "${auth[@]}" "$BASE/api/compliance/people?user_id=$user&per_page=10" | jq -c '[.data[].status]')
    t=$(curl -s -o /dev/null -w '%{time_total}' -X POST -H "Authorization: Bearer $lms" \
      -H 'Content-Type: application/json' "$BASE/xapi/statements" \
      -d "{\"actor\":{\"mbox\":\"mailto:$email\"},\"verb\":{\"id\":\"http://adlnet.gov/expapi/verbs/completed\"},\"object\":{\"id\":\"https://lms.example.com/activities/$slug\"}}")
    times+=("$t")
    after=$(curl -sf "${auth[@]}" "$BASE/api/compliance/people?user_id=$user&per_page=10" | jq -c '[.data[].status]')
    [ "$before" = "$after" ] || changed=$((changed + 1))
  done <<< "$open"
  printf '%s\n' "${times[@]}" | sort -n | awk -v changed="$changed" '
    { t[NR] = $1 * 1000 }
    END { if (NR == 0) { print "== no open enrolments to finish"; exit }
          p50 = t[int((NR + 1) * 0.5)]; p99 = t[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1]
          printf "== a completion with its status update, %d requests: p50 %.1f ms, p99 %.1f ms (%d changed a status)\n", NR, p50, p99, changed }'

  kill $server; wait $server 2>/dev/null || true
  server=''
done
