"""``python -m bench.serve KIND --port N``: run one reference app in one process."""

from __future__ import annotations

import argparse

from sanic import Sanic

from bench.apps import FACTORIES


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=sorted(FACTORIES))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = FACTORIES[args.kind]()
    app.prepare(host="127.0.0.1", port=args.port, single_process=True, motd=False, access_log=False)
    Sanic.serve_single(primary=app)


if __name__ == "__main__":
    main()
