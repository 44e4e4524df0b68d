#!/usr/bin/env bash
# Notifications outbox benchmark against a real switchyard process (release build): events recorded
# per second (each in its own transaction), then delivered end to end to a signed webhook receiver on
# loopback, with each event's commit-to-arrival latency; every event must arrive exactly once.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
pg_start pg-bench fast
DB="notify_bench_$$"
pg_create_db "$DB"
trap '"$(pg_bin)/dropdb" -h 127.0.0.1 -p "${PG_URL_BASE##*:}" -U enclii --if-exists "$DB" 2>/dev/null || true' EXIT
cargo build --quiet --release -p switchyard-server --bin switchyard --example notify_bench
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
DATABASE_URL="$PG_URL_BASE/$DB" SWITCHYARD_BIN="$TARGET_DIR/release/switchyard" \
  "$TARGET_DIR/release/examples/notify_bench"
