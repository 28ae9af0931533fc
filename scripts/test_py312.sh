#!/usr/bin/env bash
# Run the tests of behaviour that differs between Python versions (failure reports: the user's
# file, line and failing element; payload pickling) on Python 3.12, when a 3.12 interpreter is
# on this machine (PATH, or pyenv's versions folder). Without one it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
py=
for candidate in $(command -v python3.12 2>/dev/null) /root/.pyenv/versions/3.12*/bin/python3.12; do
    if [ -x "$candidate" ] && "$candidate" -V >/dev/null 2>&1; then py=$candidate; break; fi
done
if [ -z "$py" ]; then
    echo "test_py312.sh: no Python 3.12 interpreter here; skipped"
    exit 0
fi
if [ ! -x .venv-3.12/bin/python ]; then "$py" -m venv .venv-3.12; fi
.venv-3.12/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
.venv-3.12/bin/pytest -q -p no:cacheprovider tests/graph/test_payload.py \
    tests/runners/test_direct_runner.py -k "payload or fail or element or traceback" \
    tests/cli/test_cli.py
