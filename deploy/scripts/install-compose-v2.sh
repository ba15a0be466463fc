#!/usr/bin/env bash
# Installs the Compose v2 CLI plugin (`docker compose ...`) where Debian 12 has none:
# Debian 12 ships only the deprecated docker-compose 1.29. Debian 13's docker-compose
# package (2.26, a Go binary needing only libc) runs on Debian 12 against its Engine 20.10.
# The package is fetched with apt from a throwaway trixie source (the host's apt sources,
# lists and installed packages stay as they are), and only its plugin binary is copied to
# $PLUGIN_DIR, where every docker CLI on the machine looks for plugins.
# Does nothing when `docker compose version` already answers.
#
# Settings (environment): PLUGIN_DIR (default /usr/local/lib/docker/cli-plugins),
# DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

PLUGIN_DIR=${PLUGIN_DIR:-/usr/local/lib/docker/cli-plugins}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

log() { echo "install-compose-v2: $*" >&2; }

if docker compose version >/dev/null 2>&1; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# _apt (apt's download user) must be able to write here, or apt warns on every file.
chmod 0755 "$tmp"
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/download"
cat >"$tmp/trixie.sources" <<SOURCES
Types: deb
URIs: $MIRROR
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
# Only this source, lists and cache in the temp dir, no translations: about 10 MB.
apt_opts=(
    -o "Dir::Etc::SourceList=$tmp/trixie.sources"
    -o "Dir::Etc::SourceParts=$tmp/none"
    -o "Dir::State::Lists=$tmp/lists"
    -o "Dir::Cache=$tmp/cache"
    -o "Acquire::Languages=none"
    -o "APT::Sandbox::User=root"
)
log "fetching docker-compose from Debian 13 (trixie)"
apt-get "${apt_opts[@]}" -qq update >/dev/null
(cd "$tmp/download" && apt-get "${apt_opts[@]}" -qq download docker-compose/trixie >/dev/null)
deb=$(find "$tmp/download" -name 'docker-compose_*.deb' | head -n 1)
[ -n "$deb" ] || { log "apt-get download docker-compose/trixie gave no package"; exit 1; }
dpkg-deb -x "$deb" "$tmp/root"
install -D -m 0755 "$tmp/root/usr/libexec/docker/cli-plugins/docker-compose" \
    "$PLUGIN_DIR/docker-compose"
log "installed $(basename "$deb") as $PLUGIN_DIR/docker-compose"
docker compose version >/dev/null 2>&1 \
    || log "warning: \`docker compose\` still does not answer: is $PLUGIN_DIR searched by your docker CLI?"
