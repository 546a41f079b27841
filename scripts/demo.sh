#!/usr/bin/env bash
# Runs the shop demo on a fresh Debian machine: installs what the build needs, then starts
# every service on an embedded broker and database (no Kafka, database or Redis to install).
# Extra arguments go to the shop binary, e.g. `./scripts/demo.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/setup.sh

exec cargo run --release -p demo-app -- "$@"
