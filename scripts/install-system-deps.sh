#!/usr/bin/env bash
# Installs the Debian programs the test suite and the benchmark drive for real:
# nginx (replica load balancing), wrk and hey (load), Chromium (the page), docker-compose
# (validating the compose files), buildah, podman and mmdebstrap (building and running the image,
# tests/test_image.py). Does nothing when they are all present. With arguments, only
# the programs named: `bash scripts/install-system-deps.sh wrk`.
set -euo pipefail

declare -A want=(
    [nginx]=nginx-light
    [wrk]=wrk
    [hey]=hey
    [chromium]="chromium fonts-liberation"
    [docker-compose]=docker-compose
    [kubectl]=kubectl
    [buildah]=buildah
    [podman]=podman
    [mmdebstrap]=mmdebstrap
)
# Named programs only, when given: `install-system-deps.sh wrk` (make device-check).
if [ $# -gt 0 ]; then
    for cmd in "${!want[@]}"; do
        [[ " $* " == *" $cmd "* ]] || unset "want[$cmd]"
    done
fi
missing=()
for cmd in "${!want[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=(${want[$cmd]})
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing programs; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 0  # the tests that need them skip with the same hint
fi
echo "installing ${missing[*]} from Debian"
apt-get update -qq
# `kubectl kustomize` renders deploy/. Debian bookworm has no kubectl package (its
# kubernetes-client is 1.20, whose kustomize knows no `patches:`); the Kubernetes or Google Cloud
# apt repository has one, where the machine has either among its sources.
if [[ " ${missing[*]} " == *" kubectl "* ]] && ! apt-cache show kubectl >/dev/null 2>&1; then
    echo "kubectl is in none of this machine's apt sources; add https://pkgs.k8s.io as" \
        "https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/ shows" >&2
    for i in "${!missing[@]}"; do [ "${missing[$i]}" != kubectl ] || unset "missing[$i]"; done
    [ ${#missing[@]} -eq 0 ] && exit 0
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
