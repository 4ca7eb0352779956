#!/usr/bin/env bash
# Installs the real services some tests need (redis-server, PostgreSQL) when they are missing.
# The tests start their own throwaway instances on free loopback ports (tests/services.py).
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
if ((${#need[@]})); then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
    # Debian starts the packaged services; the tests use their own instances
    $sudo systemctl disable --now redis-server postgresql >/dev/null 2>&1 || true
fi
