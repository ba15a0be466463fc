#!/usr/bin/env bash
# Installs the system packages the test tiers need (Debian), when they are missing, and
# the Compose v2 CLI (`docker compose`, not in Debian 12: install-compose-v2.sh).
# Tests start their own servers (PostgreSQL cluster, dockerd, Prometheus, Chromium,
# the power-loss tier's FUSE filesystem).
set -euo pipefail
cd "$(dirname "$0")"

packages=(
    sqlite3                                   # pq doctor's companion; handy in tests
    postgresql                                # PostgreSQL backend tests (throwaway cluster)
    prometheus                                # promtool rule tests, dashboard query tests
    chromium chromium-driver                  # console browser tests
    docker.io debootstrap                     # container tests (base image built locally)
    openssl                                   # alert tests: a self-signed cert for SMTP STARTTLS
    faketime                                  # clock-skew tests: a process whose clock is wrong
    fuse3 libfuse3-dev                        # power-loss tier: the FUSE layer (fusermount3, libfuse3.so)
)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ "$(id -u)" -ne 0 ]; then
    [ ${#missing[@]} -eq 0 ] || echo "ensure-system: missing packages: ${missing[*]} (run as root or install them)" >&2
    docker compose version >/dev/null 2>&1 \
        || echo "ensure-system: no Compose v2 CLI (run deploy/scripts/install-compose-v2.sh as root)" >&2
    exit 0
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "ensure-system: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The container tier runs `docker compose`, as the README tells users to.
bash ./install-compose-v2.sh
