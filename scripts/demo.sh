#!/usr/bin/env bash
# Set up on a fresh machine and run the durability demo on the embedded SQLite default.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
.venv/bin/python example_projects/durability_demo/demo.py
