#!/usr/bin/env bash
# Makes sure the services the test suite talks to are running on this machine, installing
# and starting them from Debian's packages where they are missing; sourced by test.sh.
#   PostgreSQL on 127.0.0.1:5432, user postgres without a password (trust on loopback, as
#   the suite's URLs have none), database `test`;
#   Redis on 127.0.0.1:6379.
# A server already running is left as it is.
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq postgresql
    fi
    # Loopback connections without a password, for the suite's postgres:// URLs.
    # (A package install may have started the server already: restart it to read this.)
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
        if ! grep -q "^host all all 127.0.0.1/32 trust" "$hba"; then
            $SUDO sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
        fi
    done
    $SUDO service postgresql restart >/dev/null
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U postgres -d test -c "SELECT 1" >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE test" >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    if ! command -v redis-server >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq redis-server
    fi
    # Started directly, keeping nothing on disk: the suite's data is throwaway, and a
    # packaged configuration that cannot write its snapshot refuses every write.
    $SUDO redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --daemonize yes >/dev/null
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
