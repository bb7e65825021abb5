#!/bin/sh
# What the official postgres image's entrypoint does with its variables, for Debian's
# PostgreSQL: on the first start (empty PGDATA) create the cluster with superuser
# POSTGRES_USER (default postgres) and password POSTGRES_PASSWORD, accept host connections
# with POSTGRES_HOST_AUTH_METHOD (default scram-sha-256; "trust" needs no password) and
# create database POSTGRES_DB (default: the user's name). Then run the server as postgres.
set -eu

if [ "${1:-}" = "postgres" ] && [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "${1:-}" = "postgres" ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
        echo "postgres-entrypoint: set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust to allow" \
             "connections without one" >&2
        exit 1
    fi
    pwfile=/dev/null
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    fi
    initdb --username="$user" ${POSTGRES_PASSWORD:+--pwfile="$pwfile"} --encoding=UTF8 --locale=C.UTF-8 \
           --auth-local=trust --auth-host="$auth" >/dev/null
    [ "$pwfile" = /dev/null ] || rm -f "$pwfile"
    # initdb lets in only local connections; the official image accepts every host too.
    printf 'host all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        # Single-user mode: no server listens until the database exists, so a health check
        # can never see a half-initialised cluster.
        echo "CREATE DATABASE \"$db\"" | postgres --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "postgres-entrypoint: created cluster in $PGDATA, superuser $user, database $db" >&2
fi

exec "$@"
