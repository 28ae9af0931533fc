# Sourced by the scripts in this folder: make .venv (Python 3.11+) and install headrace into it in
# editable mode with the extras asked for. The install runs again only when pyproject.toml or the
# extras change, so a second call costs nothing. Usage: ensure_venv 'dev,examples'
ensure_venv() {
    local extras=$1 py stamp want
    if [ ! -x .venv/bin/python ]; then
        py=$(command -v python3.11 || command -v python3) || {
            echo "error: Python 3.11 or newer is needed (python3.11 or python3 on PATH)" >&2
            return 1
        }
        "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
            echo "error: $py is $("$py" -V 2>&1); headrace needs Python 3.11 or newer" >&2
            return 1
        }
        "$py" -m venv .venv
    fi
    stamp=.venv/.headrace-install
    sum=$(cksum < pyproject.toml)
    want="$sum [$extras]"
    # One line per extras set installed from this pyproject.toml; a changed file starts afresh.
    if ! grep -qxF "$want" "$stamp" 2>/dev/null; then
        .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
        { grep -F "$sum [" "$stamp" 2>/dev/null || true; echo "$want"; } > "$stamp.new"
        mv "$stamp.new" "$stamp"
    fi
}
