#!/usr/bin/env bash
# Set up .venv (installs only on the first run or when pyproject.toml changed) and run the checks:
# ruff, ruff format, mypy, then pytest with doctests.
#   bash scripts/test.sh          a developer's run: skips tests marked slow (a few minutes less)
#   bash scripts/test.sh --all    the whole suite, slow tests included (what CI runs; CI=true too)
# Other arguments go to pytest, e.g. bash scripts/test.sh -k combine -x
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
ensure_venv dev,examples,ray
all=${CI:-}
args=()
for a in "$@"; do
    if [ "$a" = "--all" ]; then all=1; else args+=("$a"); fi
done
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
bash scripts/services.sh
if [ -n "$all" ]; then
    exec .venv/bin/pytest "${args[@]}"
else
    echo "test.sh: skipping tests marked slow; 'bash scripts/test.sh --all' runs everything"
    exec .venv/bin/pytest -m "not slow" "${args[@]}"
fi
