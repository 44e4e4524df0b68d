#!/usr/bin/env bash
# Webhook benchmark against a real switchyard process (release build): deliveries accepted per
# second with the acknowledgement latency, then a burst of 1,000 with the server killed and
# restarted mid-way, after which every delivery must be accounted for exactly once.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
pg_start pg-bench fast
DB="webhook_bench_$$"
pg_create_db "$DB"
trap '"$(pg_bin)/dropdb" -h 127.0.0.1 -p "${PG_URL_BASE##*:}" -U enclii --if-exists "$DB" 2>/dev/null || true' EXIT
cargo build --quiet --release -p switchyard-server --bin switchyard --example webhook_bench
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
DATABASE_URL="$PG_URL_BASE/$DB" SWITCHYARD_BIN="$TARGET_DIR/release/switchyard" \
  "$TARGET_DIR/release/examples/webhook_bench"
