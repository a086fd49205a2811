#!/usr/bin/env bash
# Full compliance evaluation, two builds side by side (issue 17). Each binary serves its
# own copy of the Reporting benchmark's seed with SOC 2, ISO/IEC 27001, PCI DSS and NIST
# CSF enabled; full evaluations (`POST /api/compliance/evaluate`, nothing to change) are
# then alternated, one of each in turn, so that a machine whose speed drifts within
# minutes slows both alike. Prints each build's median and every figure.
#
#   bench/evaluate_ab.sh OLD_BIN NEW_BIN            100,000 people, 15 rounds, both engines
#   bench/evaluate_ab.sh --quick OLD_BIN NEW_BIN    10,000 people, 5 rounds
#   ENGINES=sqlite ROUNDS=9 bench/evaluate_ab.sh …
set -euo pipefail
cd "$(dirname "$0")/.."

people=100000; rounds=${ROUNDS:-15}
if [ "${1:-}" = "--quick" ]; then people=10000; rounds=${ROUNDS:-5}; shift; fi
[ $# -eq 2 ] || { echo "usage: $0 [--quick] OLD_BIN NEW_BIN" >&2; exit 2; }
bins=("$(realpath "$1")" "$(realpath "$2")")
source bench/engines.sh
command -v jq >/dev/null || { echo "jq is needed (apt-get install jq)" >&2; exit 1; }
data=$(mktemp -d /tmp/coachloop-evaluate-ab-XXXXXX)
servers=()
trap 'kill ${servers[@]:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"; drop_bench_databases' EXIT

mkdir -p "$data/seed"
"${bins[0]}" migrate --data-dir "$data/seed" >/dev/null 2>&1
python3 bench/reporting_seed.py "$data/seed/coachloop.db" "$people" 10

for engine in $ENGINES; do
  base=(); token=()
  for i in 0 1; do
    bin=${bins[$i]}; dir=$data/$engine-$i; mkdir -p "$dir"
    engine_db "$engine" "$dir"
    cp "$data/seed/coachloop.db" "$dir/coachloop.db"
    # Each build migrates its own copy (the newer may add migrations the older lacks).
    "$bin" migrate --data-dir "$dir" >/dev/null 2>&1
    if [ "$engine" = postgres ]; then
      "$bin" db copy --from "sqlite://$dir/coachloop.db" --to "${DB_ARGS[3]}" >/dev/null 2>&1
    fi
    token[$i]=$("$bin" tokens create "${DB_ARGS[@]}" --name "ab-$i" --scopes admin 2>/dev/null)
    port=$((18230 + i)); base[$i]="http://127.0.0.1:$port"
    "$bin" serve "${DB_ARGS[@]}" --listen "127.0.0.1:$port" 2> "$dir/server.log" &
    servers+=($!)
    for _ in $(seq 100); do curl -sf "${base[$i]}/healthz" >/dev/null && break; sleep 0.1; done
    for f in soc2 iso27001 pci-dss nist-csf; do
      curl -sf -X PUT -H "Authorization: Bearer ${token[$i]}" "${base[$i]}/api/compliance/frameworks/$f" >/dev/null
    done
    # The first pass after enabling may rewrite rows an older build stored differently.
    curl -sf -X POST -H "Authorization: Bearer ${token[$i]}" "${base[$i]}/api/compliance/evaluate" >/dev/null
  done
  times=("" "")
  for _ in $(seq "$rounds"); do
    for i in 0 1; do
      t=$(curl -sf -X POST -H "Authorization: Bearer ${token[$i]}" "${base[$i]}/api/compliance/evaluate" | jq -r .data.took_ms)
      times[$i]="${times[$i]} $t"
    done
  done
  median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  old=$(echo "${times[0]}" | median); new=$(echo "${times[1]}" | median)
  echo "== $engine full evaluation, $people people, $rounds rounds: old median $old ms, new median $new ms, ratio $(ratio "$new" "$old")"
  echo "   old:${times[0]}"
  echo "   new:${times[1]}"
  kill "${servers[@]}" 2>/dev/null || true; wait "${servers[@]}" 2>/dev/null || true; servers=()
done
