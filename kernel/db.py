"""The one place that creates database engines and sessions (SQLite by default, PostgreSQL via
asyncpg). Callers get a ``Database`` from the app's lifespan; nothing here is a global.

A PostgreSQL URL takes libpq's TLS parameters (``?sslmode=verify-full&sslrootcert=ca.pem``):
asyncpg reads them from a DSN, not as keyword arguments, so they are handed to it as one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def normalise_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://, sqlite:///) and pick the async
    driver for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def is_sqlite(url: str) -> bool:
    return normalise_url(url).startswith("sqlite")


# libpq's connection parameters for TLS, as asyncpg understands them in a DSN.
TLS_PARAMETERS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "sslnegotiation",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
    }
)


def redacted(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def _tls_connect_args(url: str) -> tuple[str, dict[str, Any]]:
    """Split the TLS parameters off a PostgreSQL URL: (the URL without them, the driver's
    connect arguments carrying them)."""
    parsed = make_url(url)
    tls = {k: v for k, v in parsed.query.items() if k in TLS_PARAMETERS}
    if not tls:
        return url, {}
    rest = parsed.difference_update_query(tls)
    # Only the query of this DSN matters: host, user and database come from the URL itself.
    dsn = "postgresql://?" + urlencode(tls, doseq=True)
    return rest.render_as_string(hide_password=False), {"dsn": dsn}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the order worker write while the API reads; busy_timeout makes concurrent
    # writers wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> AsyncEngine:
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    url, connect_args = _tls_connect_args(url)
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True, connect_args=connect_args
    )


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    async def close(self) -> None:
        await self.engine.dispose()
