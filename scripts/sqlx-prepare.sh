#!/usr/bin/env bash
# Regenerates .sqlx/, the offline query data that lets the compile-checked queries build without a
# database. Run it after changing a query or a migration, and commit the result.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

pg_start pg-test fast
DB="sqlx_prepare"
PORT="${PG_URL_BASE##*:}"
"$(pg_bin)/dropdb" -h 127.0.0.1 -p "$PORT" -U enclii --if-exists "$DB"
pg_create_db "$DB"
for migration in migrations/*.sql; do
  "$(pg_bin)/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U enclii -d "$DB" -f "$migration"
done

rm -rf .sqlx
mkdir -p .sqlx
# Touching the crates with queries makes cargo re-expand their macros, which write the data.
touch engine/src/lib.rs
DATABASE_URL="$PG_URL_BASE/$DB" SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$ROOT/.sqlx" \
  cargo check --workspace --exclude switchyard-frontend --tests --examples --quiet
say "wrote $(ls .sqlx | wc -l) query files to .sqlx/"
