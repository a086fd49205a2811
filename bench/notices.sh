#!/usr/bin/env bash
# Notice benchmark (issue 4), one server with a local SMTP server (aiosmtpd):
#   1. event -> enrolment -> webhook: after one warm-up event (the first event after a
#      group change loads the engine; its figure is printed apart), events at a fixed
#      1,000/s, each for a new person, each making them join a smart group an
#      auto-enrolling campaign targets; prints p50/p99 of (enrollment.created webhook
#      received - event POST sent);
#   2. 10,000 enrolment emails (a campaign for 10,000 people) drained to the SMTP server.
#
# Both phases run on each store engine in turn (ENGINES, see bench/engines.sh);
# ENGINES=postgres2 runs phase 1 on two nodes of one PostgreSQL database, the events
# split between them (phase 2 on one).
#
#   bench/notices.sh           1,000 events/s for 10 s; 10,000 emails
#   bench/notices.sh --quick   1,000 events/s for 3 s; 2,000 emails (about a minute per engine)
#   LATENCY_SMTP=0 bench/notices.sh   phase 1 without the local SMTP server
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10; emails=10000
if [ "${1:-}" = "--quick" ]; then seconds=3; emails=2000; fi
rate=${RATE:-1000}
port=${BENCH_PORT:-18183}
smtp_port=${BENCH_SMTP_PORT:-18125}

source bench/engines.sh
python3 -c 'import aiosmtpd' 2>/dev/null || { echo "aiosmtpd is needed: python3 -m pip install aiosmtpd" >&2; exit 1; }
[ -n "${BENCH_BIN:-}" ] || cargo build --release -q -p coachloop
cargo build --release -q -p coachloop-server --example notice_bench
bin=${BENCH_BIN:-target/release/coachloop}
driver=target/release/examples/notice_bench
data=$(mktemp -d /tmp/coachloop-notice-bench-XXXXXX)
trap 'kill ${server:-} ${second:-} $sink 2>/dev/null || true; wait ${server:-} $sink 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$data"; drop_bench_databases' EXIT

python3 crates/server/tests/support/smtp_sink.py "$smtp_port" "$data/mail.jsonl" > "$data/sink.log" &
sink=$!

phase_people() { # first last -> CSV rows
  for ((i = $1; i <= $2; i++)); do echo "user$i@bench.example,User$i"; done
}
measure() { # engine (postgres2: PostgreSQL, two nodes)
echo "#### $1"
mkdir -p "$data/$1"
engine_db "${1%2}" "$data/$1"
{ echo "email,first_name"; echo "warmup@bench.example,Warmup"; phase_people 1 "$(( rate * seconds ))"; } > "$data/latency.csv"
$bin users import "${DB_ARGS[@]}" "$data/latency.csv" >/dev/null
export ADMIN=$($bin tokens create "${DB_ARGS[@]}" --name bench-admin --scopes admin 2>/dev/null)
export EVENTS=$($bin tokens create "${DB_ARGS[@]}" --name bench --scopes events:write 2>/dev/null)
export BASE="http://127.0.0.1:$port"
# The driver's webhook receiver listens on loopback, which coachloop refuses to send to
# unless allowed.
export COACHLOOP_ALLOW_PRIVATE_DESTINATIONS=127.0.0.0/8

# LATENCY_SMTP=0: phase 1 without an SMTP server (its email jobs are skipped), to see
# what the local Python SMTP server's share of the two cores costs the webhook latency.
if [ "${LATENCY_SMTP:-1}" = 1 ]; then
  export COACHLOOP_SMTP_HOST=127.0.0.1 COACHLOOP_SMTP_PORT=$smtp_port COACHLOOP_SMTP_TLS=none
fi
$bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$port" 2> "$data/server.log" &
server=$!
for _ in $(seq 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
unset EVENTS_BASES
if [ "$1" = postgres2 ]; then
  second_base="http://127.0.0.1:$((port + 1))"
  $bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$((port + 1))" 2> "$data/server2.log" &
  second=$!
  for _ in $(seq 100); do curl -sf "$second_base/healthz" >/dev/null && break; sleep 0.1; done
  export EVENTS_BASES="$BASE,$second_base"
  echo "   two nodes on one database, the events split between them"
fi

echo "== event -> enrolment -> webhook, $rate events/s for $seconds s"
$driver latency $rate $seconds

echo "== $emails enrolment emails drained to a local SMTP server"
# A second server on a fresh data directory with $emails people.
kill $server ${second:-}; wait $server ${second:-} || true; second=''
unset COACHLOOP_SMTP_HOST COACHLOOP_SMTP_PORT COACHLOOP_SMTP_TLS
data2="$data/$1/drain"; mkdir -p "$data2"
engine_db "$1" "$data2"
{ echo "email,first_name"; phase_people 1 "$emails"; } > "$data2/people.csv"
$bin users import "${DB_ARGS[@]}" "$data2/people.csv" >/dev/null
export ADMIN=$($bin tokens create "${DB_ARGS[@]}" --name bench-admin --scopes admin 2>/dev/null)
: > "$data/mail.jsonl"
COACHLOOP_SMTP_HOST=127.0.0.1 COACHLOOP_SMTP_PORT=$smtp_port COACHLOOP_SMTP_TLS=none \
  $bin serve "${DB_ARGS[@]}" --listen "127.0.0.1:$port" 2>> "$data/server.log" &
server=$!
for _ in $(seq 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
$driver drain "$data/mail.jsonl" $emails
echo "== server memory: peak RSS $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' /proc/$server/status)"
kill $server; wait $server 2>/dev/null || true
}

for engine in $ENGINES; do measure "$engine"; done
