#!/usr/bin/env bash
# The e-commerce stages walkthrough of the README, end to end, in a fresh temporary store.
# Usage: bash scripts/ecommerce_demo.sh   (sets up .venv on first use)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(command -v python3.11 || command -v python3)
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[examples]'
export PATH="$PWD/.venv/bin:$PATH"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HEADRACE_HOME="$work/store"
cd "$work"
set -x

python -m headrace.examples.ecommerce.data raw --days 7
headrace repo create orders
headrace repo create customers
headrace file put orders@master:/ raw/orders
headrace file put customers@master:/ raw/customers

SPECS=$(python -c 'import headrace.examples.ecommerce as e; print(e.SPECS_DIR)')
for s in enrich mask standardise train predict; do headrace stage create -f "$SPECS/$s.yaml"; done
headrace datum list --spec "$SPECS/enrich.yaml"

headrace daemon --once
headrace commit wait predict@master --timeout 60
headrace job list
headrace file get predict@master:/eu/2024-03-25.csv -o eu-predictions.csv && head -4 eu-predictions.csv
python -c 'import sqlite3; print(sqlite3.connect("shop.db").execute("select count(*), round(avg(return_probability), 3), sum(predicted) from predictions").fetchone())'
headrace commit provenance predict@master

# one more day of orders in one region: one new datum for enrich, mask and standardise
new=$(python -m headrace.examples.ecommerce.data raw --next-day eu)
headrace file put "orders@master:/eu/" "$new"
headrace daemon --once
headrace job list --limit 5
