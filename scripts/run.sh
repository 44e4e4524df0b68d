#!/usr/bin/env bash
# Runs Switchyard on embedded defaults: a private PostgreSQL in .enclii/, the Plinto stand-in on
# 127.0.0.1:4444 to sign in with, a local Kubernetes cluster (real control plane, simulated nodes,
# scripts/cluster.sh) with Prometheus, then the dashboard on http://127.0.0.1:3000. Installs
# whatever is missing first. Stop with Ctrl-C (PostgreSQL and the cluster keep running for the next
# start; `scripts/run.sh stop` stops everything the project started).
source "$(dirname "$0")/lib.sh"

if [ "${1:-}" = stop ]; then
  pg_stop pg-dev
  local_stack_stop "$STATE/cluster"
  if [ -f "$STATE/standin-4444.pid" ]; then kill "$(cat "$STATE/standin-4444.pid")" 2>/dev/null || true; fi
  exit 0
fi

ensure_toolchain
pg_start pg-dev
pg_create_db switchyard
export ENCLII_DATABASE__URL="$PG_URL_BASE/switchyard"
export ENCLII_SITE__ROOT="$ROOT/target/site"
# The local cluster, used as any cluster would be: through a kubeconfig of Switchyard's own
# ServiceAccount (deploy/rbac.yaml), never as admin. The dashboard says which cluster it is.
local_stack_start "$STATE/cluster" 127.0.0.1:3000
install -m 600 "$SWITCHYARD_KUBECONFIG" "$STATE/kubeconfig"
export ENCLII_CLUSTER__MODE=kube
export ENCLII_CLUSTER__KUBECONFIG="$STATE/kubeconfig"
export ENCLII_CLUSTER__LABEL="Local cluster (simulated nodes)"
export ENCLII_CANARY__PROMETHEUS_URL="$PROMETHEUS_URL"
export ENCLII_HTTP__METRICS_TOKEN="$SWITCHYARD_METRICS_TOKEN"
# Status targets and notification receivers here are on this machine (127.0.0.1); a shared
# platform keeps them refused.
export ENCLII_STATUS__ALLOW_PRIVATE_TARGETS=true
export ENCLII_NOTIFICATIONS__ALLOW_PRIVATE_DESTINATIONS=true
dev_secrets_key
dev_registry_key
standin_start 4444 "http://127.0.0.1:3000"
trap 'kill "$STANDIN_PID" 2>/dev/null || true' EXIT

cd "$ROOT"
say "building and serving on http://127.0.0.1:3000"
cargo leptos serve --split
