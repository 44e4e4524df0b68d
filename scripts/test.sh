#!/usr/bin/env bash
# Runs every test: unit and integration tests (each integration test gets its own fresh PostgreSQL
# database), then the Playwright end-to-end suite in Chromium against a freshly built server.
# Installs whatever is missing first.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_toolchain
ensure_chromium
ensure_image_tools
registry_build
py_tools
target_prune
pg_start pg-test fast
# sqlx::test creates (and drops) one database per test from this connection.
export DATABASE_URL="$PG_URL_BASE/postgres"

# One local cluster per run (real control plane, simulated nodes, Prometheus), fresh: each test
# works in namespaces of its own prefix. Quick pods and scrapes keep the suite short.
TEST_CLUSTER="$STATE/cluster-test"
local_stack_stop "$TEST_CLUSTER"
rm -rf "$TEST_CLUSTER/etcd" "$TEST_CLUSTER/prometheus-data"
E2E_PORT="$(free_port)"
STACK_NET=245 NODES_READY_DELAY_MS=200 NODES_LOG_INTERVAL_MS=50 PROMETHEUS_SCRAPE_INTERVAL=1s \
  local_stack_start "$TEST_CLUSTER" "127.0.0.1:$E2E_PORT"
export ENCLII_TEST_CLUSTER="$TEST_CLUSTER"
trap 'local_stack_stop "$TEST_CLUSTER"' EXIT

say "unit and integration tests"
# The frontend crate is excluded: its `hydrate` feature must never be unified with the server's `ssr`.
# Without cargo-leptos' `--cfg erase_components`: the server-rendered HTML the tests read differs
# with it (hydration markers), so the site build below compiles the server again with it.
cargo test --workspace --exclude switchyard-frontend --no-fail-fast

# The image first (a debug build: a release image would add a second wasm and server build to every
# run), started from its unpacked root filesystem. Its cargo-leptos build (musl server) rewrites
# target/site, so the end-to-end build comes after it: the server's hash.txt must name that site.
say "the container image (scripts/image.sh --debug, then scripts/test-image.sh)"
IMAGE_REF="$("$ROOT/scripts/image.sh" --debug --tag switchyard:test)"
"$ROOT/scripts/test-image.sh" "$IMAGE_REF"

say "building the site for the end-to-end tests"
cargo leptos build --split
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

dev_secrets_key
dev_registry_key
E2E_DB="e2e_$(date +%s)_$$"
pg_create_db "$E2E_DB"
PORT="$E2E_PORT"
standin_start "$(free_port)" "http://127.0.0.1:$PORT"
LOG="$STATE/e2e-server.log"
# Every browser test signs in from 127.0.0.1: the per-address sign-in limit (tested on its own in
# server/tests/identity.rs) is raised so that the suite is not throttled by itself. The status
# page's targets are this server's own pages on 127.0.0.1, so private targets are allowed.
say "starting switchyard on 127.0.0.1:$PORT (log: .enclii/e2e-server.log)"
ENCLII_LISTEN="127.0.0.1:$PORT" \
ENCLII_PUBLIC_URL="http://127.0.0.1:$PORT" \
ENCLII_DATABASE__URL="$PG_URL_BASE/$E2E_DB" \
ENCLII_SITE__ROOT="$ROOT/target/site" \
ENCLII_CLUSTER__MODE=kube \
ENCLII_CLUSTER__KUBECONFIG="$SWITCHYARD_KUBECONFIG" \
ENCLII_CLUSTER__NAMESPACE_PREFIX="e2e$$-" \
ENCLII_CLUSTER__LABEL="Local cluster (simulated nodes)" \
ENCLII_CANARY__PROMETHEUS_URL="$PROMETHEUS_URL" \
ENCLII_HTTP__METRICS_TOKEN="$SWITCHYARD_METRICS_TOKEN" \
ENCLII_CANARY__INTERVAL_MS=500 \
ENCLII_CANARY__WINDOW_SECS=20 \
ENCLII_CANARY__INCONCLUSIVE_LIMIT=60 \
ENCLII_STATUS__REFRESH_SECS=1 \
ENCLII_STATUS__SERVICE_INTERVAL_SECS=2 \
ENCLII_STATUS__ALLOW_PRIVATE_TARGETS=true \
ENCLII_NOTIFICATIONS__ALLOW_PRIVATE_DESTINATIONS=true \
ENCLII_SESSION__LOGIN_ATTEMPTS_PER_MINUTE=1000 \
  "$TARGET_DIR/debug/switchyard" >"$LOG" 2>&1 &
SERVER_PID=$!
cleanup() {
  local_stack_stop "$TEST_CLUSTER"
  kill "$SERVER_PID" "$STANDIN_PID" 2>/dev/null || true
  # Bounded: the server drains for at most 20 s (SHUTDOWN_GRACE); a run must never hang here.
  # (An exited child stays a zombie until `wait`: look at its state, not just its pid.)
  for _ in $(seq 1 250); do
    state="$(awk '{print $3}' "/proc/$SERVER_PID/stat" 2>/dev/null || true)"
    [ -z "$state" ] || [ "$state" = Z ] && break
    sleep 0.1
  done
  kill -9 "$SERVER_PID" "$STANDIN_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  # A browser process Playwright left behind would keep the run's output open.
  pkill -9 -f "playwright_chromiumdev_profile" 2>/dev/null || true
  timeout 30 "$(pg_bin)/dropdb" -h 127.0.0.1 -p "${PG_URL_BASE##*:}" -U enclii --if-exists --force "$E2E_DB" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/health/live" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG"; echo "switchyard exited before it was ready" >&2; exit 1; }
  sleep 0.2
done

say "end-to-end tests (Playwright, Chromium)"
cd "$ROOT/end2end"
BASE_URL="http://127.0.0.1:$PORT" npx playwright test
