"""Secrets read from files and secret-key rotation: guest tokens, seller cookies, CSRF tokens
and studio tickets signed with a previous key keep working while it is configured, new ones are
signed with the current key, and once the previous key is removed the old ones are refused."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog.models import Seller
from kernel.errors import Unauthorized
from tests.conftest import SellerAccount, start_server
from tests.harness import Server, stop_server
from tests.helpers import assert_error
from tests.test_seller_pages import sign_in
from tests.wsclient import WsViewer
from web.auth import GuestSessions
from web.cookies import SellerSessions, token_tag
from web.settings import Settings

OLD, NEW = "old-" + secrets.token_hex(16), "new-" + secrets.token_hex(16)


def settings_from(**env: str) -> Settings:
    return Settings.from_env(env)


# ---------------------------------------------------------------------------------------------
# Settings: secrets from files


def test_the_secret_key_is_read_from_its_file_without_the_line_break(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text(f"  {NEW}\n")
    found = settings_from(LIVECART_SECRET_KEY_FILE=str(key_file))
    assert found.secret_key == NEW
    assert found.signing_keys == (NEW,)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(" \n", "LIVECART_SECRET_KEY_FILE: .* is empty", id="empty"),
        pytest.param(None, "LIVECART_SECRET_KEY_FILE: cannot read", id="missing"),
        pytest.param(b"\xff\xfe", "LIVECART_SECRET_KEY_FILE: cannot read", id="not-text"),
    ],
)
def test_an_unusable_secret_file_stops_startup_with_its_name(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    key_file = tmp_path / "secret_key"
    if isinstance(content, str):
        key_file.write_text(content)
    elif isinstance(content, bytes):
        key_file.write_bytes(content)
    with pytest.raises(SystemExit, match=message):
        settings_from(LIVECART_SECRET_KEY_FILE=str(key_file))


def test_a_secret_given_both_ways_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text(NEW)
    with pytest.raises(SystemExit, match="LIVECART_SECRET_KEY or LIVECART_SECRET_KEY_FILE"):
        settings_from(LIVECART_SECRET_KEY=NEW, LIVECART_SECRET_KEY_FILE=str(key_file))


def test_previous_keys_come_before_the_current_one(tmp_path: Path) -> None:
    listed = settings_from(LIVECART_SECRET_KEY=NEW, LIVECART_PREVIOUS_SECRET_KEYS=f"a, {OLD},")
    assert listed.signing_keys == ("a", OLD, NEW)
    keys_file = tmp_path / "previous"
    keys_file.write_text(f"a\n{OLD}\n\n")
    from_file = settings_from(
        LIVECART_SECRET_KEY=NEW, LIVECART_PREVIOUS_SECRET_KEYS_FILE=str(keys_file)
    )
    assert from_file.signing_keys == ("a", OLD, NEW)


def test_connection_urls_are_read_from_files_too(tmp_path: Path) -> None:
    (tmp_path / "redis").write_text("rediss://lc:p%40ss@cache.internal:6380/0\n")
    (tmp_path / "db").write_text("postgresql://lc:pw@db.internal/shop?sslmode=verify-full\n")
    found = settings_from(
        REDIS_URL_FILE=str(tmp_path / "redis"), DATABASE_URL_FILE=str(tmp_path / "db")
    )
    assert found.redis_url == "rediss://lc:p%40ss@cache.internal:6380/0"
    assert found.database_url == "postgresql://lc:pw@db.internal/shop?sslmode=verify-full"


def test_a_redis_url_redis_py_cannot_read_is_refused_without_its_password() -> None:
    with pytest.raises(SystemExit, match="REDIS_URL") as refused:
        settings_from(REDIS_URL="redis+tls://lc:hunter2@cache.internal:6380")
    assert "hunter2" not in str(refused.value)


# ---------------------------------------------------------------------------------------------
# Signing with several keys, without a server


def test_a_guest_token_of_the_previous_key_verifies_until_the_key_is_removed() -> None:
    buyer, token = GuestSessions(OLD, 3600).issue()
    rotated = GuestSessions([OLD, NEW], 3600)
    assert rotated.verify(token) == buyer
    new_buyer, new_token = rotated.issue()
    assert GuestSessions(NEW, 3600).verify(new_token) == new_buyer  # signed with the newest
    with pytest.raises(Unauthorized) as refused:
        GuestSessions(NEW, 3600).verify(token)
    assert refused.value.code == "invalid_token"


def test_seller_cookies_csrf_tokens_and_tickets_of_the_previous_key_still_work() -> None:
    seller = Seller(id=7, name="S", email="s@example.com", token_hash="ab" * 32, created_ms=1)
    before = SellerSessions(OLD, 3600)
    assert seller.id is not None
    tag = token_tag(seller)
    cookie, ticket = before.issue(seller.id, tag), before.ticket(seller.id, tag, 3)
    csrf = before.csrf_token(cookie)
    rotated = SellerSessions([OLD, NEW], 3600)
    assert rotated.read(cookie).seller_id == 7
    assert rotated.csrf_ok(cookie, csrf)  # a page rendered before the rotation still posts
    assert rotated.read_ticket(ticket) == (7, "ab" * 8, 3)
    assert rotated.csrf_token(cookie) != csrf  # pages rendered now carry the newest
    assert SellerSessions(NEW, 3600).csrf_ok(cookie, rotated.csrf_token(cookie))
    after = SellerSessions(NEW, 3600)
    with pytest.raises(Unauthorized):
        after.read(cookie)
    with pytest.raises(Unauthorized):
        after.read_ticket(ticket)
    assert not after.csrf_ok(cookie, csrf)


# ---------------------------------------------------------------------------------------------
# A real server restarted with a rotated key


@contextmanager
def server_with(
    redis_url: str, database_url: str, log: Path, secret: Path, previous: str = ""
) -> Iterator[Server]:
    running = start_server(
        redis_url,
        database_url,
        log,
        LIVECART_SECRET_KEY="",  # conftest's, replaced by the file
        LIVECART_SECRET_KEY_FILE=str(secret),
        LIVECART_PREVIOUS_SECRET_KEYS=previous,
    )
    try:
        yield running
    finally:
        stop_server(running)


@asynccontextmanager
async def client(server: Server, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, **kwargs) as http:
        yield http


async def studio_hello(server: Server, room_id: int, ticket: str, answer: str) -> dict[str, Any]:
    """The room's answer (``welcome`` or ``error``) to a studio's hello with ``ticket``."""
    viewer = await WsViewer.open(server.base_url, room_id)
    try:
        await viewer.send(type="hello", token=ticket)
        return await viewer.next(answer)
    finally:
        await viewer.close()


@pytest.mark.storage
async def test_rotating_the_secret_key_signs_nobody_out_until_the_old_key_goes(
    redis_url: str, database_url: str, seller: SellerAccount, tmp_path: Path
) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text(OLD + "\n")
    log = tmp_path / "server.log"
    with server_with(redis_url, database_url, log, key_file) as before:
        async with client(before) as http:
            guest = (await http.post("/api/session")).json()["token"]
        browser = httpx.Cookies()
        async with client(before, cookies=browser) as http:
            csrf = await sign_in(http, seller.token)
            room = {"shop_id": seller.shop.id, "title": "Rotation room"}
            made = await http.post("/api/rooms", json=room, headers={"X-CSRF-Token": csrf})
            assert made.status_code == 201, made.text
            room_id = made.json()["room"]["id"]
            studio = (await http.get(f"/studio/{room_id}")).text.replace("\\u0022", '"')
            (ticket,) = re.findall(r'"ticket": ?"(lc_st_[^"]+)"', studio)
            browser = http.cookies

    key_file.write_text(NEW + "\n")
    guest_auth = {"Authorization": f"Bearer {guest}"}
    with server_with(redis_url, database_url, log, key_file, previous=OLD) as rotated:
        async with client(rotated) as http:
            assert (await http.get("/api/orders", headers=guest_auth)).status_code == 200
            fresh = (await http.post("/api/session")).json()["token"]
        async with client(rotated, cookies=browser) as http:
            assert (await http.get("/seller")).status_code == 200
            room = {"shop_id": seller.shop.id, "title": "After rotation"}
            # The CSRF token of a page rendered before the rotation.
            made = await http.post("/api/rooms", json=room, headers={"X-CSRF-Token": csrf})
            assert made.status_code == 201, made.text
        assert (await studio_hello(rotated, room_id, ticket, "welcome"))["role"] == "creator"

    with server_with(redis_url, database_url, log, key_file) as after:
        async with client(after) as http:
            assert_error(await http.get("/api/orders", headers=guest_auth), 401, "invalid_token")
            fresh_auth = {"Authorization": f"Bearer {fresh}"}
            assert (await http.get("/api/orders", headers=fresh_auth)).status_code == 200
        async with client(after, cookies=browser) as http:
            assert (await http.get("/seller")).headers["location"].startswith("/seller/login")
            room = {"shop_id": seller.shop.id, "title": "Refused"}
            refused = await http.post("/api/rooms", json=room, headers={"X-CSRF-Token": csrf})
            assert_error(refused, 401, "session_expired")
        assert (await studio_hello(after, room_id, ticket, "error"))["code"] == "invalid_token"
