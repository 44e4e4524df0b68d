#!/usr/bin/env bash
# List latency at scale: 10,000 services and 1,000,000 deployments (BENCH_SERVICES,
# BENCH_DEPLOYMENTS_PER_SERVICE) in a fresh database, then the dashboard's and CLI's lists,
# first pages and deep keyset pages. Release build.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
pg_start pg-bench fast
DB="scale_bench_$$"
pg_create_db "$DB"
trap '"$(pg_bin)/dropdb" -h 127.0.0.1 -p "${PG_URL_BASE##*:}" -U enclii --if-exists "$DB" 2>/dev/null || true' EXIT
DATABASE_URL="$PG_URL_BASE/$DB" ENCLII_LOG__FILTER=warn cargo run --quiet --release -p switchyard-server --example scale_bench
