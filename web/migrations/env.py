"""Alembic environment: runs migrations over the app's async engine (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import catalog.models
import checkout.models  # noqa: F401  (registers the order tables on SQLModel.metadata)
import live.models  # noqa: F401  (registers the rooms table)
import people.models  # noqa: F401  (registers the accounts table)
from kernel.db import make_engine

target_metadata = SQLModel.metadata
assert catalog.models


def run_with(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
    finally:
        await engine.dispose()  # a migration that refuses must not leave a connection behind


if context.is_offline_mode():
    raise SystemExit("livecart migrations run online only")
asyncio.run(run_online())
