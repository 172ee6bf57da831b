#!/usr/bin/env bash
# A local base image for the Dockerfile's PYTHON_IMAGE where no registry can be pulled from:
# Debian bookworm's own python3 in a minimal root file system made by mmdebstrap, imported into
# the local image store. Prints the image's name; builds it only when no image of this recipe
# (this script and the extra certificates below) is there yet, in about a minute and a half.
#
#   bash scripts/python-base-image.sh      # -> localhost/ae-python-base:<recipe hash>
#   DEBIAN_MIRROR=http://... bash scripts/python-base-image.sh   # another mirror
set -euo pipefail
script=$(realpath "$0")
cd "$(dirname "$script")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/containers.conf}"

mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What python:3.11-slim-bookworm offers the Dockerfile: python, venv (with pip), TLS roots, useradd.
packages=python3,python3-venv,python-is-python3,ca-certificates,passwd
# Roots this machine trusts beyond Debian's (an egress proxy's, say): pip inside the build needs them.
mapfile -t extra_cas < <(find /usr/local/share/ca-certificates -name '*.crt' 2>/dev/null | sort)

recipe=$(cat "$script" ${extra_cas[@]+"${extra_cas[@]}"} | sha256sum | cut -c1-12)
image="localhost/ae-python-base:$recipe"
if ! podman image exists "$image"; then
    hooks=()
    if [ ${#extra_cas[@]} -gt 0 ]; then
        hooks+=(--customize-hook="copy-in ${extra_cas[*]} /usr/local/share/ca-certificates"
                --customize-hook='chroot "$1" update-ca-certificates >/dev/null')
    fi
    echo "making $image from $mirror" >&2
    mmdebstrap --quiet --variant=minbase --include="$packages" ${hooks[@]+"${hooks[@]}"} \
        bookworm - "$mirror" \
        | podman import --quiet \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["python3"]' \
            - "$image" >&2
    # Earlier recipes lose their name; scripts/build-image.sh prunes nameless images.
    for old in $(podman images --format '{{.Repository}}:{{.Tag}}' "${image%:*}"); do
        [ "$old" = "$image" ] || podman untag "$old"
    done
fi
echo "$image"
