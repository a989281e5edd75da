"""Buyers' requests over HTTP against a real ``livecart serve`` (real Valkey, real SQL), with the
timed rules run in process on the same stores with a moved clock: a return goes request ->
approve -> shipped back -> received -> refunded (charge, stock and order with it); a cancellation
request stops shipping and, approved, cancels and refunds; a refund only goes through an offer,
declined then accepted; a pending refund leaves the request approved until the provider
confirms. Every refusal of the issue's "Bad input and races" for requests answers a 4xx code and
changes nothing, and racing calls move a request once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select as core_select
from sqlalchemy import update
from sqlmodel import col

from checkout import line_refunds, return_store, returns, webhooks
from checkout.holds import HoldStore
from checkout.keys import Keyspace
from checkout.models import Order, Refund
from checkout.payments import PENDING_REFUNDS_CARD, RefundStatus, SandboxProvider
from checkout.refunds import Refunds
from checkout.return_states import sources
from checkout.returns import DAY_MS, HOUR_MS, RequestWindows
from kernel.clock import now_ms
from kernel.db import Database
from kernel.errors import DomainError
from tests.conftest import SellerAccount, viewer_headers
from tests.helpers import (
    Headers,
    PaidOrder,
    assert_error,
    checkout,
    make_listing,
    make_seller,
    orders_seen_by,
    pay_and_wait_for_order,
    poll,
    reserve,
    sku_stock,
)
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

TOTAL = 2 * 4900  # pay_and_wait_for_order: two units at the deal price
WINDOWS = RequestWindows()  # the defaults: what the server runs with


@pytest.fixture
def refunds(db: Database, holds: HoldStore, redis: Redis, keys: Keyspace) -> Refunds:
    """Refunds on the server's stores and keyspace, for the rules the tests run themselves."""
    return Refunds(db, holds, SandboxProvider(redis, keys.sandbox), keys.prefix)


@pytest.fixture
def sandbox(redis: Redis, keys: Keyspace) -> SandboxProvider:
    return SandboxProvider(redis, keys.sandbox)


# -- the calls ----------------------------------------------------------------------------------


async def ask(http: httpx.AsyncClient, paid: PaidOrder, **body: Any) -> httpx.Response:
    """The buyer's request on their order; a return for damage unless ``body`` says otherwise."""
    return await http.post(
        f"/api/orders/by-hold/{paid.order['hold_id']}/requests",
        headers=paid.buyer,
        json={"kind": "return", "reason": "damaged", **body},
    )


async def asked(http: httpx.AsyncClient, paid: PaidOrder, **body: Any) -> dict[str, Any]:
    r = await ask(http, paid, **body)
    assert r.status_code == 201, r.text
    request: dict[str, Any] = r.json()["request"]
    return request


async def act(
    http: httpx.AsyncClient, headers: Headers, request_id: int, move: str, **body: Any
) -> httpx.Response:
    return await http.post(
        f"/api/requests/{request_id}/{move}", headers=headers, json=body if body else None
    )


async def acted(
    http: httpx.AsyncClient, headers: Headers, request_id: int, move: str, **body: Any
) -> dict[str, Any]:
    r = await act(http, headers, request_id, move, **body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def ship(http: httpx.AsyncClient, seller: SellerAccount, order_id: int) -> dict[str, Any]:
    """Ship in one step, as bulk shipping does (a paid order confirmed on the way)."""
    shipments = [{"order_id": order_id, "carrier": "UPS", "tracking_number": "1Z999"}]
    r = await http.post("/api/orders/ship", headers=seller.headers, json={"shipments": shipments})
    assert r.status_code == 200, r.text
    [result] = r.json()["results"]
    return dict(result)


async def delivered(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> PaidOrder:
    paid = await pay_and_wait_for_order(http, seller, sessions)
    assert (await ship(http, seller, paid.order["id"]))["shipped"]
    r = await http.post(f"/api/orders/{paid.order['id']}/deliver", headers=seller.headers)
    assert r.status_code == 200, r.text
    return paid


async def buyers_order(http: httpx.AsyncClient, paid: PaidOrder) -> dict[str, Any]:
    r = await http.get(f"/api/orders/by-hold/{paid.order['hold_id']}", headers=paid.buyer)
    assert r.status_code == 200, r.text
    order: dict[str, Any] = r.json()["order"]
    return order


async def sellers_requests(http: httpx.AsyncClient, seller: SellerAccount) -> list[Any]:
    r = await http.get("/api/requests", headers=seller.headers)
    assert r.status_code == 200, r.text
    requests: list[Any] = r.json()["requests"]
    return requests


async def everything(
    http: httpx.AsyncClient, paid: PaidOrder, seller: SellerAccount
) -> dict[str, Any]:
    """All a refused call could have changed: the order with its request and events as the
    buyer sees it, the seller's requests, the SKU's stock."""
    return {
        "order": await buyers_order(http, paid),
        "requests": await sellers_requests(http, seller),
        "stock": await sku_stock(http, paid.item),
    }


def steps(request: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["from"], e["to"]) for e in request["events"]]


async def charge_refunded(sandbox: SandboxProvider, charge_id: str) -> int:
    [charge] = [c for c in await sandbox.charges() if c.id == charge_id]
    return charge.amount_refunded


# -- the flows ----------------------------------------------------------------------------------


async def test_a_return_goes_request_approve_ship_back_receive_and_refunded(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    sandbox: SandboxProvider,
) -> None:
    paid = await delivered(http, seller, sessions)
    stock_before = await sku_stock(http, paid.item)

    request = await asked(
        http, paid, note="The zip is broken.", photos=["https://example.com/zip.jpg"]
    )
    assert (request["status"], request["kind"], request["units"]) == ("requested", "return", 2)
    assert (request["amount"], request["currency"]) == (TOTAL, "USD")
    # Where it stands, in the buyer's views; and in the seller's list.
    assert (await buyers_order(http, paid))["request"]["status"] == "requested"
    [listed] = [o for o in await orders_seen_by(http, paid.buyer) if o["id"] == paid.order["id"]]
    assert listed["request"]["id"] == request["id"]
    waiting = (await http.get("/api/requests?status=requested", headers=seller.headers)).json()
    assert request["id"] in [r["id"] for r in waiting["requests"]]

    approved = await acted(http, seller.headers, request["id"], "approve")
    assert approved["request"]["status"] == "approved"
    assert approved["order"]["refunded"] == 0  # a return is refunded once the goods are back

    shipped = await acted(
        http, paid.buyer, request["id"], "ship_back", carrier="DHL", tracking_number="JD0142"
    )
    assert shipped["request"]["status"] == "shipped_back"
    assert (shipped["request"]["carrier"], shipped["request"]["tracking_number"]) == (
        "DHL",
        "JD0142",
    )

    received = await acted(http, seller.headers, request["id"], "receive", restock=2)
    assert received["request"]["status"] == "refunded"  # the sandbox confirmed at once
    assert received["request"]["refund_id"] is not None
    order = received["order"]
    assert (order["status"], order["refunded"], order["restocked_units"]) == ("refunded", TOTAL, 2)
    assert steps(received["request"]) == [
        (None, "requested"),
        ("requested", "approved"),
        ("approved", "shipped_back"),
        ("shipped_back", "received"),
        ("received", "refunded"),
    ]
    assert await charge_refunded(sandbox, paid.payment_ref) == TOTAL
    assert await sku_stock(http, paid.item) == stock_before + 2
    mine = await buyers_order(http, paid)
    assert (mine["status"], mine["request"]["status"]) == ("refunded", "refunded")
    # Finished: the order takes no other request.
    assert_error(await ask(http, paid), 409, "order_not_refundable")


async def test_an_approved_cancellation_cancels_and_refunds_and_stops_shipping_meanwhile(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    sandbox: SandboxProvider,
) -> None:
    paid = await pay_and_wait_for_order(http, seller, sessions)
    order_id = paid.order["id"]
    request = await asked(http, paid, kind="cancel", reason="changed_mind")
    assert (request["kind"], request["amount"], request["units"]) == ("cancel", TOTAL, 2)

    # While it is open the order ships by no way: alone, in bulk.
    confirm = await http.post(f"/api/orders/{order_id}/confirm", headers=seller.headers)
    assert confirm.status_code == 200, confirm.text
    shipping = {"carrier": "UPS", "tracking_number": "1Z"}
    single = await http.post(f"/api/orders/{order_id}/ship", headers=seller.headers, json=shipping)
    assert_error(single, 409, "cancel_requested")
    bulk = await ship(http, seller, order_id)
    assert (bulk["shipped"], bulk["error"]["code"]) == (False, "cancel_requested")
    assert (await buyers_order(http, paid))["status"] == "awaiting_shipment"
    # An offer is no answer to a cancellation.
    assert_error(
        await act(http, seller.headers, request["id"], "offer", amount=100),
        409,
        "invalid_transition",
    )

    answer = await acted(http, seller.headers, request["id"], "approve")
    assert answer["request"]["status"] == "refunded"
    order = answer["order"]
    assert (order["status"], order["refunded"], order["restocked_units"]) == (
        "cancelled",
        TOTAL,
        2,
    )
    assert await charge_refunded(sandbox, paid.payment_ref) == TOTAL
    # The seller's cancel afterwards is the same cancel: one refund.
    again = await http.post(f"/api/orders/{order_id}/cancel", headers=seller.headers)
    assert again.status_code == 200, again.text
    assert again.json()["refund"]["id"] == answer["request"]["refund_id"]
    assert await charge_refunded(sandbox, paid.payment_ref) == TOTAL


async def test_a_refund_only_goes_through_an_offer_declined_then_one_accepted(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    sandbox: SandboxProvider,
) -> None:
    paid = await delivered(http, seller, sessions)
    request = await asked(http, paid, kind="refund_only", reason="not_as_described")
    rid = request["id"]

    for amount in (0, TOTAL, TOTAL + 1):  # not less than asked for, or nothing
        refused = await act(http, seller.headers, rid, "offer", amount=amount)
        assert refused.status_code == 422, refused.text
    offered = await acted(http, seller.headers, rid, "offer", amount=3000, note="Keep it?")
    assert (offered["request"]["status"], offered["request"]["offer_amount"]) == ("offered", 3000)
    assert offered["request"]["answer"] == "Keep it?"
    assert_error(await act(http, seller.headers, rid, "approve"), 409, "invalid_transition")

    declined = await acted(http, paid.buyer, rid, "decline")
    assert (declined["request"]["status"], declined["request"]["offer_amount"]) == (
        "requested",
        None,
    )
    await acted(http, seller.headers, rid, "offer", amount=2500)
    accepted = await acted(http, paid.buyer, rid, "accept")
    assert (accepted["request"]["status"], accepted["request"]["amount"]) == ("refunded", 2500)
    order = accepted["order"]
    # A partial refund leaves the status; nothing came back to stock (the buyer keeps it).
    assert (order["status"], order["refunded"], order["restocked_units"]) == ("delivered", 2500, 0)
    assert await charge_refunded(sandbox, paid.payment_ref) == 2500
    assert [to for _, to in steps(accepted["request"])] == [
        "requested",
        "offered",
        "requested",
        "offered",
        "approved",
        "refunded",
    ]
    # Closed: a new request may be made (for what is left).
    again = await asked(http, paid, kind="refund_only", reason="other", amount=TOTAL - 2500)
    assert again["amount"] == TOTAL - 2500
    assert_error(await act(http, paid.buyer, again["id"], "accept"), 409, "invalid_transition")
    withdrawn = await acted(http, paid.buyer, again["id"], "withdraw")
    assert withdrawn["request"]["status"] == "withdrawn"


async def test_a_pending_refund_leaves_the_request_approved_until_the_provider_confirms(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    sandbox: SandboxProvider,
    refunds: Refunds,
    db: Database,
) -> None:
    item = await make_listing(http, seller)
    _, buyer = viewer_headers(sessions)
    hold = await reserve(http, item.deal_id, buyer, qty=1)
    paying = await checkout(http, hold["id"], buyer, card=PENDING_REFUNDS_CARD, key="k")
    assert paying.status_code == 201, paying.text
    orders = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) == 1)
    paid = PaidOrder(item, buyer, paying.json()["order"]["payment_ref"], orders[0])
    request = await asked(http, paid, kind="cancel", reason="changed_mind")

    answer = await acted(http, seller.headers, request["id"], "approve")
    assert answer["request"]["status"] == "approved"  # the refund waits on the provider
    assert answer["order"]["status"] == "cancelled"
    refund = await refunds.get(answer["request"]["refund_id"])
    assert refund.status == RefundStatus.PENDING
    await return_store.advance_refunded(db)
    assert (await return_store.get(db, request["id"])).status == "approved"

    assert await sandbox.finish_refund(refund.provider_ref, RefundStatus.SUCCEEDED)
    await webhooks.pull_events(db, refunds, sandbox)  # what a webhook or the reconciler does
    assert (await refunds.get(refund.id or 0)).status == RefundStatus.SUCCEEDED
    await return_store.advance_refunded(db)
    assert (await buyers_order(http, paid))["request"]["status"] == "refunded"


# -- bad input and races ------------------------------------------------------------------------


async def test_refusals_answer_a_code_and_change_nothing(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    db: Database,
) -> None:
    paid = await delivered(http, seller, sessions)
    _, stranger = viewer_headers(sessions)
    rival = await make_seller(db, "Rival")
    before = await everything(http, paid, seller)
    hold = paid.order["hold_id"]

    refusals: list[tuple[Any, int, str]] = [
        (ask(http, paid, kind="cancel"), 409, "invalid_transition"),  # delivered: too late
        (ask(http, paid, reason="bored"), 422, "invalid_reason"),
        (ask(http, paid, photos=["ftp://example.com/a.jpg"]), 422, "invalid_photos"),
        (
            ask(http, paid, photos=[f"https://example.com/{n}.jpg" for n in range(6)]),
            422,
            "invalid_photos",
        ),
        (ask(http, paid, units=3), 422, "invalid_units"),
        (ask(http, paid, amount=TOTAL + 1), 409, "refund_exceeds_paid"),
        (ask(http, paid, amount=0), 422, "invalid_request"),
        (ask(http, paid, note="x" * 1001), 422, "invalid_request"),
        (ask(http, paid, kind="exchange"), 422, "invalid_request"),
        # Someone else's session: the order is not theirs to see.
        (
            http.post(
                f"/api/orders/by-hold/{hold}/requests",
                headers=stranger,
                json={"kind": "return", "reason": "damaged"},
            ),
            404,
            "order_not_found",
        ),
    ]
    for call, status, code in refusals:
        assert_error(await call, status, code)
    assert await everything(http, paid, seller) == before

    # One request; another while it is open is refused.
    request = await asked(http, paid)
    before = await everything(http, paid, seller)
    rid = request["id"]
    moves: list[tuple[Any, int, str]] = [
        (ask(http, paid, kind="refund_only"), 409, "return_open"),
        (act(http, stranger, rid, "withdraw"), 404, "request_not_found"),
        (
            act(http, stranger, rid, "ship_back", carrier="DHL", tracking_number="1"),
            404,
            "request_not_found",
        ),
        (http.get(f"/api/requests/{rid}", headers=stranger), 404, "request_not_found"),
        (act(http, rival.headers, rid, "approve"), 404, "request_not_found"),
        (http.get(f"/api/requests/{rid}", headers=rival.headers), 404, "request_not_found"),
        (
            act(http, paid.buyer, rid, "ship_back", carrier="DHL", tracking_number="1"),
            409,
            "invalid_transition",
        ),
        (act(http, paid.buyer, rid, "accept"), 409, "invalid_transition"),
        (act(http, seller.headers, rid, "receive"), 409, "invalid_transition"),
        (act(http, seller.headers, rid, "reject", reason=" "), 422, "invalid_request"),
        (http.get("/api/requests?status=lost", headers=seller.headers), 422, "invalid_status"),
    ]
    for call, status, code in moves:
        assert_error(await call, status, code)
    assert await everything(http, paid, seller) == before

    # Approving twice: the second is refused and changes nothing.
    await acted(http, seller.headers, rid, "approve")
    before = await everything(http, paid, seller)
    assert_error(await act(http, seller.headers, rid, "approve"), 409, "invalid_transition")
    assert_error(await act(http, paid.buyer, rid, "withdraw"), 409, "invalid_transition")
    shipped = await act(http, paid.buyer, rid, "ship_back", carrier="", tracking_number="1")
    assert_error(shipped, 422, "tracking_required")
    await acted(http, paid.buyer, rid, "ship_back", carrier="DHL", tracking_number="JD1")
    assert_error(
        await act(http, seller.headers, rid, "receive", restock=3), 422, "restock_exceeds_units"
    )
    assert (await buyers_order(http, paid))["request"]["status"] == "shipped_back"
    assert (await buyers_order(http, paid))["refunded"] == 0


async def test_a_request_after_the_return_window_is_refused(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    paid = await delivered(http, seller, sessions)
    # Delivered a day more than the window ago (the server runs the default window).
    long_ago = now_ms() - WINDOWS.return_window_ms - DAY_MS
    async with db.session() as session:
        await session.exec(
            update(Order).where(col(Order.id) == paid.order["id"]).values(delivered_ms=long_ago)
        )
        await session.commit()
    # The server's order sweep settles an order delivered a window ago (it becomes completed):
    # wait for that, so nothing but the refused requests could change what is compared.
    settled = await poll(
        lambda: buyers_order(http, paid), lambda o: o["status"] == "completed", within_s=60
    )
    assert settled["status"] == "completed"
    before = await everything(http, paid, seller)
    for kind in ("return", "refund_only"):
        error = assert_error(await ask(http, paid, kind=kind), 409, "return_window_closed")
        assert error["details"]["closed_ms"] == long_ago + WINDOWS.return_window_ms
    assert await everything(http, paid, seller) == before


async def test_a_return_cannot_be_asked_for_before_delivery(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    paid = await pay_and_wait_for_order(http, seller, sessions)
    assert (await ship(http, seller, paid.order["id"]))["shipped"]
    for kind in ("return", "refund_only", "cancel"):
        error = assert_error(await ask(http, paid, kind=kind), 409, "invalid_transition")
        assert error["details"]["allowed"] == []  # shipped: nothing until it is delivered


async def test_concurrent_approvals_approve_and_refund_once(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    sandbox: SandboxProvider,
) -> None:
    paid = await delivered(http, seller, sessions)
    request = await asked(http, paid, kind="refund_only", reason="damaged", amount=4000)
    answers = await asyncio.gather(
        *(act(http, seller.headers, request["id"], "approve") for _ in range(10))
    )
    assert sorted(a.status_code for a in answers) == [200] + [409] * 9
    for refused in (a for a in answers if a.status_code == 409):
        assert_error(refused, 409, "invalid_transition")
    final = await buyers_order(http, paid)
    assert (final["refunded"], final["request"]["status"]) == (4000, "refunded")
    assert await charge_refunded(sandbox, paid.payment_ref) == 4000


async def test_concurrent_requests_make_one(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    paid = await delivered(http, seller, sessions)
    answers = await asyncio.gather(*(ask(http, paid, kind="return") for _ in range(10)))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 9
    codes = {a.json()["error"]["code"] for a in answers if a.status_code == 409}
    assert codes <= {"return_open", "order_changed"}
    assert (
        len([r for r in await sellers_requests(http, seller) if r["order_id"] == paid.order["id"]])
        == 1
    )


async def test_shipping_and_asking_to_cancel_at_once_never_do_both(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    for _ in range(4):
        paid = await pay_and_wait_for_order(http, seller, sessions)
        shipped, asking = await asyncio.gather(
            ship(http, seller, paid.order["id"]), ask(http, paid, kind="cancel", reason="other")
        )
        order = await buyers_order(http, paid)
        if shipped["shipped"]:
            assert asking.status_code == 409, asking.text
            assert asking.json()["error"]["code"] in ("invalid_transition", "order_changed")
            assert (order["status"], "request" in order) == ("shipped", False)
        else:
            assert shipped["error"]["code"] == "cancel_requested"
            assert asking.status_code == 201, asking.text
            assert order["status"] in ("paid", "awaiting_shipment")
            assert order["request"]["status"] == "requested"


# -- the timed rules ----------------------------------------------------------------------------


async def test_an_unanswered_cancellation_is_approved_by_the_rules(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    refunds: Refunds,
    db: Database,
) -> None:
    paid = await pay_and_wait_for_order(http, seller, sessions)
    request = await asked(http, paid, kind="cancel", reason="changed_mind")
    asked_at = request["updated_ms"]

    await return_store.apply_request_rules(db, refunds, asked_at + 47 * HOUR_MS, WINDOWS)
    assert (await buyers_order(http, paid))["request"]["status"] == "requested"

    await return_store.apply_request_rules(db, refunds, asked_at + 49 * HOUR_MS, WINDOWS)
    order = await buyers_order(http, paid)
    assert (order["status"], order["refunded"]) == ("cancelled", TOTAL)
    assert order["request"]["status"] == "refunded"
    details = (await http.get(f"/api/requests/{request['id']}", headers=paid.buyer)).json()
    approval = [e for e in details["request"]["events"] if e["to"] == "approved"]
    assert [e["actor"] for e in approval] == ["sweeper"]


async def test_the_rules_close_lapsed_offers_and_returns_and_receive_unconfirmed_ones(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    refunds: Refunds,
    db: Database,
) -> None:
    offer, unshipped, unconfirmed = [await delivered(http, seller, sessions) for _ in range(3)]
    offered = await asked(http, offer, kind="refund_only")
    await acted(http, seller.headers, offered["id"], "offer", amount=100)
    waiting = await asked(http, unshipped)
    await acted(http, seller.headers, waiting["id"], "approve")
    back = await asked(http, unconfirmed)
    await acted(http, seller.headers, back["id"], "approve")
    await acted(
        http, unconfirmed.buyer, back["id"], "ship_back", carrier="DHL", tracking_number="9"
    )
    stock = await sku_stock(http, unconfirmed.item)

    start = now_ms()
    await return_store.apply_request_rules(db, refunds, start + 6 * DAY_MS, WINDOWS)
    assert (await buyers_order(http, offer))["request"]["status"] == "closed"  # 48 h
    assert (await buyers_order(http, unshipped))["request"]["status"] == "approved"
    await return_store.apply_request_rules(db, refunds, start + 8 * DAY_MS, WINDOWS)
    assert (await buyers_order(http, unshipped))["request"]["status"] == "closed"  # 7 days
    assert (await buyers_order(http, unconfirmed))["request"]["status"] == "shipped_back"
    await return_store.apply_request_rules(db, refunds, start + 11 * DAY_MS, WINDOWS)
    order = await buyers_order(http, unconfirmed)  # 10 days: received, nothing restocked
    assert (order["request"]["status"], order["refunded"], order["restocked_units"]) == (
        "refunded",
        TOTAL,
        0,
    )
    assert await sku_stock(http, unconfirmed.item) == stock
    assert (await buyers_order(http, offer))["refunded"] == 0


async def test_an_approval_that_lost_its_refund_to_a_crash_is_refunded_by_the_rules(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    refunds: Refunds,
    db: Database,
) -> None:
    """The approving process stopped between the approval's commit and the refund's grant:
    made here by moving the request alone, as that process would have left it."""
    paid = await delivered(http, seller, sessions)
    request = await asked(http, paid, kind="refund_only", amount=1234)
    found = await return_store.get(db, request["id"])
    await return_store.move(db, found, returns.APPROVE, "seller:crashed")
    assert (await buyers_order(http, paid))["refunded"] == 0

    # The server's own worker applies the same rules on its timer: whichever runs first grants
    # the refund, and the other finds it granted (a race the rules must survive, never paying
    # twice: one refund below).
    report = await return_store.apply_request_rules(db, refunds, now_ms(), WINDOWS)
    assert report.refunds_granted in (0, 1)
    # Granted here, or by the worker (whose grant may still be finishing when this call
    # finds the request taken): the order says so once it is done.
    order = await poll(lambda: buyers_order(http, paid), lambda o: o["refunded"] == 1234)
    assert (order["refunded"], order["request"]["status"]) == (1234, "refunded")
    async with db.session() as session:
        found_keys = await (await session.connection()).execute(
            core_select(col(Refund.key)).where(col(Refund.order_id) == paid.order["id"])
        )
    assert list(found_keys.scalars()) == [f"return:{request['id']}"]


# -- the pure rules (checkout/returns.py) ----------------------------------------------------------


def _order(**fields: Any) -> Order:
    base: dict[str, Any] = {
        "id": 1,
        "hold_id": "h",
        "deal_id": 1,
        "shop_id": 1,
        "sku_id": 1,
        "buyer_id": "b",
        "quantity": 3,
        "unit_price": 1000,
        "total": 3000,
        "currency": "USD",
        "status": "delivered",
        "payment_ref": "p",
        "paid_ms": 0,
        "created_ms": 0,
        "updated_ms": 0,
        "delivered_ms": 1_000,
    }
    return Order(**{**base, **fields})


def test_the_return_window_is_inclusive_and_a_partial_return_asks_for_its_units() -> None:
    order = _order()
    edge = 1_000 + WINDOWS.return_window_ms
    ask = returns.RequestAsk(kind="return", reason="damaged", units=1)
    assert returns.check_ask(
        order, line_refunds.lines_of(order, []), ask, edge, WINDOWS.return_window_ms
    ) == returns.RequestTerms(returns.K.RETURN, 1, 1000)
    with pytest.raises(DomainError) as late:
        returns.check_ask(
            order, line_refunds.lines_of(order, []), ask, edge + 1, WINDOWS.return_window_ms
        )
    assert late.value.code == "return_window_closed"
    # What is left caps the default: 2500 refunded already, 2 units ask for at most 500.
    partly = _order(refunded=2500)
    terms = returns.check_ask(
        partly,
        line_refunds.lines_of(partly, []),
        returns.RequestAsk("refund_only", "other", units=2),
        2,
        edge,
    )
    assert (terms.units, terms.amount) == (2, 500)
    assert returns.kinds_open_to(_order(status="paid", delivered_ms=None), 0, 1) == ["cancel"]
    assert returns.kinds_open_to(_order(status="shipped", delivered_ms=None), 0, 1) == []


def test_every_move_starts_where_the_state_table_allows_and_names_the_others() -> None:
    for move in returns.MOVES:
        assert move.source in sources(move.target), move
    refusal = returns.refused(returns.APPROVE, "offered", "return")
    assert (refusal.code, refusal.details["allowed"]) == ("invalid_transition", [])
    refusal = returns.refused(returns.WITHDRAW, "offered", "return")
    assert refusal.details["allowed"] == ["accept", "decline"]
