#!/usr/bin/env bash
# Builds the service's image (`make image`): with docker when an engine answers, else with buildah
# in chroot isolation (no daemon), on the local Debian base of scripts/python-base-image.sh unless
# PYTHON_IMAGE names another.
#
#   IMAGE=digit-autoencoder:0.1.0   the name to give it (the default)
#   TORCH_INDEX_URL=...             passed on when set: empty means pip's default index (PyPI)
#   PYTHON_IMAGE=...                the base image
#   BUILDER=docker|buildah          default: docker when `docker info` succeeds
set -euo pipefail
cd "$(dirname "$0")/.."
image="${IMAGE:-digit-autoencoder:0.1.0}"

args=()
[ -n "${TORCH_INDEX_URL+set}" ] && args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
if [ -z "${BUILDER:-}" ]; then
    BUILDER=buildah
    timeout 20 docker info >/dev/null 2>&1 && BUILDER=docker
fi

if [ "$BUILDER" = docker ]; then
    [ -n "${PYTHON_IMAGE:-}" ] && args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
    exec docker build -t "$image" ${args[@]+"${args[@]}"} .
fi

export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/containers.conf}"
args+=(--build-arg "PYTHON_IMAGE=${PYTHON_IMAGE:-$(bash scripts/python-base-image.sh)}")
# Docker's format keeps the HEALTHCHECK (OCI's has no place for it); --layers caches each step.
build=(buildah bud --isolation chroot --layers --format docker "${args[@]}")
"${build[@]}" -t "$image" .
# The build stage gets a name of its own (from the cache just made), so that the pruning below
# keeps its layers, torch's above all, for the next build.
"${build[@]}" --target build -t "$image-build" .
# Earlier builds' images, left nameless by these two, go: each pass frees their parents for the next.
dangling() { buildah images --quiet --filter dangling=true | wc -l; }
left=$(dangling)
while [ "$left" -gt 0 ]; do
    buildah rmi --prune >/dev/null || break
    before=$left left=$(dangling)
    [ "$left" -lt "$before" ] || break
done
