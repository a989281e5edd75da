"""The flash-deal race, fought for real: 2,000 buyers over HTTP against a running server for a
100-unit deal, with the stock invariant sampled throughout, then every winner checks out."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlmodel import select

from catalog.models import Sku
from checkout.holds import HoldStore
from checkout.models import Order
from kernel.db import Database
from tests.conftest import SellerAccount, viewer_headers
from tests.helpers import http_live_deal
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

BUYERS = 2000
UNITS = 100
SKU_STOCK = 150


async def sample_invariant(
    holds: HoldStore, deal_id: int, stop: asyncio.Event, samples: list[tuple[int, int, int]]
) -> None:
    while not stop.is_set():
        state = await holds.snapshot(deal_id)
        assert state is not None
        samples.append((state.available, state.held, state.sold))
        await asyncio.sleep(0.002)


async def sql_state(db: Database, deal_id: int, sku_id: int) -> tuple[list[Order], int]:
    async with db.session() as session:
        orders = list((await session.exec(select(Order).where(Order.deal_id == deal_id))).all())
        sku = await session.get(Sku, sku_id)
        assert sku is not None
        await session.refresh(sku)
        return orders, sku.stock


@pytest.mark.xdist_group("races")  # one race at a time on a 2-core machine
async def test_2000_buyers_100_units_exactly_100_orders(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    holds: HoldStore,
    db: Database,
) -> None:
    deal = await http_live_deal(http, seller, quantity=UNITS, limit=1, stock=SKU_STOCK)
    deal_id = deal["id"]
    buyers = [viewer_headers(sessions) for _ in range(BUYERS)]
    samples: list[tuple[int, int, int]] = []
    stop = asyncio.Event()
    monitor = asyncio.create_task(sample_invariant(holds, deal_id, stop, samples))

    responses = await asyncio.gather(
        *[
            http.post(f"/api/deals/{deal_id}/reserve", json={"qty": 1}, headers=headers)
            for _, headers in buyers
        ]
    )
    winners = [
        (headers, r.json()["hold"]["id"])
        for (_, headers), r in zip(buyers, responses, strict=True)
        if r.status_code == 201
    ]
    losers = [r for r in responses if r.status_code != 201]
    assert len(winners) == UNITS
    assert {(r.status_code, r.json()["error"]["code"]) for r in losers} == {(409, "sold_out")}
    assert len({hold_id for _, hold_id in winners}) == UNITS

    paid = await asyncio.gather(
        *[
            http.post(
                f"/api/holds/{hold_id}/checkout",
                json={"card": "4242424242424242"},
                headers={**headers, "Idempotency-Key": f"pay-{hold_id}"},
            )
            for headers, hold_id in winners
        ]
    )
    assert [r.status_code for r in paid] == [201] * UNITS

    deadline = time.monotonic() + 60
    orders, stock = await sql_state(db, deal_id, deal["sku_id"])
    while len(orders) < UNITS and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        orders, stock = await sql_state(db, deal_id, deal["sku_id"])
    stop.set()
    await monitor

    assert len(orders) == UNITS
    assert sorted(o.hold_id for o in orders) == sorted(hold_id for _, hold_id in winners)
    assert stock == SKU_STOCK - UNITS
    assert samples, "the invariant monitor took no samples"
    assert all(a + h + s == UNITS for a, h, s in samples)
    assert samples[-1] == (0, 0, UNITS)
    assert any(h > 0 for _, h, _ in samples)  # it sampled during the race, not just after
