"""Who acts for a seller, remembered per node (decision 0049): pins after the first read no SQL
to authenticate, and a revocation, a role change or a new password made on one node applies to
the very next request on another."""

from __future__ import annotations

import httpx
import pytest

from catalog import service
from catalog.models import Seller
from kernel.db import Database
from kernel.errors import Unauthorized
from kernel.redis_client import connect
from people import accounts
from people.auth_stamps import AuthStamps
from people.keys import PeopleKeys
from people.models import Account
from tests.conftest import PREFIX, SellerAccount
from tests.harness import Server, free_port
from tests.helpers import assert_error, http_room
from tests.test_seller_pages import login_form_csrf
from tests.test_staff import PASSWORD, bearer, clerk
from tests.test_two_nodes import node_b as node_b  # the fixture: a second server
from web.auth import SellerAuth
from web.metrics import Metrics

pytestmark = pytest.mark.storage


async def seller_auth(client: httpx.AsyncClient) -> dict[str, float]:
    """The node's seller authentications so far, by source (cache, sql)."""
    found = {"cache": 0.0, "sql": 0.0}
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith("livecart_seller_auth_total{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('"')[1]] = float(value)
    return found


async def test_pins_after_the_first_read_no_sql_to_authenticate(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    room, product, _ = await http_room(http, seller)
    pin = {"json": {"product_id": product}, "headers": seller.headers}
    assert (await http.post(f"/api/rooms/{room}/pin", **pin)).status_code == 200
    before = await seller_auth(http)
    for _ in range(20):
        assert (await http.post(f"/api/rooms/{room}/pin", **pin)).status_code == 200
    after = await seller_auth(http)
    assert after["sql"] == before["sql"]
    assert after["cache"] == before["cache"] + 20


async def test_a_token_revoked_on_one_node_is_refused_next_on_the_other(
    http: httpx.AsyncClient, seller: SellerAccount, node_b: Server
) -> None:
    made = await http.post(
        "/api/staff/tokens", json={"name": "ops", "role": "admin"}, headers=seller.headers
    )
    as_admin = bearer(made.json()["token"])
    async with httpx.AsyncClient(base_url=node_b.base_url, timeout=30) as on_b:
        for _ in range(2):  # the second is served from node A's cache
            assert (await http.get("/api/staff", headers=as_admin)).status_code == 200
        before = await seller_auth(http)
        assert (await http.get("/api/staff", headers=as_admin)).status_code == 200
        assert (await seller_auth(http))["cache"] == before["cache"] + 1

        revoked = await on_b.delete(f"/api/staff/tokens/{made.json()['id']}", **_h(seller))
        assert revoked.status_code == 204
        assert_error(await http.get("/api/staff", headers=as_admin), 401, "invalid_token")


async def test_a_role_change_and_a_new_password_apply_next_on_every_node(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    server: Server,
    node_b: Server,
    db: Database,
    auth_stamps: AuthStamps,
) -> None:
    address, mine, member_id = await clerk(http, seller, server)
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as browser,
        httpx.AsyncClient(base_url=node_b.base_url, timeout=30) as on_b,
    ):
        page = await browser.get("/seller/login")
        await browser.post(
            "/seller/login",
            data={"csrf": login_form_csrf(page.text), "email": address, "password": PASSWORD},
        )
        for _ in range(2):  # remembered by node A
            assert (await browser.get("/api/orders")).status_code == 200
        assert_error(await browser.get("/api/finance"), 403, "role_forbidden")

        changed = await on_b.put(
            f"/api/staff/members/{member_id}", json={"role": "host"}, **_h(seller)
        )
        assert changed.status_code == 204
        assert_error(await browser.get("/api/orders"), 403, "role_forbidden")
        assert (await browser.get("/api/shops")).status_code == 200  # a host still reads

        # A new password, set by a process that is neither node (as a reset on a third would).
        async with db.session() as session:
            found = await session.get(Account, mine["account"]["id"])
            assert found is not None
            await accounts.change_password(session, auth_stamps, found, PASSWORD + "-new")
        assert_error(await browser.get("/api/shops"), 401, "session_expired")


async def test_with_redis_unreachable_a_node_reads_sql_not_its_cache(
    seller: SellerAccount, db: Database, auth_stamps: AuthStamps
) -> None:
    metrics = Metrics()
    auth = SellerAuth(db, auth_stamps, metrics.seller_auth)
    for _ in range(2):
        assert (await auth.for_token(seller.token)).seller.id == seller.seller.id
    assert _count(metrics, "cache") == 1
    sql_reads = _count(metrics, "sql")

    unreachable = connect(f"redis://127.0.0.1:{free_port()}")  # nothing listens there
    auth.stamps = AuthStamps(unreachable, PeopleKeys(PREFIX))
    try:
        assert (await auth.for_token(seller.token)).seller.id == seller.seller.id
        assert (_count(metrics, "cache"), _count(metrics, "sql")) == (1, sql_reads + 1)
        # Rotated where no stamp could be renewed: the cached entry must not answer.
        async with db.session() as session:
            me = await session.get(Seller, seller.seller.id)
            assert me is not None
            me.token_hash = service.hash_token(seller.token + "-rotated")
            session.add(me)
            await session.commit()
        with pytest.raises(Unauthorized):
            await auth.for_token(seller.token)
    finally:
        await unreachable.aclose()


def _count(metrics: Metrics, source: str) -> float:
    found = metrics.registry.get_sample_value("livecart_seller_auth_total", {"source": source})
    return found or 0.0


def _h(seller: SellerAccount) -> dict[str, dict[str, str]]:
    return {"headers": seller.headers}
