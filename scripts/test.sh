#!/usr/bin/env bash
# Set up .venv (first run only) and run every check: ruff, mypy, then pytest with doctests.
# Extra arguments go to pytest, e.g. scripts/test.sh -k combine -x
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(command -v python3.11 || command -v python3)
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
scripts/services.sh
.venv/bin/pytest "$@"
