"""Order transitions in SQL: a move and its event row together, and a lost race records
nothing."""

from __future__ import annotations

import pytest

from checkout import order_store
from checkout.holds import HoldStore
from checkout.order_store import PaidOrder, persist_paid_orders
from kernel.db import Database
from kernel.errors import Conflict
from tests.conftest import SellerAccount
from tests.helpers import make_live_deal

pytestmark = pytest.mark.storage


async def test_the_loser_of_a_concurrent_move_records_nothing(
    db: Database, private_holds: HoldStore, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, private_holds, seller, quantity=2)
    paid = PaidOrder(
        hold_id=f"{deal.id}-1",
        deal_id=deal.id or 0,
        sku_id=deal.sku_id,
        shop_id=deal.shop_id,
        buyer_id="b",
        quantity=1,
        unit_price=2500,
        currency="USD",
        payment_ref="p",
        paid_ms=1,
    )
    async with db.session() as session:
        await persist_paid_orders(session, [paid])
    async with db.session() as first, db.session() as second:
        shop_ids = [deal.shop_id]
        order_id = (await order_store.order_for_buyer(first, paid.hold_id, "b")).id or 0
        a = await order_store.order_for_shops(first, order_id, shop_ids)
        b = await order_store.order_for_shops(second, order_id, shop_ids)
        await first.commit()
        await second.commit()
        # Both staff saw "paid"; one confirms, then the other's refund arrives.
        await order_store.transition(first, a, "confirm", actor="staff-a")
        with pytest.raises(Conflict) as caught:
            await order_store.transition(second, b, "refund", actor="staff-b")
    assert caught.value.code == "order_changed"
    async with db.session() as session:
        events = await order_store.events_of(session, order_id)
        order = await order_store.order_for_buyer(session, paid.hold_id, "b")
    assert [(e.from_status, e.to_status, e.actor) for e in events] == [
        (None, "paid", "pipeline"),
        ("paid", "awaiting_shipment", "staff-a"),
    ]
    assert order.status == "awaiting_shipment"
