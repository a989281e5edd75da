"""Real parts only: a real Redis-compatible server (the embedded Valkey, or ``REDIS_URL``), a
real SQL database (a SQLite file, or ``DATABASE_URL``), and a real ``livecart serve`` process for
HTTP tests. Keys carry a per-run prefix and are deleted afterwards."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright
from redis.asyncio import Redis
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from catalog import service
from catalog.models import Seller, Shop
from checkout.holds import HoldStore
from checkout.keys import Keyspace
from kernel.db import Database, is_sqlite, normalise_url
from kernel.redis_client import connect
from people.auth_stamps import AuthStamps
from people.keys import PeopleKeys
from tests.browser import CHROMIUM_ARGS, chromium_or_skip
from tests.harness import NO_ADDRESS_LIMITS, Server, free_port, livecart, serve, stop_server
from web.auth import GuestSessions
from web.embedded import EmbeddedValkey
from web.migrate import upgrade

SECRET = "test-secret-" + secrets.token_hex(8)
PREFIX = f"lct{os.getpid()}"
# Fixtures kept in their own modules (they need tests.helpers, which needs this one).
pytest_plugins = ["tests.stores"]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedValkey(tmp_path_factory.mktemp("valkey"), persistent=False) as valkey:
        yield valkey.url


def empty_schema(database_url: str) -> None:
    """Drop every table of a PostgreSQL database. Walking the downgrades instead would stop at
    one that refuses to drop data (0011 keeps shelf orders), which a previous run leaves."""

    async def drop() -> None:
        engine = create_async_engine(normalise_url(database_url))
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(drop())


def database_of_worker(database_url: str, worker: str) -> str:
    """A PostgreSQL database of this xdist worker's own, beside the one named (``test`` ->
    ``test_gw0``), made if missing: workers never share a schema (decision 0029)."""
    url = make_url(database_url)
    name = f"{url.database}_{worker}"

    async def create() -> None:
        engine = create_async_engine(normalise_url(database_url), isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            found = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not found:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()

    asyncio.run(create())
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("DATABASE_URL")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('sql') / 'livecart.db'}"
    elif not is_sqlite(url):
        if worker:
            url = database_of_worker(url, worker)
        empty_schema(url)  # the PostgreSQL test database, whatever a run left there
    upgrade(url)
    return url


@pytest.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = connect(redis_url)
    yield client
    async for key in client.scan_iter(match=f"{PREFIX}*", count=1000):  # every keyspace of the run
        await client.delete(key)
    await client.aclose()


@pytest.fixture(scope="session")
def auth_stamps(redis: Redis) -> AuthStamps:
    """The servers' sellers' sign-in stamps: a change made here reaches every test node."""
    return AuthStamps(redis, PeopleKeys(PREFIX))


@pytest.fixture(scope="session")
def keys() -> Keyspace:
    return Keyspace(PREFIX)


@pytest.fixture(scope="session")
async def holds(redis: Redis, keys: Keyspace) -> HoldStore:
    """Holds in the server's keyspace: deals made here are served by the test server."""
    store = HoldStore(redis, keys)
    await store.install()
    return store


@pytest.fixture(scope="session")
def private_keys() -> Keyspace:
    """A keyspace no server process reads: no sweeper or pipeline but the test's own."""
    return Keyspace(PREFIX + "p")


@pytest.fixture(scope="session")
async def private_holds(redis: Redis, private_keys: Keyspace) -> HoldStore:
    store = HoldStore(redis, private_keys)
    await store.install()
    return store


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.close()


@pytest.fixture(scope="session")
def sessions() -> GuestSessions:
    return GuestSessions(SECRET, 3600)


@dataclass
class SellerAccount:
    seller: Seller
    shop: Shop
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def seller(db: Database) -> SellerAccount:
    async with db.session() as session:
        me, shop, token = await service.create_seller(
            session, "Test Seller", f"seller-{secrets.token_hex(6)}@example.com"
        )
    return SellerAccount(me, shop, token)


def start_server(
    redis_url: str, database_url: str, log: Path, startup_s: float = 30, **env: str
) -> Server:
    """``livecart serve`` on the test stores and keyspace, with ``env`` on top; its data
    directory is the log's."""
    port = free_port()
    full_env = {
        **os.environ,
        **NO_ADDRESS_LIMITS,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "LIVECART_REDIS_PREFIX": PREFIX,
        "LIVECART_SECRET_KEY": SECRET,
        "LIVECART_DATA_DIR": str(log.parent),
        "LIVECART_PORT": str(port),
        **env,
    }
    return serve(livecart("serve"), port=port, env=full_env, log=log, within_s=startup_s)


@pytest.fixture(scope="session")
def server(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(
        redis_url, database_url, tmp_path_factory.mktemp("server") / "server.log", **WS_ENV
    )
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def storm_server(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A second node on the same stores with the default settings (a ping every 20 s, 20 s to
    answer, a 10 s hello timeout), for tests that hold hundreds of websockets in one test
    process: they open a whole wave before any of it says hello, which can take longer than
    WS_ENV's two-second hello timeout on a busy machine."""
    running = start_server(redis_url, database_url, tmp_path_factory.mktemp("storm") / "server.log")
    yield running
    stop_server(running)


# A short hello timeout so the protocol tests see it quickly. Keepalive pings a minute apart:
# on a loaded two-core machine a one-second pong deadline closed a browser's or a test
# client's socket mid-test (1011), and a closed studio misses its notices. The keepalive
# itself is tested on its own node (test_gateway's ``pinging_server``).
WS_ENV = {
    "LIVECART_WS_HELLO_TIMEOUT_S": "2",
    "LIVECART_WS_PING_INTERVAL_S": "60",
    "LIVECART_WS_PING_TIMEOUT_S": "60",
    "LIVECART_ALLOWED_ORIGINS": "https://shop.example",
}


TIGHT_CHAT_WINDOW_MS = 2000


@pytest.fixture(scope="session")
def tight_server(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A second node on the same stores with two-second holds, a tiny room log, a 64 KiB send
    buffer per viewer and a two-second chat window."""
    running = start_server(
        redis_url,
        database_url,
        tmp_path_factory.mktemp("tight") / "server.log",
        LIVECART_HOLD_TTL_S="2",
        LIVECART_ROOM_LOG_MAXLEN="5",
        LIVECART_CHAT_WINDOW_MS=str(TIGHT_CHAT_WINDOW_MS),
        LIVECART_WS_MAX_BUFFER="65536",
        # WS_ENV's keepalive is long: a viewer that stops reading must be dropped for its
        # buffer here, not for missing pongs.
        **WS_ENV,
    )
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def narrow_server(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A node whose only difference is a 64 KiB send buffer per viewer:
    for dropping a viewer that stops reading. tight_server's five-event room log would make a
    pin storm's viewers resync first whenever the bus lags the log (a cluster's shard
    subscription, just made, can), which is not the drop under test."""
    running = start_server(
        redis_url,
        database_url,
        tmp_path_factory.mktemp("narrow") / "server.log",
        LIVECART_WS_MAX_BUFFER="65536",
        **WS_ENV,
    )
    yield running
    stop_server(running)


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    # Idle connections go well before uvicorn closes them (its keep-alive is 5 s, httpx's
    # default expiry too): reusing one the server is closing fails the request with ReadError,
    # which a test that left many idle (a race's 64) met in the next test on the same worker.
    limits = httpx.Limits(
        max_connections=WIDTH, max_keepalive_connections=WIDTH, keepalive_expiry=2.0
    )
    # A race queues thousands of requests: waiting for a turn is the test's own queue, not the
    # server's slowness, so only connecting, reading and writing time out.
    timeout = httpx.Timeout(60, pool=None)
    async with Bounded(base_url=server.base_url, limits=limits, timeout=timeout) as client:
        yield client


WIDTH = 128  # requests a test's client has in flight at once


class Bounded(httpx.AsyncClient):
    """A client that queues its own requests beyond ``WIDTH`` in flight. httpcore's pool
    scans every queued request against every connection each time one starts or ends, so
    2,000 requests gathered at once cost the test process minutes of CPU on a slow machine
    (a race timed out on the cluster run that way) while the server idled; 128 in flight
    are still a race for the server, whose batches take what is there."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._turns = asyncio.Semaphore(WIDTH)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        async with self._turns:
            return await super().send(request, **kwargs)


def viewer_headers(sessions: GuestSessions) -> tuple[str, dict[str, str]]:
    buyer, token = sessions.issue()
    return buyer, {"Authorization": f"Bearer {token}"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


# The page tests' browser (Debian's Chromium) and where their screenshots go: one per module.
@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_or_skip()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("LIVECART_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
