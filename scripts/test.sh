#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the build needs, then
# runs every test of the workspace (unit, integration, property and doc tests).
# Set CARGO_TARGET_DIR to reuse a build directory between clones.
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

cargo fmt --all -- --check
cargo test --workspace --all-features --no-fail-fast
