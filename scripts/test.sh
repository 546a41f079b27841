#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the build needs,
# installs and starts PostgreSQL and Redis where they are missing, then runs every test of
# the workspace (unit, integration, property and doc tests).
# Set CARGO_TARGET_DIR to reuse a build directory between clones.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/setup.sh
# PostgreSQL and Redis, which the suite's tests connect to.
source scripts/services.sh

# A fresh clone builds everything once: incremental caches would only take disk (the debug
# target is ~7 GB without them; see [profile.dev] in Cargo.toml).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

cargo fmt --all -- --check
cargo test --workspace --all-features --no-fail-fast
