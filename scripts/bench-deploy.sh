#!/usr/bin/env bash
# Deployment benchmark against the local cluster (real kube-apiserver, simulated nodes): time from
# a deploy request to all objects applied and to rollout success, and API calls per deploy, for 1
# service and for BENCH_SERVICES (default 100) deployed at once. Release build. Also reports the
# local stack's cold and warm start and its memory.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
pg_start pg-bench fast
DB="deploy_bench_$$"
pg_create_db "$DB"
BENCH_CLUSTER="$STATE/cluster-bench"
local_stack_stop "$BENCH_CLUSTER"
rm -rf "$BENCH_CLUSTER"
cluster_build
(cargo build --quiet -p enclii-sandbox --bin enclii-nodes)
start=$(date +%s%N)
STACK_NET=246 NODES_READY_DELAY_MS=200 local_stack_start "$BENCH_CLUSTER" 127.0.0.1:9 >/dev/null
cold=$(( ($(date +%s%N) - start) / 1000000 ))
cluster_stop "$BENCH_CLUSTER"
start=$(date +%s%N)
STACK_NET=246 NODES_READY_DELAY_MS=200 local_stack_start "$BENCH_CLUSTER" 127.0.0.1:9 >/dev/null
warm=$(( ($(date +%s%N) - start) / 1000000 ))
say "local stack: cold start ${cold} ms (fresh state, certificates made), warm start ${warm} ms (control plane restarted on its data)"
cleanup() {
  local_stack_stop "$BENCH_CLUSTER"
  "$(pg_bin)/dropdb" -h 127.0.0.1 -p "${PG_URL_BASE##*:}" -U enclii --if-exists "$DB" 2>/dev/null || true
}
trap cleanup EXIT
ENCLII_TEST_CLUSTER="$BENCH_CLUSTER" DATABASE_URL="$PG_URL_BASE/$DB" ENCLII_LOG__FILTER=warn \
  cargo run --quiet --release -p switchyard-server --example deploy_bench
rss=0
for name in etcd kube-apiserver kube-controller-manager kube-scheduler nodes prometheus; do
  kb=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$BENCH_CLUSTER/$name.pid")/status")
  say "RSS $name: $((kb / 1024)) MiB"
  rss=$((rss + kb))
done
say "RSS of the whole local stack after the bench: $((rss / 1024)) MiB"
