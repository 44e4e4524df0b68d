#!/usr/bin/env bash
# The local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler built from the Go modules pinned in cluster/go.mod (once per machine, into a cache
# outside the clone), started on loopback with serving certificates, service-account keys, RBAC and
# Pod Security admission, and the Gateway API CRDs installed. Nodes and pods are played by the node
# simulator (sandbox/, `switchyard-nodes`), not by kubelets.
#
#   scripts/cluster.sh build          build the binaries unless the cache has them
#   scripts/cluster.sh start [DIR]    start (or reuse) a cluster whose state lives in DIR
#                                     (default .enclii/cluster); writes DIR/kubeconfig (admin) and,
#                                     for the dev cluster, .enclii/kubeconfig
#   scripts/cluster.sh stop [DIR]     stop it
source "$(dirname "$0")/lib.sh"

case "${1:-}" in
  build) cluster_build ;;
  start) cluster_start "${2:-$STATE/cluster}" ;;
  stop) cluster_stop "${2:-$STATE/cluster}" ;;
  *) echo "usage: $0 build|start [DIR]|stop [DIR]" >&2; exit 2 ;;
esac
