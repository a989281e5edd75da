"""An order still unshipped at its hard ship limit is cancelled and refunded by the node's own
order rules, with nothing but time passing: a node whose limit is the moment of payment
(``LIVECART_SHIP_LIMIT_HOURS=0``) and whose rules run every 0.2 s."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from checkout.keys import Keyspace
from checkout.payments import SandboxProvider
from tests.conftest import PREFIX, SellerAccount, start_server
from tests.harness import Server, stop_server
from tests.helpers import pay_and_wait_for_order, until
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
