#!/usr/bin/env bash
# Set up .venv (installs only on the first run or when pyproject.toml changed) and run the
# word-count demo on generated text, on the embedded defaults (direct runner, local files).
# Output goes to ./demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
ensure_venv examples
rm -rf demo-output
.venv/bin/headrace run --progress src/headrace/examples/wordcount.py --output demo-output/counts "$@"
echo "top words:"
# awk reads all of its input, so sort never dies of a closed pipe (exit 141 under pipefail).
sort -t: -k2 -n -r demo-output/counts-*.txt | awk 'NR <= 5'
