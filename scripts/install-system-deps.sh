#!/usr/bin/env bash
# Installs the Debian programs the test suite and the benchmark drive for real:
# nginx (replica load balancing), wrk and hey (load), Chromium (the page), docker-compose
# (validating the compose files). Does nothing when they are all present.
set -euo pipefail

declare -A want=(
    [nginx]=nginx-light
    [wrk]=wrk
    [hey]=hey
    [chromium]="chromium fonts-liberation"
    [docker-compose]=docker-compose
)
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
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
