#!/usr/bin/env bash
# authdemo's quickstart helper.
#   ./dev.sh demo   set everything up, then serve the demo on http://127.0.0.1:8000
#   ./dev.sh test   run the whole test suite (pytest arguments may follow)
#   ./dev.sh mutate mutation testing of the security-critical modules (mutation/run.py;
#                   a module name, --score or --fail-under may follow); slow, not in CI
#   ./dev.sh bench  install wrk when missing, then run the benchmarks (bench/run.py options may follow)
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
        "$VENV/bin/authdemo" migrate
        "$VENV/bin/authdemo" demo-accounts
        exec "$VENV/bin/authdemo" run "$@"
        ;;
    test)
        shift
        setup
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    mutate)
        shift
        setup
        # mutmut is pinned in the `mutate` extra; installed on first use only.
        if [ ! -f "$VENV/.installed-mutate" ] || [ pyproject.toml -nt "$VENV/.installed-mutate" ]; then
            echo "Installing the mutation tool into $VENV ..." >&2
            "$VENV/bin/python" -m pip install --quiet -e '.[test,mutate]'
            touch "$VENV/.installed-mutate"
        fi
        # Low priority: two cores are shared with whoever else works on this machine.
        exec nice -n 15 "$VENV/bin/python" -m mutation.run "$@"
        ;;
    bench)
        shift
        setup
        if ! command -v wrk >/dev/null; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                echo "Installing wrk for the HTTP load ..." >&2
                if ! apt-get install -y wrk >/dev/null 2>&1; then
                    apt-get update >/dev/null 2>&1 || true
                    apt-get install -y wrk >/dev/null 2>&1 \
                        || echo "Could not install wrk; the HTTP rows use the (slower) asyncio client." >&2
                fi
            else
                echo "wrk is not installed (apt-get install wrk); the HTTP rows use the (slower) asyncio client." >&2
            fi
        fi
        exec "$VENV/bin/python" -m bench.run "$@"
        ;;
    *)
        echo "usage: ./dev.sh demo [authdemo run options] | ./dev.sh test [pytest options] | ./dev.sh mutate [modules] [--score] | ./dev.sh bench [bench options]" >&2
        exit 2
        ;;
esac
