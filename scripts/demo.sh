#!/usr/bin/env bash
# Set up .venv (first run only) and run the word-count demo on generated text, on the embedded
# defaults (direct runner, local files). Output goes to ./demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(command -v python3.11 || command -v python3)
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
.venv/bin/headrace run --progress src/headrace/examples/wordcount.py --output demo-output/counts "$@"
echo "top words:"; sort -t: -k2 -n -r demo-output/counts-*.txt | head -5
