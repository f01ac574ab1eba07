"""``python -m bench.serve KIND --port N``: run one reference app in one process."""

from __future__ import annotations

import argparse
import os
from typing import Any

from sanic import Sanic

from authdemo.collector import tune_collector
from authdemo.config import gc_thresholds
from bench.apps import FACTORIES


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=sorted(FACTORIES))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = FACTORIES[args.kind]()
    app.prepare(host="127.0.0.1", port=args.port, single_process=True, motd=False, access_log=False)

    @app.after_server_start
    async def collector(_: Sanic[Any, Any]) -> None:
        # The collector settings authdemo's own server uses (AUTHDEMO_GC_THRESHOLDS, read
        # the same way), so that a ratio compares the work, not two collector settings.
        tune_collector(gc_thresholds(os.environ.get("AUTHDEMO_GC_THRESHOLDS") or None))

    Sanic.serve_single(primary=app)


if __name__ == "__main__":
    main()
