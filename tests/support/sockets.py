"""Which server process holds a given TCP connection (to tell workers apart)."""

from __future__ import annotations

import re
import subprocess


def owner_pid(server_port: int, client_port: int) -> int:
    """The pid of the process that owns the server side of a loopback connection."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{server_port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        if re.search(rf"127\.0\.0\.1:{client_port}\s", line):
            found = re.search(r"pid=(\d+)", line)
            if found:
                return int(found.group(1))
    raise LookupError(f"no server process holds the connection from port {client_port}")
