"""A PostgreSQL database of a benchmark's own, created on a server the machine runs and dropped
afterwards (loadtests/failover.py, loadtests/bench_pipeline_pg.py)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator

import asyncpg


@contextlib.contextmanager
def scratch_database(server_url: str, name_prefix: str) -> Iterator[str]:
    """A fresh database on the server of ``server_url`` (any database of it), dropped after."""
    name = f"{name_prefix}_{secrets.token_hex(4)}"
    dsn = server_url.replace("postgresql+asyncpg://", "postgresql://")

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
