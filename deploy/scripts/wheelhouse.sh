#!/usr/bin/env bash
# Builds, on the host, the wheels every image installs (pqcore's and the services'
# third-party dependencies, the manager's apprise, plus setuptools to build pq itself),
# into a temp dir, then swaps them into deploy/docker/wheelhouse/{services,consoles}/
# for the Docker builds: images then install with `pip install --no-index --find-links`
# and reach no index.
#
# The host's Python must match the image's (bookworm's 3.11 for the local base image):
# compiled wheels (psycopg-binary, numpy, pandas, pyarrow) are chosen for the host's ABI.
# PYTHON (default .venv/bin/python, else python3) selects it. --force rebuilds.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
DEST=deploy/docker/wheelhouse
# The wheels depend only on the dependency lists and the Python: same key, nothing to do.
# This script is part of the key: a change to what it builds rebuilds the wheelhouse.
key=$(cat pyproject.toml shared/pqcore/pyproject.toml deploy/scripts/wheelhouse.sh <("$PYTHON" -VV) | sha256sum | cut -c1-16)
if [ "$(cat "$DEST/.key" 2>/dev/null)" = "$key" ] && [ "${1:-}" != "--force" ]; then
    echo "wheelhouse: up to date ($DEST)" >&2
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

build() { # build <role dir> <requirements...>
    local role=$1
    shift
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check -w "$tmp/$role" \
        setuptools wheel "$@" 2> >(grep -v "is ignored: it is neither a file" >&2) >&2
    # pq's own wheels are left out: images build pq from the copied source, so a stale
    # wheel can never shadow the code being tested.
    rm -f "$tmp/$role"/pqcore-*.whl "$tmp/$role"/pq_services-*.whl
}

# services: producer, consumer and manager; the manager also installs the notify extra
# (apprise, for alerts), the others take only what they need from the same directory.
build services './shared/pqcore[postgresql]' '.[notify]'
build consoles './shared/pqcore[postgresql]' '.[consoles]'

for role in services consoles; do
    find "$DEST/$role" -name '*.whl' -delete
    mv "$tmp/$role"/*.whl "$DEST/$role/"
done
echo "$key" >"$DEST/.key"
echo "wheelhouse: $(find "$DEST/services" -name '*.whl' | wc -l) service wheels," \
    "$(find "$DEST/consoles" -name '*.whl' | wc -l) console wheels in $DEST" >&2
