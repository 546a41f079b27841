#!/usr/bin/env bash
# Installs what the build needs on Debian when it is missing; sourced by test.sh and demo.sh.
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v make >/dev/null 2>&1 || need+=(make)
# The rocksdb crate generates its bindings with bindgen, which loads libclang.
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
# librdkafka's TLS (SASL_SSL, SSL) links the system OpenSSL.
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
# The dashboard's browser test drives Debian's Chromium headless.
dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}"
fi
