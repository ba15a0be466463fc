#!/usr/bin/env bash
# Makes Docker usable for the container tests on a machine without a registry:
#   1. starts dockerd in the background when `docker info` does not answer;
#   2. makes the local Python base image (debootstrap + docker import), reusing a
#      `docker save` of it from the cache dir, so a reused CI machine skips debootstrap;
#   3. makes a Prometheus image from that base and the host's Debian prometheus binary;
#   4. makes a PostgreSQL image from that base and Debian's postgresql package
#      (deploy/docker/postgres: the compose `postgres` profile's POSTGRES_IMAGE).
# Prints nothing on success but the image names: BASE_IMAGE=... PROMETHEUS_IMAGE=...
# POSTGRES_IMAGE=...
#
# Settings (environment): PQ_CI_CACHE (default /var/cache/pq-ci), PQ_BASE_IMAGE
# (default pq-ci-base:bookworm), PQ_PROMETHEUS_IMAGE (default pq-ci-prometheus:local),
# PQ_POSTGRES_IMAGE (default pq-ci-postgres:local), DEBIAN_MIRROR (default
# http://deb.debian.org/debian).
set -euo pipefail

CACHE=${PQ_CI_CACHE:-/var/cache/pq-ci}
BASE_IMAGE=${PQ_BASE_IMAGE:-pq-ci-base:bookworm}
PROMETHEUS_IMAGE=${PQ_PROMETHEUS_IMAGE:-pq-ci-prometheus:local}
POSTGRES_IMAGE=${PQ_POSTGRES_IMAGE:-pq-ci-postgres:local}
POSTGRES_CONTEXT="$(cd "$(dirname "$0")/../docker/postgres" && pwd)"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The recipe is part of the cache key: change it and the cached base is rebuilt.
BASE_RECIPE="debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm"
BASE_KEY=$(printf '%s' "$BASE_RECIPE" | sha256sum | cut -c1-12)
BASE_TAR="$CACHE/base-$BASE_KEY.tar"

log() { echo "docker-up: $*" >&2; }

mkdir -p "$CACHE"

start_dockerd() {
    if docker info >/dev/null 2>&1; then
        return
    fi
    command -v dockerd >/dev/null || { log "dockerd not installed (deploy/scripts/ensure-system.sh)"; exit 1; }
    # One daemon per machine: a pid file of a live dockerd means it is still starting.
    if ! pgrep -x dockerd >/dev/null; then
        # Pid files left by a daemon that is gone (snapshot, reboot) stop dockerd from
        # starting when their pid has been reused.
        bash "$(dirname "$0")/clear-stale-pidfile.sh" /var/run/docker.pid dockerd
        bash "$(dirname "$0")/clear-stale-pidfile.sh" \
            /var/run/docker/containerd/containerd.pid containerd
        log "starting dockerd (log: $CACHE/dockerd.log)"
        # setsid + nohup: the daemon outlives this script and the test session that ran it.
        setsid nohup dockerd >>"$CACHE/dockerd.log" 2>&1 </dev/null &
    fi
    for _ in $(seq 1 120); do
        docker info >/dev/null 2>&1 && return
        sleep 0.5
    done
    log "dockerd did not answer within 60 s; last lines of $CACHE/dockerd.log:"
    tail -n 20 "$CACHE/dockerd.log" >&2
    exit 1
}

make_base_image() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        return
    fi
    if [ -s "$BASE_TAR" ] && docker load -i "$BASE_TAR" >/dev/null 2>&1 \
        && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "loaded $BASE_IMAGE from $BASE_TAR"
        return
    fi
    command -v debootstrap >/dev/null || { log "debootstrap not installed"; exit 1; }
    log "building $BASE_IMAGE with debootstrap (about a minute)"
    local rootfs
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    # shellcheck disable=SC2086  # the recipe is a word list on purpose
    ${BASE_RECIPE% bookworm} bookworm "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
        log "debootstrap failed; see $CACHE/debootstrap.log"
        tail -n 20 "$CACHE/debootstrap.log" >&2
        rm -rf "$rootfs"
        exit 1
    }
    # Smaller image: apt's lists and caches, docs and man pages are never used at run time.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" -c . | docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    docker save -o "$BASE_TAR.tmp" "$BASE_IMAGE" && mv "$BASE_TAR.tmp" "$BASE_TAR"
    log "saved $BASE_IMAGE to $BASE_TAR"
}

make_prometheus_image() {
    # Rebuilt when the base or the host's prometheus changes (the tag carries no version:
    # the image id tells whether anything changed, and the build is a few seconds).
    local context
    context=$(mktemp -d)
    cp /usr/bin/prometheus "$context/prometheus"
    cat >"$context/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
# Debian's prometheus is a Go binary needing only libc, which the base has.
COPY prometheus /bin/prometheus
# Runs as nobody (65534) with its data in /prometheus, like the official image.
RUN mkdir -p /prometheus /etc/prometheus && chown 65534:65534 /prometheus
USER 65534
WORKDIR /prometheus
# The same entrypoint and data dir as the official prom/prometheus image, so compose's
# command works with either.
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE
    docker build -q -t "$PROMETHEUS_IMAGE" "$context" >/dev/null 2>"$context/build.log" || {
        cat "$context/build.log" >&2
        rm -rf "$context"
        exit 1
    }
    rm -rf "$context"
}

make_postgres_image() {
    # apt-get inside the build (Debian's mirror is reachable from containers); Docker's
    # layer cache makes a rebuild with nothing changed take about a second.
    local log
    log=$(mktemp)
    docker build -q -t "$POSTGRES_IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        "$POSTGRES_CONTEXT" >/dev/null 2>"$log" || {
        log "building $POSTGRES_IMAGE failed:"
        tail -n 30 "$log" >&2
        rm -f "$log"
        exit 1
    }
    rm -f "$log"
}

start_dockerd
make_base_image
make_postgres_image
if command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ]; then
    make_prometheus_image
fi
echo "BASE_IMAGE=$BASE_IMAGE"
echo "PROMETHEUS_IMAGE=$PROMETHEUS_IMAGE"
echo "POSTGRES_IMAGE=$POSTGRES_IMAGE"
