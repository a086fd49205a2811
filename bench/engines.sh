# Sourced by the benchmarks: run a phase on each store engine and print them side by side.
#
#   ENGINES="sqlite postgres"   the engines to run (default both)
#   BENCH_POSTGRES_URL          a PostgreSQL server to create benchmark databases on
#                               (default postgres://postgres@127.0.0.1:5432/postgres)
#
# `engine_db ENGINE DIR` sets DB_ARGS, the coachloop flags that name the engine's
# database: a SQLite file in DIR, or a fresh PostgreSQL database (dropped on exit).

ENGINES=${ENGINES:-sqlite postgres}
BENCH_POSTGRES_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
bench_databases=()

engine_db() { # engine dir
  DB_ARGS=(--data-dir "$2")
  if [ "$1" = postgres ]; then
    command -v psql >/dev/null || { echo "psql is needed for the PostgreSQL runs" >&2; exit 1; }
    local name="coachloop_bench_$$_${#bench_databases[@]}"
    psql -q "$BENCH_POSTGRES_URL" -c "CREATE DATABASE $name" >/dev/null
    bench_databases+=("$name")
    DB_ARGS+=(--database-url "${BENCH_POSTGRES_URL%/*}/$name")
  fi
}

drop_bench_databases() {
  for name in "${bench_databases[@]}"; do
    psql -q "$BENCH_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
  done
}

# ratio A B -> A / B with two decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }
