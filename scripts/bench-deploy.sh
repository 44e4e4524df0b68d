#!/usr/bin/env bash
# Deployment benchmark against the sandbox cluster: time from a deploy request to all objects
# applied and to rollout success, and API calls per deploy, for 1 service and for BENCH_SERVICES
# (default 100) deployed at once. Release build.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
pg_start pg-bench fast
DB="deploy_bench_$$"
pg_create_db "$DB"
trap '"$(pg_bin)/dropdb" -h 127.0.0.1 -p "${PG_URL_BASE##*:}" -U enclii --if-exists "$DB" 2>/dev/null || true' EXIT
DATABASE_URL="$PG_URL_BASE/$DB" ENCLII_LOG__FILTER=warn cargo run --quiet --release -p switchyard-server --example deploy_bench
