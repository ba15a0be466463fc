#!/usr/bin/env bash
# Makes the secret files compose.yaml reads (nothing is hard-coded there):
#   deploy/secrets/console-users.json      console users: role + scrypt hash, no passwords
#   deploy/secrets/grafana-admin-password  Grafana's admin password
#   deploy/secrets/postgres-password       the postgres profile's password
#   deploy/secrets/passwords.txt           the plain passwords, for you (mode 0600)
# Passwords come from PQ_ADMIN_PASSWORD, PQ_OPS_PASSWORD, GRAFANA_ADMIN_PASSWORD and
# POSTGRES_PASSWORD when set, else are random. Existing files are kept unless --force.
# Usage: deploy/scripts/make-secrets.sh [--force] [DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."

force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
DIR=${1:-deploy/secrets}

hash_password() { # reads the password on stdin, prints its hash
    if [ -x .venv/bin/pq ]; then
        .venv/bin/pq console hash-password --password-stdin
    elif command -v pq >/dev/null; then
        pq console hash-password --password-stdin
    else # no local pq: hash with the consoles image (builds it on first use)
        local compose=(docker compose)
        docker compose version >/dev/null 2>&1 || compose=(docker-compose)
        "${compose[@]}" run --rm -T --no-deps admin pq console hash-password --password-stdin
    fi
}
random_password() { head -c 18 /dev/urandom | base64 | tr -d '/+=' | cut -c1-20; }

if [ -e "$DIR/console-users.json" ] && [ $force -eq 0 ]; then
    echo "make-secrets: $DIR already has secrets (--force replaces them)" >&2
    exit 0
fi
mkdir -p "$DIR"
chmod 0700 "$DIR"   # the directory guards the files; the files themselves must be readable
                    # by the containers' users (pq 10001, grafana 472) through bind mounts
umask 022
admin=${PQ_ADMIN_PASSWORD:-$(random_password)}
ops=${PQ_OPS_PASSWORD:-$(random_password)}
grafana=${GRAFANA_ADMIN_PASSWORD:-$(random_password)}
postgres=${POSTGRES_PASSWORD:-$(random_password)}
admin_hash=$(printf '%s\n' "$admin" | hash_password)
ops_hash=$(printf '%s\n' "$ops" | hash_password)
printf '{"admin": {"role": "admin", "password_hash": "%s"},\n "ops": {"role": "ops", "password_hash": "%s"}}\n' \
    "$admin_hash" "$ops_hash" >"$DIR/console-users.json"
printf '%s' "$grafana" >"$DIR/grafana-admin-password"
printf '%s' "$postgres" >"$DIR/postgres-password"
(
    umask 077
    cat >"$DIR/passwords.txt" <<TXT
consoles: admin / $admin   (admin console http://localhost:8501, role admin)
consoles: ops / $ops       (ops console http://localhost:8502, role ops)
grafana:  admin / $grafana (http://localhost:3000)
postgres profile: PQ_STACK_DB=postgresql://pq:$postgres@postgres:5432/pq
TXT
)
echo "make-secrets: wrote $DIR (passwords in $DIR/passwords.txt, readable only by you)" >&2
