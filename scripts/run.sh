#!/usr/bin/env bash
# Runs Switchyard on embedded defaults: a private PostgreSQL in .enclii/, then the dashboard on
# http://127.0.0.1:3000. Installs whatever is missing first. Stop with Ctrl-C (PostgreSQL keeps
# running for the next start; `scripts/run.sh stop` stops it).
source "$(dirname "$0")/lib.sh"

if [ "${1:-}" = stop ]; then
  pg_stop pg-dev
  exit 0
fi

ensure_toolchain
pg_start pg-dev
pg_create_db switchyard
export ENCLII_DATABASE__URL="$PG_URL_BASE/switchyard"
export ENCLII_SITE__ROOT="$ROOT/target/site"

cd "$ROOT"
say "building and serving on http://127.0.0.1:3000"
exec cargo leptos serve
