"""An order still unshipped at its hard ship limit is cancelled and refunded by the node's own
order rules, with nothing but time passing: a node whose limit is the moment of payment
(``LIVECART_SHIP_LIMIT_HOURS=0``) and whose rules run every 0.2 s. The rules take only the
orders of the node's own Redis prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col, select

from checkout.holds import HoldStore
from checkout.keys import Keyspace
from checkout.models import Order
from checkout.order_sweeper import cancel_overdue
from checkout.payments import SandboxProvider
from kernel.clock import now_ms
from tests.conftest import PREFIX, SellerAccount, start_server
from tests.harness import Server, stop_server
from tests.helpers import pay_and_wait_for_order, until
from tests.stores import Stores
from tests.test_refunds import refunds_of, sold_orders
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

HURRIED_PREFIX = PREFIX + "ac"


@pytest.fixture(scope="module")
def impatient(
    redis_url: str, database_url: str, redis: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(
        redis_url,
        database_url,
        tmp_path_factory.mktemp("impatient") / "server.log",
        LIVECART_REDIS_PREFIX=HURRIED_PREFIX,
        LIVECART_SHIP_LIMIT_HOURS="0",
        LIVECART_MONEY_INTERVAL_S="0.2",
    )
    yield running
    stop_server(running)


@pytest.fixture
async def impatient_http(impatient: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=impatient.base_url, timeout=60) as client:
        yield client


async def test_an_order_unshipped_at_its_limit_is_cancelled_and_refunded(
    impatient_http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    redis: Any,
) -> None:
    paid = await pay_and_wait_for_order(impatient_http, seller, sessions)
    order_id = paid.order["id"]
    assert paid.order["ship_limit_ms"] == paid.order["paid_ms"]  # LIVECART_SHIP_LIMIT_HOURS=0

    async def cancelled() -> bool:
        r = await impatient_http.get(f"/api/orders/{order_id}", headers=seller.headers)
        return bool(r.json()["order"]["status"] == "cancelled")

    await until(cancelled, f"order {order_id} cancelled by the order rules")
    r = await impatient_http.get(f"/api/orders/{order_id}", headers=seller.headers)
    order = r.json()["order"]
    assert (order["refunded"], order["restocked_units"]) == (order["total"], order["quantity"])
    last = order["events"][-1]
    assert (last["to"], last["actor"]) == ("cancelled", "sweeper")
    provider = SandboxProvider(redis, Keyspace(HURRIED_PREFIX).sandbox)
    [charge] = [c for c in await provider.charges() if c.id == order["payment_ref"]]
    assert charge.amount_refunded == order["total"]


async def test_a_nodes_rules_take_its_own_orders_and_older_ones_not_anothers(
    stores: Stores,
) -> None:
    """Two deployments on one database (different Redis prefixes): an overdue order of the
    other is left alone (its charge is in the other's provider), one written before orders named
    their keyspace ("") is taken, as it always was."""
    # A keyspace of this test's own, and orders due only in a century: no other test's order
    # is the rules' to take here, and no server of the run (on the wall clock) takes these.
    keys = Keyspace(f"{PREFIX}own")
    holds = HoldStore(stores.redis, keys)
    await holds.install()
    mine = replace(stores, holds=holds, keys=keys)
    deal = await mine.live_deal(quantity=10)
    own, legacy, foreign = await sold_orders(mine, deal, 3)
    assert own.keyspace == keys.prefix  # the pipeline names it
    due = now_ms() + 100 * 365 * 86_400_000
    async with mine.db.session() as session:
        for order, keyspace in ((own, own.keyspace), (legacy, ""), (foreign, "other")):
            moved = update(Order).where(col(Order.id) == order.id)
            await session.exec(moved.values(keyspace=keyspace, ship_limit_ms=due))
        await session.commit()
    # At least these two: orders other tests wrote on this database before orders named their
    # keyspace ("", test_deadlines.py's) are due a century on too, and every deployment's rules
    # take those. Which of the three were taken is what is checked, exactly, below.
    assert await cancel_overdue(refunds_of(mine), due) >= 2
    async with stores.db.session() as session:
        found = {o.id: o.status for o in (await session.exec(select(Order))).all()}
    assert (found[own.id], found[legacy.id], found[foreign.id]) == (
        "cancelled",
        "cancelled",
        "paid",
    )
