#!/usr/bin/env bash
# Copy benchmark (`coachloop db copy`): the groups benchmark's data in SQLite, copied to a
# fresh PostgreSQL database; prints the table of counts and checksums and the rate.
#   1. import the people (`coachloop users import`, as bench/groups.sh does) and write the
#      events straight into the file (bench/copy_seed.py, shaped as bench/groups_seed.lua
#      sends them; or, with SEED_DIR, start from a data directory bench/groups.sh kept);
#   2. create an empty PostgreSQL database, `coachloop db copy` into it, drop it.
#
#   bench/copy.sh             100,000 people, 10,000,000 events
#   QUICK=1 bench/copy.sh     5,000 people, 300,000 events (under a minute once built)
#   SEED_DIR=dir bench/copy.sh   copy the coachloop.db of dir (a bench/groups.sh SEED_DIR,
#                                or one SEED_KEEP kept) instead of seeding
#   SEED_KEEP=dir bench/copy.sh  seed, and keep the seeded coachloop.db in dir for SEED_DIR
#                                (seeding 10 M events takes about 6 minutes)
#
# BENCH_BIN=path measures that build of coachloop instead of building one (to compare two
# builds on the same data: SEED_DIR=dir BENCH_BIN=old …, then SEED_DIR=dir BENCH_BIN=new …).
#
# PostgreSQL: BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432, a server where
# this user may create databases).
set -euo pipefail
cd "$(dirname "$0")/.."

people=100000; events=10000000
if [ -n "${QUICK:-}" ] || [ "${1:-}" = "--quick" ]; then people=5000; events=300000; fi
server=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
name=coachloop_copy_bench_$$

for tool in psql python3; do
  command -v $tool >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
[ -n "${BENCH_BIN:-}" ] || cargo build --release -q -p coachloop
bin=${BENCH_BIN:-target/release/coachloop}
data=$(mktemp -d /tmp/coachloop-copy-bench-XXXXXX)
trap 'psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $name" 2>/dev/null || true; rm -rf "$data"' EXIT
ms() { date +%s%3N; }

if [ -n "${SEED_DIR:-}" ]; then
  echo "== copying the seeded data of $SEED_DIR"
  cp -a "$SEED_DIR/coachloop.db" "$data/"
else
  echo "== seeding $people people and $events events"
  start=$(ms)
  $bin migrate --data-dir "$data" >/dev/null
  {
    echo "email,first_name,department"
    for ((i = 1; i <= people; i++)); do echo "user$i@bench.example,User$i,Dept$((i % 10))"; done
  } > "$data/people.csv"
  $bin users import --data-dir "$data" "$data/people.csv" >/dev/null
  python3 bench/copy_seed.py "$data/coachloop.db" "$events" 2>/dev/null
  echo "   seeded in $(( ($(ms) - start) / 1000 )) s; $(du -h "$data/coachloop.db" | cut -f1) of SQLite"
  if [ -n "${SEED_KEEP:-}" ]; then
    mkdir -p "$SEED_KEEP" && cp -a "$data/coachloop.db" "$SEED_KEEP/"
    echo "   kept in $SEED_KEEP (SEED_DIR=$SEED_KEEP $0 copies it again)"
  fi
fi

psql -q "$server/postgres" -c "CREATE DATABASE $name"
echo "== coachloop db copy: SQLite -> PostgreSQL"
start=$(ms)
$bin db copy --from "sqlite://$data/coachloop.db" --to "$server/$name"
echo "== $(( $(ms) - start )) ms wall in all (migrations, copy, check, commit, ANALYZE)"
