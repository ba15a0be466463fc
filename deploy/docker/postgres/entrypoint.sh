#!/bin/bash
# First start: a cluster in $PGDATA with POSTGRES_USER (superuser) and its password from
# POSTGRES_PASSWORD_FILE or POSTGRES_PASSWORD, and the database POSTGRES_DB. Then the
# server runs as PID 1 (SIGINT: fast shutdown), listening on every interface.
# Arguments: `postgres [options]` or bare options run the server; anything else is exec'd.
set -euo pipefail

if [ "${1:-postgres}" != postgres ] && [ "${1:0:1}" != - ]; then
    exec "$@"
fi
[ "${1:-}" = postgres ] && shift

user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
log() { echo "pq-postgres-entrypoint: $*" >&2; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password=${POSTGRES_PASSWORD:-}
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        password=$(cat "$POSTGRES_PASSWORD_FILE")
    fi
    if [ -z "$password" ]; then
        log "no password: set POSTGRES_PASSWORD_FILE (compose: the postgres_password secret)"
        exit 1
    fi
    log "initialising a cluster in $PGDATA (user $user, database $db)"
    pwfile=$(mktemp)
    printf '%s\n' "$password" >"$pwfile"
    initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" --encoding=UTF8 \
        --locale=C.UTF-8 --data-checksums --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    # Password logins from other containers and hosts (initdb allows loopback only).
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w -s start
        psql -q -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres \
            --set=db="$db" <<<'CREATE DATABASE :"db";'
        pg_ctl -D "$PGDATA" -m fast -w -s stop
    fi
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
