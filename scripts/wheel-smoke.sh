#!/usr/bin/env bash
# CI: build the wheel, install it (not editable) into a fresh virtual environment, then run
# `llm-router check` on the shipped plugins.toml and a smoke request against `llm-router serve`,
# from a directory outside the source tree so that only the installed wheel can be imported.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# From a clean copy: setuptools would reuse a stale build/ directory and hide a missing package.
mkdir "$work/src"
tar -C "$repo" --exclude=./.venv --exclude=./.git --exclude=./build --exclude='*.egg-info' --exclude=__pycache__ \
    -cf - . | tar -C "$work/src" -xf -
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$work/src"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "$work"/dist/llm_router-*.whl   # dependencies from PyPI (pip's cache)
"$work/venv/bin/python" -m router_plugins.scorer.distill   # the scorer's sentence vectors, built offline once
cp "$repo/plugins.toml" "$work/"
cd "$work"
"$work/venv/bin/llm-router" check --config plugins.toml
"$work/venv/bin/python" "$repo/scripts/smoke_request.py" "$work/venv/bin/llm-router" plugins.toml
echo "wheel smoke: ok"
