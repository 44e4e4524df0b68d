#!/usr/bin/env bash
# Benchmark on loopback, in one run: requests/s and p50/p99 latency of a server-rendered page, a
# static asset and a trivial handler (the ceiling), their ratios, the compressed bytes a first visit
# downloads (JS + WASM + CSS) and the server's peak RSS. Builds a release first.
#   BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 32)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_toolchain
command -v wrk >/dev/null 2>&1 || apt_install wrk
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"

say "building a release (server + wasm, precompressed assets)"
cargo leptos build --release --precompress
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

pg_start pg-bench fast
BENCH_DB="bench_$$"
pg_create_db "$BENCH_DB"
PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
ENCLII_LISTEN="127.0.0.1:$PORT" ENCLII_PUBLIC_URL="$BASE" \
ENCLII_DATABASE__URL="$PG_URL_BASE/$BENCH_DB" ENCLII_SITE__ROOT="$ROOT/target/site" \
ENCLII_LOG__FILTER=warn ENCLII_CLUSTER__MODE=sandbox \
  "$TARGET_DIR/release/switchyard" >"$STATE/bench-server.log" 2>&1 &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  "$(pg_bin)/dropdb" -h 127.0.0.1 -p "${PG_URL_BASE##*:}" -U enclii --if-exists "$BENCH_DB" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "$BASE/health/live" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { cat "$STATE/bench-server.log" >&2; echo "the server exited" >&2; exit 1; }
  sleep 0.1
done

# The hashed asset names come from the page itself, as a browser would find them.
PAGE="$(curl -fsS "$BASE/")"
ASSETS="$(grep -oE '/pkg/[^"'"'"' ]+\.(css|js|wasm)' <<<"$PAGE" | sort -u)"
CSS="$(grep -E '\.css$' <<<"$ASSETS" | head -n 1)"
JS="$(grep -E '\.js$' <<<"$ASSETS" | head -n 1)"
WASM="$(grep -E '\.wasm$' <<<"$ASSETS" | head -n 1)"

bytes() { curl -fsS -H 'Accept-Encoding: br, gzip' -o /dev/null -w '%{size_download}' "$BASE$1"; }
CSS_B="$(bytes "$CSS")"; JS_B="$(bytes "$JS")"; WASM_B="$(bytes "$WASM")"
TOTAL_B=$((CSS_B + JS_B + WASM_B))

run() { # name path
  local out
  out="$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -H 'Accept-Encoding: br, gzip' "$BASE$2")"
  local rps p50 p99
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  printf '%-22s %-40s %10s req/s   p50 %8s   p99 %8s\n' "$1" "$2" "$rps" "$p50" "$p99" >&2
  echo "$rps"
}

say "load: $CONNECTIONS connections, ${SECONDS_PER_RUN}s each, wrk on loopback"
PAGE_RPS="$(run "page (SSR)" "/")"
ASSET_RPS="$(run "static asset" "$CSS")"
CEIL_RPS="$(run "trivial handler" "/health/live")"
RSS_KB="$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")"

python3 - "$PAGE_RPS" "$ASSET_RPS" "$CEIL_RPS" <<'PY'
import sys
page, asset, ceil = map(float, sys.argv[1:])
print(f"ratios: page/ceiling {page/ceil:.2f}   asset/ceiling {asset/ceil:.2f}   page/asset {page/asset:.2f}")
PY
echo "first visit (compressed): css ${CSS_B} B + js ${JS_B} B + wasm ${WASM_B} B = $((TOTAL_B / 1024)) KiB (budget 200 KiB)"
echo "server peak RSS: $((RSS_KB / 1024)) MiB (budget 64 MiB)"
