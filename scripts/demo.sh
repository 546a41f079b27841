#!/usr/bin/env bash
# Runs the shop demo on a fresh Debian machine: installs what the build needs, then starts
# every service on an embedded broker and database (no Kafka, database or Redis to install).
# Extra arguments go to the shop binary, e.g. `./scripts/demo.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v make >/dev/null 2>&1 || need+=(make)
# The rocksdb crate generates its bindings with bindgen, which loads libclang.
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
# sqlx links SQLite unbundled (see demo-app/Cargo.toml); its build looks for the headers.
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}"
fi

exec cargo run --release -p demo-app -- "$@"
