#!/usr/bin/env bash
# Create benchmarks/.beam-venv with Apache Beam, apart from headrace's .venv, so that Beam's
# dependency pins never touch headrace's environment. run.py finds it by default.
# Usage: benchmarks/setup_beam.sh [PYTHON]   (default: python3.11, else python3)
set -euo pipefail
cd "$(dirname "$0")"
PY=${1:-$(command -v python3.11 || command -v python3)}
if [ ! -x .beam-venv/bin/python ]; then "$PY" -m venv .beam-venv; fi
.beam-venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.beam-venv/bin/python -m pip install -q --disable-pip-version-check apache-beam
.beam-venv/bin/python -c "import apache_beam; print('apache-beam', apache_beam.__version__)"
