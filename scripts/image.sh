#!/usr/bin/env bash
# Builds Switchyard's container image (Containerfile) without a Docker daemon: a static musl
# binary and the site from cargo-leptos, assembled by Debian's buildah into an OCI image layout.
#
#   scripts/image.sh [--debug] [--tag NAME:TAG] [--push DEST]
#
#   --debug     the debug build (what the test command's image test uses: it shares the site build
#               the end-to-end tests need, and a release build would add many minutes to CI)
#   --tag       the image's name and tag (default switchyard:dev)
#   --push      also copy it with skopeo to DEST, e.g. docker://registry.example.com/enclii/switchyard:1
#               (credentials: skopeo's own, `skopeo login`)
#
# Writes the layout to .enclii/image/oci (tag as its ref name) and prints its path and size.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PROFILE=release
TAG="switchyard:dev"
PUSH=""
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) PROFILE=debug ;;
    --tag) TAG="${2:?--tag needs NAME:TAG}"; shift ;;
    --push) PUSH="${2:?--push needs a destination}"; shift ;;
    *) echo "usage: scripts/image.sh [--debug] [--tag NAME:TAG] [--push DEST]" >&2; exit 2 ;;
  esac
  shift
done
case "$TAG" in
  *:*) ;;
  *) echo "--tag must be NAME:TAG" >&2; exit 2 ;;
esac

ensure_toolchain
ensure_image_tools

say "building the server for $MUSL_TARGET ($PROFILE) and the site"
FLAGS=(--split)
[ "$PROFILE" = release ] && FLAGS+=(--release)
# The server for the musl target (static), the site as usual: one cargo-leptos build, so the
# binary's asset hashes (hash.txt) are the site's.
LEPTOS_BIN_TARGET_TRIPLE="$MUSL_TARGET" cargo leptos build "${FLAGS[@]}"
EXE_DIR="$(target_dir)/$MUSL_TARGET/$PROFILE"

IMAGE="$STATE/image"
CONTEXT="$IMAGE/context"
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT"
cp "$EXE_DIR/switchyard" "$EXE_DIR/hash.txt" "$CONTEXT/"
# A release image carries no symbols (a third of the binary); a debug one keeps its line tables.
[ "$PROFILE" = release ] && strip --strip-all "$CONTEXT/switchyard"
cp -r "$ROOT/target/site" "$CONTEXT/site"
# Files as the image's user finds them: readable, nothing writable but by root.
chmod -R u=rwX,go=rX "$CONTEXT"

# buildah keeps its layers under .enclii (vfs: no overlay mount needed, works in a container);
# chroot isolation: the Containerfile has no RUN step, so nothing is ever executed.
BUILDAH=(buildah --root "$IMAGE/storage" --runroot "$IMAGE/run" --storage-driver vfs)
say "building the image $TAG (buildah, no daemon)"
"${BUILDAH[@]}" bud --quiet --isolation chroot --layers=false --timestamp 0 \
  -f "$ROOT/Containerfile" -t "$TAG" "$CONTEXT" >/dev/null
rm -rf "$IMAGE/oci"
"${BUILDAH[@]}" push --quiet "$TAG" "oci:$IMAGE/oci:${TAG##*:}"
# The local store only served the build; the layout is the result.
"${BUILDAH[@]}" rmi --all >/dev/null 2>&1 || true

if [ -n "$PUSH" ]; then
  say "pushing to $PUSH"
  skopeo copy "oci:$IMAGE/oci:${TAG##*:}" "$PUSH"
fi
SIZE="$(du -sb "$IMAGE/oci/blobs" | cut -f1)"
say "image: oci:$IMAGE/oci:${TAG##*:} ($SIZE bytes compressed)"
echo "oci:$IMAGE/oci:${TAG##*:}"
