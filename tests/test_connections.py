"""Production connections against real servers: a Redis ACL user kept to livecart's key prefix,
Redis over TLS (``rediss://`` with the CA in the URL), PostgreSQL over TLS (libpq's ``sslmode``
and ``sslrootcert`` in ``DATABASE_URL``), each carrying a whole sale from reserve to the SQL
order, and ``livecart audit`` reading the books through the same URLs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text

from kernel.db import Database, is_sqlite
from tests.conftest import PREFIX, SellerAccount, start_server
from tests.harness import Server, stop_server
from tests.helpers import PaidOrder, pay_and_wait_for_order
from tests.tlsservers import Certificates, make_certificates, tls_postgres, tls_redis
from web.auth import GuestSessions
from web.migrate import upgrade

pytestmark = pytest.mark.storage

# What livecart sends to Redis, by ACL category: its Functions (FUNCTION LOAD, FCALL), hashes,
# sets, strings, streams, the room bus's pub/sub, MULTI pipelines, the connection's own
# commands, and TIME (the Functions' clock). Nothing else from @admin or @dangerous.
ACL_COMMANDS = [
    "+@connection",
    "+@read",
    "+@write",
    "+@stream",
    "+@pubsub",
    "+@transaction",
    "+@scripting",
    "-@admin",
    "-@dangerous",
    "+time",  # the Functions' clock
    "+cluster|slots",  # a cluster client's map of who serves which slots
    "+cluster|shards",
    "+info",  # a primary's replicas, when WAIT finds fewer than it asked for
]


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]  # host:port, or a cluster's host:port,host:port…
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{hosts}"
    return urlunsplit(parts._replace(netloc=netloc))


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "web.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def a_sale_through(server: Server, seller: SellerAccount, sessions: GuestSessions) -> int:
    """Readiness, then a listing, a reservation, a checkout and the order in SQL: the deal."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        paid: PaidOrder = await pay_and_wait_for_order(http, seller, sessions)
    return paid.item.deal_id


def books_through(
    redis_url: str, database_url: str, prefix: str, deal_id: int
) -> dict[str, object]:
    """``livecart audit`` over the same URLs: another process, another client, same result."""
    found = cli(
        "audit", "--deal", str(deal_id), "--wait", "10",
        REDIS_URL=redis_url, DATABASE_URL=database_url, LIVECART_REDIS_PREFIX=prefix,
    )  # fmt: skip
    assert found.returncode == 0, found.stdout + found.stderr
    books: dict[str, object] = json.loads(found.stdout)
    return books


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path / "certs")


@pytest.fixture
def tls_redis_port(tmp_path: Path, certs: Certificates) -> Iterator[int]:
    with tls_redis(tmp_path, certs) as port:
        yield port


@pytest.fixture
def tls_postgres_port(tmp_path: Path, certs: Certificates) -> Iterator[int]:
    with tls_postgres(tmp_path, certs) as port:
        yield port


@pytest.fixture
async def acl_user(redis: Redis) -> AsyncIterator[tuple[str, str, str]]:
    """An ACL user that may touch only keys and channels under its own prefix: (user,
    password, prefix). The password has characters a URL must percent-encode."""
    user = f"livecart-test-{secrets.token_hex(4)}"
    password = f"p@ss/{secrets.token_hex(8)}:%"
    prefix = f"{PREFIX}acl{secrets.token_hex(3)}"
    async with each_server(redis) as servers:
        for server in servers:  # a cluster's users are each node's own
            await server.acl_setuser(
                user,
                enabled=True,
                passwords=[f"+{password}"],
                keys=[f"{prefix}*"],
                channels=[f"{prefix}*"],  # the rooms' events (sharded) and notices channels
                commands=ACL_COMMANDS,
                reset_keys=True,
                reset_channels=True,
            )
    try:
        yield user, password, prefix
    finally:
        async with each_server(redis) as servers:
            for server in servers:
                await server.acl_deluser(user)


@contextlib.asynccontextmanager
async def each_server(redis: Redis) -> AsyncIterator[list[Redis]]:
    """The client itself for one server; a client of each node for a cluster (closed after)."""
    if not isinstance(redis, RedisCluster):
        yield [redis]
        return
    await redis.initialize()  # it learns the nodes on its first command
    nodes = [Redis(host=n.host, port=n.port, decode_responses=True) for n in redis.get_nodes()]
    try:
        yield nodes
    finally:
        for node in nodes:
            await node.aclose()


async def denials(redis: Redis, user: str) -> list[Any]:
    """What the servers' ACL logs recorded refusing to this user."""
    found = []
    async with each_server(redis) as servers:
        for server in servers:
            log: list[Any] = await server.acl_log(count=1000)
            found += [entry for entry in log if entry.get("username") == user]
    return found


async def test_an_acl_user_kept_to_the_key_prefix_serves_a_whole_sale(
    redis: Redis,
    redis_url: str,
    database_url: str,
    seller: SellerAccount,
    sessions: GuestSessions,
    acl_user: tuple[str, str, str],
    tmp_path: Path,
) -> None:
    user, password, prefix = acl_user
    url = with_credentials(redis_url, user, password)
    server = start_server(url, database_url, tmp_path / "server.log", LIVECART_REDIS_PREFIX=prefix)
    try:
        deal_id = await a_sale_through(server, seller, sessions)
    finally:
        stop_server(server)
    books = await asyncio.to_thread(books_through, url, database_url, prefix, deal_id)
    assert (books["ok"], books["orders"]) == (True, 1)
    assert await denials(redis, user) == []  # not one command or key outside what it may use
    log = (tmp_path / "server.log").read_text()
    assert "NOPERM" not in log and "Traceback" not in log, log


async def test_a_wrong_redis_password_is_refused_by_name(
    redis_url: str, acl_user: tuple[str, str, str]
) -> None:
    user, _, prefix = acl_user
    found = await asyncio.to_thread(
        cli, "replay-dead-letters", REDIS_URL=with_credentials(redis_url, user, "wrong"),
        LIVECART_REDIS_PREFIX=prefix,
    )  # fmt: skip
    assert found.returncode != 0
    assert "WRONGPASS" in found.stderr or "invalid username-password" in found.stderr


async def test_rediss_with_the_ca_in_the_url_serves_a_whole_sale(
    redis: Redis,
    database_url: str,
    seller: SellerAccount,
    sessions: GuestSessions,
    certs: Certificates,
    tls_redis_port: int,
    tmp_path: Path,
) -> None:
    url = f"rediss://127.0.0.1:{tls_redis_port}/0?ssl_ca_certs={quote(str(certs.ca))}"
    # A prefix of its own: the database is shared with nodes whose Redis is the test's own, and
    # the ledger audit matches a prefix's refunds against that prefix's sandbox.
    prefix = PREFIX + "tls"
    server = start_server(url, database_url, tmp_path / "server.log", LIVECART_REDIS_PREFIX=prefix)
    try:
        deal_id = await a_sale_through(server, seller, sessions)
    finally:
        stop_server(server)
    books = await asyncio.to_thread(books_through, url, database_url, prefix, deal_id)
    assert (books["ok"], books["orders"]) == (True, 1)
    # The books are on the TLS server, not on the test's own Redis.
    tls = Redis.from_url(url, decode_responses=True)
    try:
        assert await tls.exists(f"{prefix}:{{deal:{deal_id}}}:deal") == 1
        assert await redis.exists(f"{prefix}:{{deal:{deal_id}}}:deal") == 0
    finally:
        await tls.aclose()


async def test_rediss_checks_the_certificate(certs: Certificates, tls_redis_port: int) -> None:
    untrusted = Redis.from_url(f"rediss://127.0.0.1:{tls_redis_port}/0")  # the system's CAs
    plain = Redis.from_url(f"redis://127.0.0.1:{tls_redis_port}/0")
    try:
        with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.ping()
        with pytest.raises(RedisConnectionError):
            await plain.ping()
    finally:
        await untrusted.aclose()
        await plain.aclose()


async def test_postgres_over_verified_tls_serves_a_whole_sale(
    redis_url: str,
    sessions: GuestSessions,
    certs: Certificates,
    tls_postgres_port: int,
    tmp_path: Path,
) -> None:
    base = f"postgresql://postgres@127.0.0.1:{tls_postgres_port}/postgres"
    url = f"{base}?sslmode=verify-full&sslrootcert={quote(str(certs.ca))}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            assert (await conn.execute(text(query))).scalar() is True
        async with db.session() as session:
            from catalog import service

            me, shop, token = await service.create_seller(session, "TLS", "tls@example.com")
    finally:
        await db.close()
    prefix = f"{PREFIX}pg{secrets.token_hex(3)}"
    server = start_server(redis_url, url, tmp_path / "server.log", LIVECART_REDIS_PREFIX=prefix)
    try:
        deal_id = await a_sale_through(server, SellerAccount(me, shop, token), sessions)
    finally:
        stop_server(server)
    books = await asyncio.to_thread(books_through, redis_url, url, prefix, deal_id)
    assert (books["ok"], books["orders"]) == (True, 1)
    # Without the CA the server's certificate is not trusted: refused in one line, by name.
    refused = await asyncio.to_thread(cli, "migrate", DATABASE_URL=f"{base}?sslmode=verify-full")
    assert refused.returncode == 1
    assert "root certificate" in refused.stderr and "Traceback" not in refused.stderr


async def test_sslmode_require_reaches_the_driver(database_url: str) -> None:
    """On a PostgreSQL without TLS (the CI's), ``sslmode=require`` is refused by name: the
    parameter reached asyncpg (it used to fail as an unknown keyword argument)."""
    if is_sqlite(database_url):
        pytest.skip("needs DATABASE_URL=postgresql://...")
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            tls = await conn.execute(text("SHOW ssl"))
            if tls.scalar() == "on":
                pytest.skip("this PostgreSQL has TLS on")
    finally:
        await db.close()
    separator = "&" if "?" in database_url else "?"
    found = await asyncio.to_thread(
        cli, "migrate", DATABASE_URL=f"{database_url}{separator}sslmode=require"
    )
    assert found.returncode == 1
    assert "SSL" in found.stderr and "Traceback" not in found.stderr, found.stderr
