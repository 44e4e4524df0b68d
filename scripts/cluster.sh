#!/usr/bin/env bash
# The local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler built from the Go modules pinned in cluster/go.mod (once per machine, into a cache
# outside the clone), started on loopback with serving certificates, service-account keys, RBAC and
# Pod Security admission, and the Gateway API CRDs installed. Nodes and pods are played by the node
# simulator (sandbox/, `enclii-nodes`), not by kubelets.
#
#   scripts/cluster.sh build     build the binaries unless the cache has them
#   scripts/cluster.sh start     start (or reuse) the development cluster in .enclii/cluster with
#                                the node simulator and Prometheus (what scripts/run.sh starts);
#                                writes .enclii/kubeconfig (Switchyard's ServiceAccount) and
#                                .enclii/cluster/admin.kubeconfig (cluster admin)
#   scripts/cluster.sh stop      stop all of it
source "$(dirname "$0")/lib.sh"

case "${1:-}" in
  build) cluster_build ;;
  start)
    local_stack_start "$STATE/cluster" 127.0.0.1:3000
    install -m 600 "$SWITCHYARD_KUBECONFIG" "$STATE/kubeconfig"
    say "kubectl --kubeconfig .enclii/kubeconfig get pods -A (as Switchyard), .enclii/cluster/admin.kubeconfig (as admin)"
    ;;
  stop) local_stack_stop "$STATE/cluster" ;;
  *) echo "usage: $0 build|start|stop" >&2; exit 2 ;;
esac
