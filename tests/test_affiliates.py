"""Affiliate creators (decision 0046) over HTTP against a real server, Valkey and database:
plans and their targeting, the bag and deal rules, attribution made by the server alone,
commissions earned on delivery and given back with refunds in a balanced ledger, what each
party may see, and attribution under a race of buyers."""

from __future__ import annotations

import asyncio
import html
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import delete, update
from sqlmodel import col, select

from checkout import webhooks
from checkout.audit import NOTICES, audit_ledger
from checkout.holds import HoldStore
from checkout.keys import Keyspace
from checkout.ledger import Account
from checkout.models import AffiliateAttribution, LedgerEntry, Order, Refund
from checkout.payments import PENDING_REFUNDS_CARD, RefundStatus, SandboxProvider
from checkout.refunds import Refunds
from checkout.settlement import settle
from kernel.clock import now_ms
from kernel.db import Database
from tests.conftest import PREFIX, SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import (
    assert_error,
    checkout,
    make_seller,
    orders_seen_by,
    poll,
    reserve,
    until_flash_deal_live,
)
from tests.test_finance import set_method, usd, withdraw
from tests.test_seller_pages import sign_in
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

LIST = 10_000
RATE = 1500  # 15 %


@dataclass
class Offered:
    shop: SellerAccount
    creator: SellerAccount
    plan_id: int
    product_id: int
    sku_id: int


async def shop_product(
    http: httpx.AsyncClient, shop: SellerAccount, stock: int = 200
) -> tuple[int, int]:
    made = await http.post(
        f"/api/shops/{shop.shop.id}/products", headers=shop.headers, json={"title": "Lamp"}
    )
    assert made.status_code == 201, made.text
    product = made.json()["product"]["id"]
    sku = await http.post(
        f"/api/products/{product}/skus",
        headers=shop.headers,
        json={"variant": "One", "list_price": LIST, "currency": "USD", "stock": stock},
    )
    assert sku.status_code == 201, sku.text
    return product, sku.json()["sku"]["id"]


async def publish(
    http: httpx.AsyncClient,
    shop: SellerAccount,
    product: int,
    *,
    creators: list[int] | None = None,
    rate: int = RATE,
    max_discount_bp: int = 2000,
) -> dict[str, Any]:
    made = await http.post(
        "/api/affiliate/plans",
        headers=shop.headers,
        json={
            "shop_id": shop.shop.id,
            "name": "Spring creators",
            "open_to_all": creators is None,
            "creator_ids": creators or [],
            "products": [
                {"product_id": product, "rate_bp": rate, "max_discount_bp": max_discount_bp}
            ],
        },
    )
    assert made.status_code == 201, made.text
    plan: dict[str, Any] = made.json()["plan"]
    return plan


async def offered(http: httpx.AsyncClient, db: Database, seller: SellerAccount) -> Offered:
    creator = await make_seller(db, "Creator")
    product, sku = await shop_product(http, seller)
    plan = await publish(http, seller, product, creators=[creator.seller.id or 0])
    return Offered(seller, creator, plan["id"], product, sku)


async def creator_room(http: httpx.AsyncClient, o: Offered, live: bool = True) -> int:
    h = o.creator.headers
    made = await http.post(
        "/api/rooms", headers=h, json={"shop_id": o.creator.shop.id, "title": "Creator live"}
    )
    assert made.status_code == 201, made.text
    room: int = made.json()["room"]["id"]
    bagged = await http.post(f"/api/rooms/{room}/bag", headers=h, json={"product_id": o.product_id})
    assert bagged.status_code == 200, bagged.text
    if live:
        assert (await http.post(f"/api/rooms/{room}/live", headers=h)).status_code == 200
    return room


async def creator_deal(
    http: httpx.AsyncClient, o: Offered, room: int, *, quantity: int = 10, price: int = 9000
) -> int:
    made = await http.post(
        f"/api/rooms/{room}/deals",
        headers=o.creator.headers,
        json={
            "sku_id": o.sku_id,
            "deal_price": price,
            "quantity": quantity,
            "per_buyer_limit": 2,
            "countdown_s": 10,
            "duration_s": 600,
        },
    )
    assert made.status_code == 201, made.text
    deal: int = made.json()["deal"]["deal_id"]
    await until_flash_deal_live(http, room, deal)
    return deal


async def buy(
    http: httpx.AsyncClient,
    sessions: GuestSessions,
    deal: int,
    qty: int = 1,
    card: str = "4242424242424242",
) -> dict[str, Any]:
    _, buyer = viewer_headers(sessions)
    hold = await reserve(http, deal, buyer, qty=qty)
    paid = await checkout(http, hold["id"], buyer, card=card, key=secrets.token_hex(4))
    assert paid.status_code == 201, paid.text
    orders = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    assert len(orders) == 1, "the pipeline did not write the order"
    return orders[0]


async def mine(http: httpx.AsyncClient, who: SellerAccount) -> dict[str, Any]:
    r = await http.get("/api/affiliate/commissions", headers=who.headers)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def owed(http: httpx.AsyncClient, shop: SellerAccount) -> list[dict[str, Any]]:
    r = await http.get("/api/affiliate/creators", headers=shop.headers)
    assert r.status_code == 200, r.text
    creators: list[dict[str, Any]] = r.json()["creators"]
    return creators


async def deliver(http: httpx.AsyncClient, shop: SellerAccount, order_id: int) -> None:
    path = f"/api/orders/{order_id}"
    tracking = {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}
    for action, body in (("confirm", {}), ("ship", tracking), ("deliver", {})):
        moved = await http.post(f"{path}/{action}", headers=shop.headers, json=body)
        assert moved.status_code == 200, moved.text


async def delivered_creator_order(
    http: httpx.AsyncClient, db: Database, shop: SellerAccount, sessions: GuestSessions
) -> tuple[Offered, dict[str, Any]]:
    """An order of two units (18,000, a commission of 2,700) sold in a creator's room under the
    shop's plan, and delivered: its commission earned."""
    o = await offered(http, db, shop)
    room = await creator_room(http, o)
    order = await buy(http, sessions, await creator_deal(http, o, room), qty=2)
    await deliver(http, o.shop, order["id"])
    return o, order


async def refund(
    http: httpx.AsyncClient, shop: SellerAccount, order_id: int, key: str, amount: int | None = None
) -> None:
    """The shop refunds the order, whole or ``amount`` of it."""
    refunded = await http.post(
        f"/api/orders/{order_id}/refund",
        headers={**shop.headers, "Idempotency-Key": key},
        json={} if amount is None else {"amount": amount},
    )
    assert refunded.status_code == 200, refunded.text


async def offers(http: httpx.AsyncClient, who: SellerAccount) -> list[dict[str, Any]]:
    r = await http.get("/api/affiliate/offers", headers=who.headers)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["offers"]
    return found


# -- plans ---------------------------------------------------------------------------------------


async def test_a_targeted_plan_is_offered_to_its_creators_only(
    http: httpx.AsyncClient, db: Database, seller: SellerAccount
) -> None:
    o = await offered(http, db, seller)
    stranger = await make_seller(db, "Stranger")
    assert [
        (x["plan_id"], x["product_id"], x["rate_bp"]) for x in await offers(http, o.creator)
    ] == [(o.plan_id, o.product_id, RATE)]
    assert all(x["plan_id"] != o.plan_id for x in await offers(http, stranger))
    room = await http.post(
        "/api/rooms", headers=stranger.headers, json={"shop_id": stranger.shop.id, "title": "S"}
    )
    stranger_room = room.json()["room"]["id"]
    refused = await http.post(
        f"/api/rooms/{stranger_room}/bag",
        headers=stranger.headers,
        json={"product_id": o.product_id},
    )
    assert_error(refused, 404, "product_not_found")
    # The listed creator may; once the plan ends, no longer.
    await creator_room(http, o, live=False)
    ended = await http.post(f"/api/affiliate/plans/{o.plan_id}/end", headers=o.shop.headers)
    assert ended.status_code == 200, ended.text
    assert ended.json()["plan"]["ended_ms"] is not None
    again = await http.post(f"/api/affiliate/plans/{o.plan_id}/end", headers=o.shop.headers)
    assert_error(again, 409, "plan_ended")
    assert all(x["plan_id"] != o.plan_id for x in await offers(http, o.creator))
    made = await http.post(
        "/api/rooms", headers=o.creator.headers, json={"shop_id": o.creator.shop.id, "title": "C"}
    )
    late = await http.post(
        f"/api/rooms/{made.json()['room']['id']}/bag",
        headers=o.creator.headers,
        json={"product_id": o.product_id},
    )
    assert_error(late, 404, "product_not_found")


async def test_an_open_plan_is_offered_to_every_creator_but_its_own_shop(
    http: httpx.AsyncClient, db: Database, seller: SellerAccount
) -> None:
    product, _ = await shop_product(http, seller)
    plan = await publish(http, seller, product)
    anyone = await make_seller(db, "Anyone")
    assert plan["id"] in {x["plan_id"] for x in await offers(http, anyone)}
    assert plan["id"] not in {x["plan_id"] for x in await offers(http, seller)}
    listed = await http.get("/api/affiliate/plans", headers=seller.headers)
    assert [p["id"] for p in listed.json()["plans"]] == [plan["id"]]
    assert (await http.get("/api/affiliate/plans", headers=anyone.headers)).json()["plans"] == []


async def test_a_plan_is_refused_with_a_code_and_nothing_written(
    http: httpx.AsyncClient, db: Database, seller: SellerAccount
) -> None:
    product, _ = await shop_product(http, seller)
    other = await make_seller(db, "Other shop")
    theirs, _ = await shop_product(http, other)

    def body(**overrides: Any) -> dict[str, Any]:
        return {
            "shop_id": seller.shop.id,
            "name": "P",
            "open_to_all": True,
            "products": [{"product_id": product, "rate_bp": 100}],
            **overrides,
        }

    post = "/api/affiliate/plans"
    h = seller.headers
    assert_error(
        await http.post(
            post, headers=h, json=body(products=[{"product_id": product, "rate_bp": 0}])
        ),
        422,
        "invalid_request",
    )
    assert_error(
        await http.post(
            post, headers=h, json=body(products=[{"product_id": theirs, "rate_bp": 9}])
        ),
        404,
        "product_not_found",
    )
    assert_error(
        await http.post(post, headers=h, json=body(shop_id=other.shop.id)), 404, "shop_not_found"
    )
    assert_error(
        await http.post(post, headers=h, json=body(creator_ids=[other.seller.id])),
        422,
        "invalid_plan",
    )
    assert_error(
        await http.post(post, headers=h, json=body(open_to_all=False)), 422, "invalid_plan"
    )
    assert_error(
        await http.post(f"/api/affiliate/plans/{2**31 - 1}/end", headers=h), 404, "plan_not_found"
    )
    assert (await http.get(post, headers=h)).json()["plans"] == []


# -- selling -------------------------------------------------------------------------------------


async def test_a_creator_deal_stays_within_the_plan_price_floor(
    http: httpx.AsyncClient, db: Database, seller: SellerAccount
) -> None:
    o = await offered(http, db, seller)  # at most 20 % off: 8000
    room = await creator_room(http, o)
    body = {"sku_id": o.sku_id, "quantity": 5, "per_buyer_limit": 1}
    too_deep = await http.post(
        f"/api/rooms/{room}/deals",
        headers=o.creator.headers,
        json={**body, "deal_price": 7999, "countdown_s": 10, "duration_s": 600},
    )
    error = assert_error(too_deep, 422, "deal_price_below_plan")
    assert error["details"]["lowest"] == 8000


async def test_commission_is_earned_on_delivery_and_given_back_with_a_refund(
    http: httpx.AsyncClient,
    db: Database,
    seller: SellerAccount,
    sessions: GuestSessions,
    redis: Redis,
) -> None:
    o = await offered(http, db, seller)
    room = await creator_room(http, o)
    deal = await creator_deal(http, o, room)
    # A buyer cannot name a creator, plan or rate: such fields are refused by name.
    _, buyer = viewer_headers(sessions)
    forged = await http.post(
        f"/api/deals/{deal}/reserve",
        headers=buyer,
        json={"qty": 1, "creator_id": o.shop.seller.id, "rate_bp": 8000},
    )
    assert_error(forged, 422, "unknown_field")
    order = await buy(http, sessions, deal, qty=2)
    assert order["shop_id"] == o.shop.shop.id  # the order is the shop's
    async with db.session() as session:
        attribution = await session.get(AffiliateAttribution, order["id"])
    assert attribution is not None
    assert (attribution.room_id, attribution.creator_id, attribution.plan_id) == (
        room,
        o.creator.seller.id,
        o.plan_id,
    )
    assert (attribution.rate_bp, attribution.base) == (RATE, 18_000)

    (totals,) = (await mine(http, o.creator))["commissions"]
    assert (totals["pending"], totals["earned"], totals["orders"]) == (2700, 0, 1)
    await deliver(http, o.shop, order["id"])
    (totals,) = (await mine(http, o.creator))["commissions"]
    assert (totals["pending"], totals["earned"], totals["given_back"]) == (0, 2700, 0)
    (creator,) = await owed(http, o.shop)
    assert creator["creator_id"] == o.creator.seller.id
    assert creator["commissions"][0]["earned"] == 2700
    # Delivering again is refused and posts nothing twice.
    again = await http.post(f"/api/orders/{order['id']}/deliver", headers=o.shop.headers, json={})
    assert again.status_code == 409

    await refund(http, o.shop, order["id"], "half", amount=9000)
    (totals,) = (await mine(http, o.creator))["commissions"]
    assert (totals["earned"], totals["given_back"], totals["sales"]) == (1350, 1350, 9000)
    await refund(http, o.shop, order["id"], "rest")
    (totals,) = (await mine(http, o.creator))["commissions"]
    assert (totals["earned"], totals["given_back"]) == (0, 2700)

    async with db.session() as session:
        entries = (
            await session.exec(
                select(LedgerEntry).where(col(LedgerEntry.reference) == f"order:{order['id']}")
            )
        ).all()
        stored = await session.get(Order, order["id"])
    commission_txns = {e.txn for e in entries if e.account == Account.COMMISSIONS.value}
    assert len(commission_txns) == 3  # earned, and one per refund
    for txn in commission_txns:
        assert sum(e.amount for e in entries if e.txn == txn) == 0
    assert sum(e.amount for e in entries if e.account == Account.COMMISSIONS.value) == 0
    assert stored is not None and stored.status == "refunded"
    provider = SandboxProvider(redis, Keyspace(PREFIX).sandbox)
    found = await audit_ledger(db, provider, PREFIX)
    about_order = {
        name: [f for f in findings if f.get("order") == order["id"] or order_txn(f, order["id"])]
        for name, findings in vars(found).items()
        if name not in NOTICES and isinstance(findings, list)
    }
    assert {k: v for k, v in about_order.items() if v} == {}
    await _a_changed_commission_is_found(db, provider, order["id"])


async def _a_changed_commission_is_found(
    db: Database, provider: SandboxProvider, order_id: int
) -> None:
    """The audit recomputes each order's commission: 100 more held for the order (the shop's
    line moved with it, so the transaction still balances) is found, and so is a commission
    under an order nobody sold for a creator. The entries are put back after."""
    earned = col(LedgerEntry.txn) == f"commission:{order_id}"
    is_commission = col(LedgerEntry.account) == Account.COMMISSIONS.value
    stray = 10**9  # no attribution: no order at all
    tampers = [
        (
            [
                update(LedgerEntry)
                .where(earned, is_commission)
                .values(amount=LedgerEntry.amount - 100),
                update(LedgerEntry)
                .where(earned, ~is_commission)
                .values(amount=LedgerEntry.amount + 100),
            ],
            [
                {"order": order_id, "side": "owed", "expected": 0, "ledger": 100},
                {"order": order_id, "side": "waiting", "expected": 0, "ledger": 100},
            ],
        ),
        (
            [update(LedgerEntry).where(earned).values(reference=f"order:{stray}")],
            [
                {"order": order_id, "side": "owed", "expected": 0, "ledger": -2700},
                {"order": order_id, "side": "waiting", "expected": 0, "ledger": -2700},
                {"order": stray, "side": "owed", "expected": 0, "ledger": 2700},
            ],
        ),
    ]
    for statements, expected in tampers:
        async with db.session() as session:
            before = (await session.exec(select(LedgerEntry).where(earned))).all()
            kept = [(e.id, e.amount, e.reference) for e in before]
            for statement in statements:
                await session.exec(statement)
            await session.commit()
        try:
            found = await audit_ledger(db, provider, PREFIX)
            mine = [f for f in found.commission_mismatches if f["order"] in (order_id, stray)]
            assert mine == expected
            assert not found.ok
        finally:
            async with db.session() as session:
                for entry_id, amount, reference in kept:
                    await session.exec(
                        update(LedgerEntry)
                        .where(col(LedgerEntry.id) == entry_id)
                        .values(amount=amount, reference=reference)
                    )
                await session.commit()
    found = await audit_ledger(db, provider, PREFIX)
    assert [f for f in found.commission_mismatches if f["order"] in (order_id, stray)] == []


async def test_a_refund_the_provider_refuses_gives_no_commission_back(
    http: httpx.AsyncClient,
    db: Database,
    seller: SellerAccount,
    sessions: GuestSessions,
    redis: Redis,
    holds: HoldStore,
    keys: Keyspace,
) -> None:
    o = await offered(http, db, seller)
    room = await creator_room(http, o)
    deal = await creator_deal(http, o, room)
    order = await buy(http, sessions, deal, qty=2, card=PENDING_REFUNDS_CARD)
    await deliver(http, o.shop, order["id"])
    await refund(http, o.shop, order["id"], "half", amount=9000)
    (totals,) = (await mine(http, o.creator))["commissions"]
    assert (totals["earned"], totals["given_back"]) == (1350, 1350)  # granted, not yet decided

    sandbox = SandboxProvider(redis, keys.sandbox)
    async with db.session() as session:
        (pending,) = (
            await session.exec(select(Refund).where(Refund.order_id == order["id"]))
        ).all()
    assert await sandbox.finish_refund(pending.provider_ref, RefundStatus.FAILED)
    await webhooks.pull_events(db, Refunds(db, holds, sandbox, keys.prefix), sandbox)
    (totals,) = (await mine(http, o.creator))["commissions"]
    assert (totals["earned"], totals["given_back"], totals["sales"]) == (2700, 0, 18_000)


async def test_a_settled_commission_is_paid_into_the_creators_shop_and_follows_a_refund(
    http: httpx.AsyncClient,
    db: Database,
    seller: SellerAccount,
    sessions: GuestSessions,
    redis: Redis,
) -> None:
    """Decision 0054: settling the order pays its commission into the shop of the creator's
    room, where the creator withdraws it as any shop's money; a refund after that takes its
    share back from there, and the books agree from both sides throughout."""
    o, order = await delivered_creator_order(http, db, seller, sessions)
    (totals,) = (await mine(http, o.creator))["commissions"]
    assert (totals["earned"], totals["paid"]) == (2700, 0)
    assert (await usd(http, o.creator))["available"] == 0
    shop_before = await usd(http, o.shop)

    assert await settle(db, order["id"], now_ms())
    (totals,) = (await mine(http, o.creator))["commissions"]
    assert (totals["earned"], totals["paid"]) == (2700, 2700)
    assert (await usd(http, o.creator))["available"] == 2700
    shop_after = await usd(http, o.shop)
    # The shop's part moved from pending to available; the commission was taken at delivery.
    assert shop_after["pending"] == 0
    assert shop_after["available"] == shop_before["pending"] + shop_before["available"]
    provider = SandboxProvider(redis, Keyspace(PREFIX).sandbox)
    await no_finding_about(db, provider, order["id"])

    await refund(http, o.shop, order["id"], "after-settling", amount=9000)
    (totals,) = (await mine(http, o.creator))["commissions"]
    assert (totals["earned"], totals["given_back"], totals["paid"]) == (1350, 1350, 1350)
    assert (await usd(http, o.creator))["available"] == 1350
    await no_finding_about(db, provider, order["id"])

    assert (await set_method(http, o.creator, "acct_creator_1")).status_code == 200
    taken = await withdraw(http, o.creator)
    assert taken.status_code == 201, taken.text
    assert taken.json()["payout"]["amount"] == 1350


async def test_a_commission_settled_without_being_paid_is_paid_with_the_next_move(
    http: httpx.AsyncClient,
    db: Database,
    seller: SellerAccount,
    sessions: GuestSessions,
    redis: Redis,
) -> None:
    """An order a node from before decision 0054 settled (its commission left in the pool, as
    here once the pay-over lines are taken out) is found by the audit, and its next move pays
    what waits into the creator's shop before going on there. Paid lines naming another shop
    than the deal's creator's are found too."""
    o, order = await delivered_creator_order(http, db, seller, sessions)
    assert await settle(db, order["id"], now_ms())
    paid_lines = col(LedgerEntry.txn) == f"commission:{order['id']}:paid"
    async with db.session() as session:
        await session.exec(delete(LedgerEntry).where(paid_lines))
        await session.commit()
    provider = SandboxProvider(redis, Keyspace(PREFIX).sandbox)
    assert await commission_findings(db, provider, order["id"]) == [
        {"order": order["id"], "side": "paid", "expected": 2700, "ledger": 0},
        {"order": order["id"], "side": "waiting", "expected": 0, "ledger": 2700},
    ]

    await refund(http, o.shop, order["id"], "after-an-old-settlement", amount=9000)
    assert (await usd(http, o.creator))["available"] == 1350
    await no_finding_about(db, provider, order["id"])

    async with db.session() as session:
        await session.exec(update(LedgerEntry).where(paid_lines).values(shop_id=10**9))
        await session.commit()
    try:
        assert await commission_findings(db, provider, order["id"]) == [
            {"order": order["id"], "side": "paid", "expected": 1350, "ledger": -1350}
        ]
    finally:
        async with db.session() as session:
            back = update(LedgerEntry).where(paid_lines).values(shop_id=o.creator.shop.id)
            await session.exec(back)
            await session.commit()
    await no_finding_about(db, provider, order["id"])


async def commission_findings(
    db: Database, provider: SandboxProvider, order_id: int
) -> list[dict[str, Any]]:
    found = await audit_ledger(db, provider, PREFIX)
    return [f for f in found.commission_mismatches if f["order"] == order_id]


async def no_finding_about(db: Database, provider: SandboxProvider, order_id: int) -> None:
    found = await audit_ledger(db, provider, PREFIX)
    about_order = {
        name: [f for f in findings if f.get("order") == order_id or order_txn(f, order_id)]
        for name, findings in vars(found).items()
        if name not in NOTICES and isinstance(findings, list)
    }
    assert {k: v for k, v in about_order.items() if v} == {}


def order_txn(finding: dict[str, Any], order_id: int) -> bool:
    txn = str(finding.get("txn", ""))
    return txn in {f"sale:{order_id}", f"commission:{order_id}"} or txn.startswith(
        f"commission:{order_id}:"
    )


async def test_a_creator_sees_only_their_own_commissions_and_no_shop_finance(
    http: httpx.AsyncClient, db: Database, seller: SellerAccount, sessions: GuestSessions
) -> None:
    o = await offered(http, db, seller)
    room = await creator_room(http, o)
    deal = await creator_deal(http, o, room)
    order = await buy(http, sessions, deal)
    rival = await make_seller(db, "Rival creator")
    assert (await mine(http, rival))["commissions"] == []
    assert await owed(http, rival) == []
    # The creator is not the shop: its creators, its orders and its money stay closed.
    assert await owed(http, o.creator) == []
    assert_error(
        await http.get(f"/api/orders/{order['id']}", headers=o.creator.headers),
        404,
        "order_not_found",
    )
    creator_orders = await http.get("/api/orders", headers=o.creator.headers)
    assert order["id"] not in {x["id"] for x in creator_orders.json()["orders"]}
    finance = await http.get(f"/api/finance?shop_id={o.shop.shop.id}", headers=o.creator.headers)
    assert_error(finance, 404, "shop_not_found")
    mine_now = await mine(http, o.creator)
    assert mine_now["commissions"][0]["orders"] == 1
    assert [r["room_id"] for r in mine_now["rooms"]] == [room]


async def test_the_marketplace_lists_creators_with_their_live_sales(
    http: httpx.AsyncClient, db: Database, seller: SellerAccount, sessions: GuestSessions
) -> None:
    o = await offered(http, db, seller)
    room = await creator_room(http, o)
    deal = await creator_deal(http, o, room)
    await buy(http, sessions, deal, qty=2)
    for n in range(3):  # three viewers follow the creator
        body = {"email": f"fan{n}-{room}@example.com", "password": "violet-kettle-orbit-42"}
        fan = await http.post("/api/accounts", json={**body, "display_name": "Fan"})
        follow = await http.put(
            f"/api/sellers/{o.creator.seller.id}/follow",
            headers={"Authorization": f"Bearer {fan.json()['token']}"},
        )
        assert follow.status_code == 200, follow.text
    r = await http.get("/api/affiliate/marketplace", headers=seller.headers)
    assert r.status_code == 200, r.text
    (entry,) = [c for c in r.json()["creators"] if c["creator_id"] == o.creator.seller.id]
    assert entry["followers"] == 3
    assert entry["rooms"] == 1
    assert entry["sales"] == [{"currency": "USD", "orders": 1, "gmv": 18_000}]


async def test_every_order_of_a_raced_creator_deal_is_attributed_once(
    http: httpx.AsyncClient, db: Database, seller: SellerAccount, sessions: GuestSessions
) -> None:
    o = await offered(http, db, seller)
    room = await creator_room(http, o)
    deal = await creator_deal(http, o, room, quantity=60)

    async def one_buyer() -> int:
        _, buyer = viewer_headers(sessions)
        held = await http.post(f"/api/deals/{deal}/reserve", headers=buyer, json={"qty": 1})
        if held.status_code != 201:
            return 0
        paid = await checkout(http, held.json()["hold"]["id"], buyer, key="k")
        assert paid.status_code == 201, paid.text
        return 1

    sold = sum(await asyncio.gather(*(one_buyer() for _ in range(100))))
    assert sold == 60

    async def written() -> tuple[int, int]:
        async with db.session() as session:
            orders = (await session.exec(select(Order.id).where(Order.deal_id == deal))).all()
            attributed = (
                await session.exec(
                    select(AffiliateAttribution.order_id).where(
                        col(AffiliateAttribution.order_id).in_(orders)
                    )
                )
            ).all()
        return len(orders), len(attributed)

    counts = await poll(written, lambda c: c[0] == sold and c[1] == sold, within_s=30)
    assert counts == (sold, sold)


# -- the seller center's forms -------------------------------------------------------------------


async def test_the_seller_center_publishes_refuses_and_ends_a_plan(
    server: Server, http: httpx.AsyncClient, db: Database, seller: SellerAccount
) -> None:
    product, _ = await shop_product(http, seller)
    creator = await make_seller(db, "Form creator")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as page:
        csrf = await sign_in(page, seller.token)
        form = {
            "csrf": csrf,
            "shop_id": str(seller.shop.id),
            "name": "From the form",
            "product_id": str(product),
            "rate_bp": "900",
            "max_discount_bp": "0",
            "creator_ids": str(creator.seller.id),
        }
        refused = await page.post("/seller/affiliates/plans", data={**form, "rate_bp": "9000"})
        assert refused.status_code == 422, refused.text
        assert (await http.get("/api/affiliate/plans", headers=seller.headers)).json()[
            "plans"
        ] == []
        made = await page.post("/seller/affiliates/plans", data=form)
        assert made.status_code == 303, made.text
        (plan,) = (await http.get("/api/affiliate/plans", headers=seller.headers)).json()["plans"]
        assert (plan["open_to_all"], plan["creator_ids"]) == (False, [creator.seller.id])
        assert plan["products"] == [{"product_id": product, "rate_bp": 900, "max_discount_bp": 0}]
        center = await page.get("/seller")
        assert f'id="plan-{plan["id"]}"' in center.text
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as creators_page:
        await sign_in(creators_page, creator.token)  # the creator's dashboard lists the offer
        dashboard = (await creators_page.get("/seller")).text
        offered_here = dashboard.split('id="offers"')[1].split("</ul>")[0]
        assert f"from {seller.shop.name}: 9.0% commission" in html.unescape(offered_here)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as page:
        csrf = await sign_in(page, seller.token)
        ended = await page.post(f"/seller/affiliates/plans/{plan['id']}/end", data={"csrf": csrf})
        assert ended.status_code == 303, ended.text
        (plan,) = (await http.get("/api/affiliate/plans", headers=seller.headers)).json()["plans"]
        assert plan["ended_ms"] is not None
