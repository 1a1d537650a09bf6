#!/usr/bin/env bash
# Set everything up on a fresh machine and run the whole test suite:
# lint (ruff), types (mypy, strict on dbos_core), then pytest on SQLite and on PostgreSQL.
# PostgreSQL: DBOS_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432, trust auth);
# tests create and drop their own databases.
set -euo pipefail
cd "$(dirname "$0")/.."

# The dashboard's browser tests drive Debian's Chromium with Selenium (tests/dashboard).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "== installing chromium and chromium-driver (browser tests)"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'

echo "== ruff"
.venv/bin/ruff format --check dbos_core dbos_fastapi dbos_flask dbos_django tests bench example_projects
.venv/bin/ruff check dbos_core dbos_fastapi dbos_flask dbos_django tests bench example_projects
echo "== mypy (strict on dbos_core)"
.venv/bin/mypy
echo "== pytest on SQLite"
DBOS_TEST_BACKEND=sqlite .venv/bin/python -m pytest -q "$@"
echo "== pytest on PostgreSQL"
DBOS_TEST_BACKEND=postgres .venv/bin/python -m pytest -q "$@"
