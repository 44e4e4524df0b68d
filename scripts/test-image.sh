#!/usr/bin/env bash
# The image test: unpacks the image scripts/image.sh built and runs its entrypoint from the
# unpacked root filesystem (chroot, as the image's own user), configured the way Kubernetes would
# run it (in-cluster service account files, environment), against the local cluster and PostgreSQL.
# It must serve /health/ready and the dashboard's assets, byte for byte those of the image.
#
#   scripts/test-image.sh OCI_REF     e.g. oci:.enclii/image/oci:dev (what scripts/image.sh prints)
#
# Needs root (chroot), a running local stack (ENCLII_TEST_CLUSTER: its switchyard.kubeconfig) and
# PostgreSQL (DATABASE_URL to any database of it: a fresh one is created beside it).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
REF="${1:?usage: scripts/test-image.sh OCI_REF}"
: "${ENCLII_TEST_CLUSTER:?the directory of the local stack}" "${DATABASE_URL:?a PostgreSQL URL}"
[ "$(id -u)" = 0 ] || { echo "the image test needs root (chroot)" >&2; exit 1; }
ensure_image_tools
fail() { echo "image test: $*" >&2; exit 1; }

WORK="$(mktemp -d "$STATE/image-test.XXXXXX")"
PG_URL_BASE="${DATABASE_URL%/*}"
DB="image_$(date +%s)_$$"
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  [ -z "${PROC_MOUNTED:-}" ] || umount -l "$ROOTFS/proc" 2>/dev/null || true
  timeout 30 "$(pg_bin)/dropdb" -h 127.0.0.1 -p "${PG_URL_BASE##*:}" -U enclii --if-exists --force "$DB" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

umoci unpack --image "${REF#oci:}" "$WORK/bundle" >/dev/null
ROOTFS="$WORK/bundle/rootfs"
CONFIG="$WORK/bundle/config.json"

# What the image is: its entrypoint, its user (numeric, not root) and its files (no shell).
read -r USER_ID GROUP_ID ENTRY < <(python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))["process"]
print(p["user"]["uid"], p["user"]["gid"], " ".join(p["args"]))' "$CONFIG")
[ "$ENTRY" = /switchyard ] || fail "entrypoint is '$ENTRY', expected /switchyard"
[ "$USER_ID" != 0 ] && [ "$GROUP_ID" != 0 ] || fail "the image runs as root"
FILES="$(cd "$ROOTFS" && ls -A | sort | tr '\n' ' ')"
[ "$FILES" = "hash.txt site switchyard " ] || fail "unexpected root filesystem: $FILES"
[ ! -e "$ROOTFS/bin/sh" ] || fail "the image has a shell"

# What Kubernetes mounts for a pod of Switchyard's ServiceAccount; the token is the one the local
# stack bound to enclii-system/switchyard (never printed).
SA="$ROOTFS/var/run/secrets/kubernetes.io/serviceaccount"
mkdir -p "$SA"
KUBECONFIG_FILE="$ENCLII_TEST_CLUSTER/switchyard.kubeconfig"
CA="$(sed -n 's/^ *certificate-authority: //p' "$KUBECONFIG_FILE")"
SERVER="$(sed -n 's/^ *server: //p' "$KUBECONFIG_FILE")"
cp "$CA" "$SA/ca.crt"
(umask 077; sed -n 's/^ *token: //p' "$KUBECONFIG_FILE" > "$SA/token")
echo enclii-system > "$SA/namespace"
chown -R "$USER_ID:$GROUP_ID" "$ROOTFS/var"
HOSTPORT="${SERVER#https://}"

# A container runtime mounts /proc: the server finds its own executable through it (the hash.txt
# beside it, the landing packs' compression child processes).
mkdir -p "$ROOTFS/proc"
mount -t proc proc "$ROOTFS/proc"
PROC_MOUNTED=1

pg_create_db "$DB"
PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
LOG="$WORK/server.log"
# The image's own environment (config.json), then what a pod spec would add.
mapfile -t IMAGE_ENV < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["process"]["env"]))' "$CONFIG")
env -i "${IMAGE_ENV[@]}" \
  KUBERNETES_SERVICE_HOST="${HOSTPORT%:*}" KUBERNETES_SERVICE_PORT="${HOSTPORT##*:}" \
  ENCLII_LISTEN="127.0.0.1:$PORT" ENCLII_PUBLIC_URL="$BASE" \
  ENCLII_DATABASE__URL="$PG_URL_BASE/$DB" \
  ENCLII_CLUSTER__NAMESPACE_PREFIX="img$$-" \
  chroot --userspec="$USER_ID:$GROUP_ID" "$ROOTFS" "$ENTRY" >"$LOG" 2>&1 &
PID=$!

ready=""
for _ in $(seq 1 300); do
  if curl -fsS "$BASE/health/ready" >"$WORK/ready.json" 2>/dev/null; then ready=1; break; fi
  kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; fail "the image's server exited"; }
  sleep 0.2
done
[ -n "$ready" ] || { tail -n 30 "$LOG" >&2; fail "/health/ready never answered 200"; }
grep -q '"database":"ok"' "$WORK/ready.json" || fail "readiness without the database: $(cat "$WORK/ready.json")"

# The dashboard's assets, as a browser finds them: named by the page, served as the image has them.
curl -fsS "$BASE/status" >"$WORK/page.html" || fail "the status page did not render"
ASSETS="$(grep -oE '/pkg/[^"'"'"' ]+\.(css|js|wasm)' "$WORK/page.html" | sort -u)"
for kind in css js wasm; do
  grep -qE "\.$kind\$" <<<"$ASSETS" || fail "the page names no .$kind asset"
done
for asset in $ASSETS; do
  curl -fsS -o "$WORK/asset" "$BASE$asset" || fail "$asset did not load"
  cmp -s "$WORK/asset" "$ROOTFS/site$asset" || fail "$asset differs from the image's file"
done
# Start-up read the in-cluster files above (a missing token or CA stops it); nothing went wrong since.
grep -qiE 'panic|error' "$LOG" && { tail -n 30 "$LOG" >&2; fail "the server logged an error"; }

kill -TERM "$PID"
for _ in $(seq 1 250); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PID" 2>/dev/null && fail "the server did not stop on SIGTERM"
wait "$PID" || fail "the server exited with an error on SIGTERM"
PID=""
say "image test passed: $(echo "$ASSETS" | wc -l) assets and /health/ready served from the image's root filesystem as $USER_ID:$GROUP_ID"
