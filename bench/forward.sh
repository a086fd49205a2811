#!/usr/bin/env bash
# `coachloop forward` benchmark (issue 19), on each store engine of the receiver
# (ENGINES, see bench/engines.sh):
#   1. throughput: an audit log of N records forwarded from a file to coachloop on
#      loopback (`forward --once`: read, commit to the outbox, deliver, exit); records/s
#      from the forwarder's start to its exit (target >= 50,000/s);
#   2. an outage: the same again into another account, with the receiver stopped
#      (SIGKILL) once half is delivered and started again OUTAGE seconds later; then the
#      records sent against the events the receiver stored (every one exactly once).
#
#   bench/forward.sh           1,000,000 records, a 30 s outage
#   bench/forward.sh --quick   100,000 records, a 5 s outage (about a minute, both engines)
#   FORWARD_PARALLEL=N         requests in flight (default 8, as `forward`)
set -euo pipefail
cd "$(dirname "$0")/.."

records=1000000; outage=30
if [ "${1:-}" = "--quick" ]; then records=100000; outage=5; fi
port=${BENCH_PORT:-18184}
parallel=${FORWARD_PARALLEL:-8}

source bench/engines.sh
for tool in curl awk; do
  command -v $tool >/dev/null || { echo "$tool is needed: apt-get install -y $tool" >&2; exit 1; }
done
[ -n "${BENCH_BIN:-}" ] || cargo build --release -q -p coachloop
bin=${BENCH_BIN:-target/release/coachloop}
data=$(mktemp -d /tmp/coachloop-forward-bench-XXXXXX)
trap 'kill ${server:-} ${forwarder:-} 2>/dev/null || true; wait ${server:-} ${forwarder:-} 2>/dev/null || true; rm -rf "$data"; drop_bench_databases' EXIT
base="http://127.0.0.1:$port"
ms() { date +%s%3N; }

# N audit-log records (the reference's shape), uuids PREFIX-i, dated from now on.
audit_log() { # prefix file
  awk -v n="$records" -v p="$1" -v t="$(ms)" 'BEGIN {
    split("user_typed_compromised_password user_typed_weak_password user_dismissed_vault_phishing_alert user_entered_credential_phishing_website_ai user_received_vault_phishing_alert", types, " ")
    for (i = 0; i < n; i++)
      printf "{\"uuid\":\"%s-%d\",\"team_id\":1,\"category\":\"user_settings\",\"log_type\":\"%s\",\"date_time\":%d,\"properties\":{\"domain_url\":\"example.com\",\"login_status\":\"logged_in\"},\"author_login\":\"p%d@acme.example\",\"schema_version\":\"1.0.0\"}\n", p, i, types[i % 5 + 1], t + i, i % 5000
  }' > "$2"
}

stored() { # token
  curl -s -H "Authorization: Bearer $1" "$base/events?per_page=1" |
    sed -n 's/.*"count":\([0-9]*\).*/\1/p'
}

start_server() { # engine
  $bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$port" 2>>"$data/$1/server.log" &
  server=$!
  for _ in $(seq 300); do curl -sf "$base/healthz" >/dev/null && return; sleep 0.1; done
  echo "the server did not start; see $data/$1/server.log" >&2; exit 1
}

forward() { # engine name token-file log [extra]
  $bin forward --target "$base" --token-file "$3" --file "$4" --once \
    --state-dir "$data/$1/$2-state" --backfill-since 2020-01-01 --parallel "$parallel" 2>>"$data/$1/$2.log"
}

declare -A rate sent got dead
measure() { # engine
  echo "#### $1"
  mkdir -p "$data/$1"
  engine_db "$1" "$data/$1"
  $bin migrate "${DB_ARGS[@]}" >/dev/null 2>&1 || true
  $bin accounts create outage "${DB_ARGS[@]}" >/dev/null 2>&1
  $bin tokens create "${DB_ARGS[@]}" --name "bench-forward-$$" --scopes events:write,events:read 2>/dev/null > "$data/$1/token"
  $bin tokens create "${DB_ARGS[@]}" --account outage --name "bench-outage-$$" --scopes events:write,events:read 2>/dev/null > "$data/$1/outage-token"
  audit_log a "$data/$1/a.jsonl"
  audit_log b "$data/$1/b.jsonl"
  start_server "$1"

  echo "== $records records from a file to coachloop on loopback"
  local start elapsed
  start=$(ms)
  forward "$1" a "$data/$1/token" "$data/$1/a.jsonl"
  elapsed=$(( $(ms) - start ))
  rate[$1]=$(awk -v n="$records" -v ms="$elapsed" 'BEGIN {printf "%.0f", n / (ms / 1000)}')
  echo "   $records records in $elapsed ms: ${rate[$1]} records/s; the receiver holds $(stored "$(cat "$data/$1/token")")"

  echo "== the same into another account, the receiver stopped for $outage s once half is delivered"
  forward "$1" b "$data/$1/outage-token" "$data/$1/b.jsonl" &
  forwarder=$!
  local token; token=$(cat "$data/$1/outage-token")
  while [ "$(stored "$token")" -lt $((records / 2)) ]; do sleep 0.2; done
  kill -KILL $server; wait $server 2>/dev/null || true
  echo "   receiver killed at $(date +%T) with a batch in flight; back in $outage s"
  sleep "$outage"
  start_server "$1"
  wait $forwarder; forwarder=
  sent[$1]=$records
  got[$1]=$(stored "$token")
  dead[$1]=$($bin forward status --json --state-dir "$data/$1/b-state" | sed -n 's/.*"dead": \([0-9]*\).*/\1/p')
  echo "   sent ${sent[$1]}, stored at the receiver ${got[$1]} (unique external_ids), dead letters ${dead[$1]}"
  $bin forward status --state-dir "$data/$1/b-state" | sed 's/^/   /'
  kill $server; wait $server 2>/dev/null || true
}

for engine in $ENGINES; do measure "$engine"; done

echo
echo "== coachloop forward, $records records (target >= 50000 records/s; every record exactly once after a ${outage} s outage)"
printf '%-10s %12s %10s %10s %6s\n' engine "records/s" sent stored dead
for engine in $ENGINES; do
  printf '%-10s %12s %10s %10s %6s\n' "$engine" "${rate[$engine]}" "${sent[$engine]}" "${got[$engine]}" "${dead[$engine]}"
done
