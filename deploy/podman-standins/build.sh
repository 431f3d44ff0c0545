#!/bin/sh
# Build local stand-ins for python:3.11-slim, postgres:15, redis:7 and caddy:2 from a debootstrapped
# bookworm, for running docker-compose.yml under podman where Docker Hub is unreachable.
# Usage (as root): deploy/podman-standins/build.sh [mirror]   (default: deb.debian.org)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mirror=${1:-http://deb.debian.org/debian}
work=${STANDINS_WORK:-/var/tmp/podman-standins}
if ! podman image exists localhost/bookworm:base; then
    mkdir -p "$work"
    [ -x "$work/rootfs/bin/sh" ] || debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror"
    tar -C "$work/rootfs" -c . | podman import - localhost/bookworm:base
fi
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -r "$here/python" "$here/postgres" "$here/redis" "$here/caddy" "$context/"
mkdir -p "$context/python/ca"
find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$context/python/ca/" \; 2>/dev/null || true
podman build -t docker.io/library/python:3.11-slim "$context/python"
podman build -t docker.io/library/postgres:15 "$context/postgres"
podman build -t docker.io/library/redis:7 "$context/redis"
podman build -t docker.io/library/caddy:2 "$context/caddy"
