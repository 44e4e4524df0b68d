#!/usr/bin/env bash
# Runs Switchyard on embedded defaults: a private PostgreSQL in .enclii/, the Plinto stand-in on
# 127.0.0.1:4444 to sign in with, the sandbox cluster in-process, then the dashboard on
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
# No cluster configured: deploy to the built-in sandbox (the dashboard says so on every page).
export ENCLII_CLUSTER__MODE="${ENCLII_CLUSTER__MODE:-sandbox}"
dev_secrets_key
standin_start 4444 "http://127.0.0.1:3000"
trap 'kill "$STANDIN_PID" 2>/dev/null || true' EXIT

cd "$ROOT"
say "building and serving on http://127.0.0.1:3000"
cargo leptos serve --split
