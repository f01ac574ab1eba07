"""Real `authdemo run` processes: several workers, several hosts, a database that goes away."""

from __future__ import annotations

import asyncio

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from tests.support.db import in_thread

PASSWORD = "correct horse"


def create_users(db_url: str, *names: str) -> None:
    async def create() -> None:
        async with runtime(Settings(database_url=db_url)) as rt:
            for name in names:
                await rt.service.create_user(name, PASSWORD)

    in_thread(lambda: asyncio.run(create()))
