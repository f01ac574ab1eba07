#!/usr/bin/env bash
# authdemo's quickstart helper.
#   ./dev.sh demo   set everything up, then serve the demo on http://127.0.0.1:8000
#   ./dev.sh test   run the whole test suite on every core (pytest arguments may follow;
#                   -n 0 runs it in one process)
#   ./dev.sh mutate mutation testing of the security-critical modules (mutation/run.py;
#                   a module name, --score or --fail-under may follow); slow, not in CI
#   ./dev.sh bench  install wrk when missing, then run the benchmarks (bench/run.py options may follow)
#   ./dev.sh docs   serve the documentation site on http://127.0.0.1:8001 (mkdocs serve);
#                   ./dev.sh docs build  builds it into site/ as CI does (--strict)
# Needs Python 3.11+ as python3 (or set PYTHON=/path/to/python).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

# setup EXTRAS: the venv with authdemo installed, plus the extras named ("" for serving
# only, "test" for the test tools). Reinstalls when pyproject.toml changed since.
setup() {
    local extras=$1 marker="$VENV/.installed${1:+-$1}"
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
            echo "authdemo needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))" >&2
            exit 1
        }
        echo "Creating $VENV ..." >&2
        "$PYTHON" -m venv "$VENV"
    fi
    if [ ! -f "$marker" ] || [ pyproject.toml -nt "$marker" ]; then
        echo "Installing authdemo${extras:+ and its $extras tools} into $VENV ..." >&2
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet -e ".${extras:+[$extras]}"
        touch "$marker"
    fi
}

case "${1:-}" in
    demo)
        shift
        setup ""   # what serving needs, no test tools
        "$VENV/bin/authdemo" migrate
        "$VENV/bin/authdemo" demo-accounts
        # Two-factor sign-in works out of the box: a throwaway key, made once and kept
        # (0600) beside the demo credentials, used by this path only.
        AUTHDEMO_MFA_KEY=${AUTHDEMO_MFA_KEY:-$("$VENV/bin/authdemo" demo-mfa-key)}
        export AUTHDEMO_MFA_KEY
        exec "$VENV/bin/authdemo" run "$@"
        ;;
    test)
        shift
        setup test
        # Bytecode for our own modules, once: the suite starts hundreds of Python processes
        # (servers, CLI commands) that would otherwise each compile authdemo from source
        # where PYTHONDONTWRITEBYTECODE is set (about 0.1 s each). Stale files are redone.
        "$VENV/bin/python" -m compileall -q -j 0 authdemo tests bench migrations >/dev/null
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    mutate)
        shift
        setup test
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
        setup test
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
    docs)
        shift
        setup docs
        export NO_MKDOCS_2_WARNING=1   # Material's end-of-life banner: noise in every build
        if [ "${1:-}" = build ]; then
            shift
            exec "$VENV/bin/mkdocs" build --strict "$@"
        fi
        exec "$VENV/bin/mkdocs" serve --dev-addr 127.0.0.1:8001 "$@"
        ;;
    *)
        echo "usage: ./dev.sh demo [authdemo run options] | ./dev.sh test [pytest options] | ./dev.sh mutate [modules] [--score] | ./dev.sh bench [bench options] | ./dev.sh docs [build]" >&2
        exit 2
        ;;
esac
