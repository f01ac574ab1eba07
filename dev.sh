#!/usr/bin/env bash
# authdemo's quickstart helper.
#   ./dev.sh demo   set everything up, then serve the demo on http://127.0.0.1:8000
#   ./dev.sh test   run the whole test suite (pytest arguments may follow)
# Needs Python 3.11+ as python3 (or set PYTHON=/path/to/python).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
            echo "authdemo needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))" >&2
            exit 1
        }
        echo "Creating $VENV ..." >&2
        "$PYTHON" -m venv "$VENV"
    fi
    # Reinstall only when pyproject.toml changed since the last install.
    if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
        echo "Installing authdemo and its test tools into $VENV ..." >&2
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet -e '.[test]'
        touch "$VENV/.installed"
    fi
}

case "${1:-}" in
    demo)
        shift
        setup
        "$VENV/bin/alembic" upgrade head
        "$VENV/bin/authdemo" demo-accounts
        exec "$VENV/bin/authdemo" run "$@"
        ;;
    test)
        shift
        setup
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: ./dev.sh demo [authdemo run options] | ./dev.sh test [pytest options]" >&2
        exit 2
        ;;
esac
