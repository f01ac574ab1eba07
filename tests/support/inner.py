"""Run a Python tool (pytest, mypy) in a scratch folder, finding this checkout's packages
(``authdemo``, ``tests``) on ``PYTHONPATH`` as an installed package would be found."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.db import ROOT


def run_module(cwd: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m argv…`` in ``cwd``; its output captured, its exit status not checked."""
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
