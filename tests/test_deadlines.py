"""Fulfilment deadlines (checkout/deadlines.py, docs/money.md "Deadlines"): the pure rules on a
fixed clock; the late-dispatch count in SQL held against the pure one on crafted orders; and over
HTTP, the stamps a real server puts on orders (its settings, not defaults), the ``late`` flag, the
to-ship sort, and the seller center's time left and late-dispatch rate.

Two servers share the database: the session's (a 72-hour ship-by) and a hurried one whose ship-by
is the moment of payment (``LIVECART_SHIP_BY_HOURS=0``) and delivery two days out, so an order
it takes is late at once, no clock is faked and nobody sleeps."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from catalog import service
from catalog.rules import DealTerms
from checkout import deadlines, order_store
from checkout.deadlines import DAY_MS, HOUR_MS, MINUTE_MS
from checkout.models import Order, OrderEvent
from checkout.orders import OrderStatus
from kernel.clock import now_ms
from kernel.db import Database
from tests.conftest import PREFIX, SellerAccount, start_server, viewer_headers
from tests.harness import Server, stop_server
from tests.helpers import (
    assert_error,
    checkout,
    make_listing,
    make_seller,
    make_sku,
    orders_seen_by,
    pay_and_wait_for_order,
    reserve,
    until,
)
from tests.test_seller_pages import sign_in
from web.auth import GuestSessions

NOW = 1_750_000_000_000  # a fixed clock for the pure rules
S = OrderStatus


@dataclass(frozen=True)
class Clock:
    """What the rules read of an order."""

    status: str
    ship_by_ms: int | None
    shipped_ms: int | None = None


@dataclass(frozen=True)
class Move:
    to_status: str
    at_ms: int


# -- the rules, on a fixed clock ---------------------------------------------------------------


def test_time_left_counts_down_to_the_ship_by_time_and_below_zero_past_it() -> None:
    due_later = Clock(S.PAID, NOW + 2 * DAY_MS + 5 * HOUR_MS + 59 * 1000)
    assert deadlines.time_left_to_ship_ms(due_later, NOW) == 2 * DAY_MS + 5 * HOUR_MS + 59_000
    assert deadlines.ship_within_text(2 * DAY_MS + 5 * HOUR_MS + 59_000) == "Ship within 2 d 5 h"
    overdue = Clock(S.AWAITING_SHIPMENT, NOW - 3 * HOUR_MS - 20 * MINUTE_MS)
    assert deadlines.time_left_to_ship_ms(overdue, NOW) == -(3 * HOUR_MS + 20 * MINUTE_MS)
    assert deadlines.ship_within_text(-(3 * HOUR_MS + 20 * MINUTE_MS)) == "Late by 3 h 20 min"
    # Nothing to count down for an order that does not wait to be shipped, or has no ship-by.
    assert deadlines.time_left_to_ship_ms(Clock(S.SHIPPED, NOW, NOW - 1), NOW) is None
    assert deadlines.time_left_to_ship_ms(Clock(S.CANCELLED, NOW), NOW) is None
    assert deadlines.time_left_to_ship_ms(Clock(S.PAID, None), NOW) is None


@pytest.mark.parametrize(
    ("ms", "said"),
    [
        (0, "less than 1 min"),
        (59_999, "less than 1 min"),
        (MINUTE_MS, "1 min"),
        (45 * MINUTE_MS + 59_999, "45 min"),
        (3 * HOUR_MS, "3 h"),
        (HOUR_MS + MINUTE_MS, "1 h 1 min"),
        (2 * DAY_MS, "2 d"),
        (2 * DAY_MS + 5 * HOUR_MS + 59 * MINUTE_MS, "2 d 5 h"),  # rounded down, two units
        (2 * DAY_MS + 30 * MINUTE_MS, "2 d"),
        (-3 * HOUR_MS, "3 h"),
    ],
)
def test_a_span_is_said_in_its_two_largest_units_rounded_down(ms: int, said: str) -> None:
    assert deadlines.rough_duration(ms) == said


@pytest.mark.parametrize(
    ("clock", "closed_ms", "late"),
    [
        (Clock(S.PAID, NOW + 1), None, False),  # waiting, still in time
        (Clock(S.PAID, NOW), None, False),  # waiting, due this very millisecond
        (Clock(S.AWAITING_SHIPMENT, NOW - 1), None, True),  # waiting past it
        (Clock(S.SHIPPED, NOW - DAY_MS, NOW - DAY_MS), None, False),  # shipped at the limit
        (Clock(S.DELIVERED, NOW - DAY_MS, NOW - 2 * DAY_MS), None, False),  # shipped early
        (Clock(S.SHIPPED, NOW - DAY_MS, NOW - DAY_MS + 1), None, True),  # shipped after it
        (Clock(S.REFUNDED, NOW - DAY_MS, NOW - DAY_MS + 1), NOW, True),  # shipped late, refunded
        (Clock(S.CANCELLED, NOW - DAY_MS), NOW - 2 * DAY_MS, False),  # cancelled in time
        (Clock(S.CANCELLED, NOW - DAY_MS), NOW - DAY_MS + 1, True),  # cancelled after it
        (Clock(S.REFUNDED, NOW - DAY_MS), NOW - HOUR_MS, True),  # refunded unshipped after it
        (Clock(S.CANCELLED, NOW - DAY_MS), None, False),  # when it closed unknown: not called
        (Clock(S.PAID, None), None, False),  # no promise made
        (Clock(S.UNPAID, NOW - DAY_MS), None, False),
    ],
)
def test_an_order_is_late_when_it_stopped_waiting_after_its_ship_by_time(
    clock: Clock, closed_ms: int | None, late: bool
) -> None:
    assert deadlines.is_late(clock, NOW, closed_ms) is late


def test_an_order_shipped_in_time_never_becomes_late() -> None:
    on_time = Clock(S.SHIPPED, NOW, NOW - 1)
    assert [deadlines.is_late(on_time, NOW + n * DAY_MS) for n in (0, 1, 365)] == [False] * 3
    waiting = Clock(S.PAID, NOW)
    assert [deadlines.is_late(waiting, NOW + n) for n in (-1, 0, 1)] == [False, False, True]


def test_closed_unshipped_is_the_first_cancel_or_refund() -> None:
    events = [Move(S.PAID, 10), Move(S.AWAITING_SHIPMENT, 20), Move(S.CANCELLED, 30)]
    assert deadlines.closed_unshipped_ms(events) == 30
    assert deadlines.closed_unshipped_ms(events[:2]) is None


def test_shipping_stamps_when_and_the_expected_delivery_and_delivering_when() -> None:
    week = 7 * DAY_MS
    assert deadlines.moment_fields(S.SHIPPED, NOW, week) == {
        "shipped_ms": NOW,
        "deliver_by_ms": NOW + week,
    }
    assert deadlines.moment_fields(S.DELIVERED, NOW, week) == {"delivered_ms": NOW}
    assert deadlines.moment_fields(S.AWAITING_SHIPMENT, NOW, week) == {}


def test_the_late_dispatch_rate_is_over_orders_due_in_the_last_30_days() -> None:
    window = deadlines.LATE_DISPATCH_WINDOW_MS
    orders: list[tuple[Any, int | None]] = [
        (Clock(S.SHIPPED, NOW - window, NOW - window - 1), None),  # due at the window's start
        (Clock(S.PAID, NOW), None),  # due now: in, not late yet (stopped == ship-by)
        (Clock(S.PAID, NOW - 1), None),  # late and still waiting
        (Clock(S.SHIPPED, NOW - DAY_MS, NOW - 1), None),  # shipped late
        (Clock(S.CANCELLED, NOW - DAY_MS), NOW - 1),  # cancelled after it (as auto-cancel is)
        (Clock(S.CANCELLED, NOW - DAY_MS), NOW - 2 * DAY_MS),  # cancelled in time
        # Out of the window: due a millisecond too early, not due yet, never promised.
        (Clock(S.PAID, NOW - window - 1), None),
        (Clock(S.SHIPPED, NOW + 1, NOW - 5), None),
        (Clock(S.PAID, None), None),
    ]
    record = deadlines.dispatch_record(orders, NOW)
    assert (record.due, record.late) == (6, 3)
    assert record.rate == 0.5
    assert deadlines.dispatch_record([], NOW).rate is None  # nothing due: no rate, not 0 %


# -- the late-dispatch count in SQL ------------------------------------------------------------


async def _deal_for(db: Database, seller: SellerAccount) -> tuple[int, int]:
    sku = await make_sku(db, seller)
    async with db.session() as session:
        deal = await service.create_deal(
            session,
            seller.seller,
            sku.id or 0,
            DealTerms(
                deal_price=100, quantity=10, per_buyer_limit=1, starts_ms=NOW, ends_ms=NOW + HOUR_MS
            ),
        )
    return deal.id or 0, sku.id or 0


async def _insert(
    db: Database,
    seller: SellerAccount,
    clocks: list[tuple[Clock, int | None]],
) -> list[Order]:
    """Orders of ``seller``'s shop as the clocks say, each with the event rows that got it
    there (a cancel or refund at ``closed_ms``) and its sale in the ledger."""
    deal_id, sku_id = await _deal_for(db, seller)
    made = []
    async with db.session() as session:
        for n, (clock, closed_ms) in enumerate(clocks):
            order = Order(
                hold_id=f"dl-{seller.shop.id}-{n}-{now_ms()}",
                deal_id=deal_id,
                shop_id=seller.shop.id or 0,
                sku_id=sku_id,
                buyer_id="deadline-buyer",
                quantity=1,
                unit_price=100,
                total=100,
                currency="USD",
                status=clock.status,
                payment_ref="pay_test",
                paid_ms=NOW - 40 * DAY_MS,
                created_ms=NOW - 40 * DAY_MS,
                updated_ms=NOW,
                ship_by_ms=clock.ship_by_ms,
                shipped_ms=clock.shipped_ms,
            )
            session.add(order)
            await session.flush()
            assert order.id is not None
            session.add(OrderEvent(order_id=order.id, to_status=S.PAID, at_ms=order.paid_ms))
            if closed_ms is not None:
                move = OrderEvent(
                    order_id=order.id, from_status=S.PAID, to_status=clock.status, at_ms=closed_ms
                )
                session.add(move)
            made.append(order)
        await session.flush()
        # Their sales, as the pipeline posts them: a ledger audit of the same database (another
        # test's) must not find orders that never sold.
        await order_store.post_sales(
            await session.connection(), [o.id or 0 for o in made], NOW - 40 * DAY_MS
        )
        await session.commit()
    return made


async def test_sql_counts_late_dispatches_as_the_rules_do(db: Database) -> None:
    window = deadlines.LATE_DISPATCH_WINDOW_MS
    shop = await make_seller(db, "Deadline shop")
    crafted: list[tuple[Clock, int | None]] = [
        (Clock(S.SHIPPED, NOW - window, NOW - window - 1), None),
        (Clock(S.PAID, NOW), None),
        (Clock(S.AWAITING_SHIPMENT, NOW - 1), None),
        (Clock(S.DELIVERED, NOW - DAY_MS, NOW - 1), None),
        (Clock(S.CANCELLED, NOW - DAY_MS), NOW - 1),
        (Clock(S.REFUNDED, NOW - DAY_MS), NOW - 2 * DAY_MS),
        (Clock(S.CANCELLED, NOW - 2 * DAY_MS), NOW - 3 * DAY_MS),
        (Clock(S.PAID, NOW - window - 1), None),
        (Clock(S.SHIPPED, NOW + 1, NOW - 5), None),
        (Clock(S.PAID, None), None),
    ]
    orders = await _insert(db, shop, crafted)
    expected = deadlines.dispatch_record(crafted, NOW)
    assert (expected.due, expected.late) == (7, 3)
    async with db.session() as session:
        counted = await order_store.dispatch_record(session, [shop.shop.id or 0], NOW)
        closed = await order_store.closed_unshipped(session, orders)
    assert counted == expected
    # The per-order flag agrees with the count, given when each closed order closed.
    assert sorted(closed.values()) == sorted(c for _, c in crafted if c is not None)
    flags = [deadlines.is_late(o, NOW, closed.get(o.id or 0)) for o in orders]
    assert flags == [deadlines.is_late(c, NOW, closed_ms) for c, closed_ms in crafted]
    # Another shop's orders are not this one's; a shop without orders due has no rate.
    other = await make_seller(db, "Quiet shop")
    async with db.session() as session:
        quiet = await order_store.dispatch_record(session, [other.shop.id or 0], NOW)
        both = await order_store.dispatch_record(
            session, [shop.shop.id or 0, other.shop.id or 0], NOW
        )
    assert (quiet.due, quiet.rate) == (0, None)
    assert both == expected


# -- over HTTP: the stamps, the flag, the sort, the seller center -----------------------------


HURRIED_DELIVERY_DAYS = 2


@pytest.fixture(scope="module")
def hurried(
    redis_url: str, database_url: str, redis: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A second node on the same database, its own Redis prefix (its deals, its pipeline),
    whose orders are due to ship the moment they are paid. ``redis``: its teardown deletes this
    node's keys too."""
    running = start_server(
        redis_url,
        database_url,
        tmp_path_factory.mktemp("hurried") / "server.log",
        LIVECART_REDIS_PREFIX=PREFIX + "dl",
        LIVECART_SHIP_BY_HOURS="0",
        LIVECART_DELIVERY_DAYS=str(HURRIED_DELIVERY_DAYS),
    )
    yield running
    stop_server(running)


@pytest.fixture
async def hurried_http(hurried: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hurried.base_url, timeout=60) as client:
        yield client


async def _order(http: httpx.AsyncClient, seller: SellerAccount, order_id: int) -> dict[str, Any]:
    r = await http.get(f"/api/orders/{order_id}", headers=seller.headers)
    assert r.status_code == 200, r.text
    order: dict[str, Any] = r.json()["order"]
    return order


async def _move(
    http: httpx.AsyncClient, seller: SellerAccount, order_id: int, action: str, **body: str
) -> dict[str, Any]:
    r = await http.post(f"/api/orders/{order_id}/{action}", headers=seller.headers, json=body)
    assert r.status_code == 200, r.text
    order: dict[str, Any] = r.json()["order"]
    return order


async def test_payment_shipping_and_delivery_stamp_the_order(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    paid = await pay_and_wait_for_order(http, seller, sessions)
    order = await _order(http, seller, paid.order["id"])
    assert order["ship_by_ms"] == order["paid_ms"] + 72 * HOUR_MS  # the defaults
    assert order["ship_limit_ms"] == order["paid_ms"] + 120 * HOUR_MS
    assert [order[k] for k in ("shipped_ms", "deliver_by_ms", "delivered_ms")] == [None] * 3
    assert order["late"] is False
    assert paid.order["ship_by_ms"] == order["ship_by_ms"]  # the buyer sees the same

    await _move(http, seller, order["id"], "confirm")
    before = now_ms()
    shipped = await _move(http, seller, order["id"], "ship", carrier="UPS", tracking_number="1Z999")
    after = now_ms()
    assert before <= shipped["shipped_ms"] <= after
    assert shipped["deliver_by_ms"] == shipped["shipped_ms"] + 7 * DAY_MS
    assert shipped["delivered_ms"] is None and shipped["late"] is False
    assert shipped["ship_by_ms"] == order["ship_by_ms"]  # stamped once, never moved

    before = now_ms()
    delivered = await _move(http, seller, order["id"], "deliver")
    assert before <= delivered["delivered_ms"] <= now_ms()
    assert (delivered["shipped_ms"], delivered["deliver_by_ms"]) == (
        shipped["shipped_ms"],
        shipped["deliver_by_ms"],
    )
    assert delivered["late"] is False


async def test_a_nodes_own_settings_stamp_its_orders_and_late_ones_stay_late(
    hurried_http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    paid = await pay_and_wait_for_order(hurried_http, seller, sessions)
    order_id = paid.order["id"]
    assert paid.order["ship_by_ms"] == paid.order["paid_ms"]  # LIVECART_SHIP_BY_HOURS=0

    async def late_now() -> bool:
        return bool((await _order(hurried_http, seller, order_id))["late"])

    await until(late_now, "an order due at payment to be late")  # as soon as the clock ticks
    listed = (await hurried_http.get("/api/orders", headers=seller.headers)).json()["orders"]
    assert [o["late"] for o in listed if o["id"] == order_id] == [True]

    await _move(hurried_http, seller, order_id, "confirm")
    shipped = await _move(
        hurried_http, seller, order_id, "ship", carrier="DHL", tracking_number="JD01"
    )
    assert shipped["late"] is True  # shipped after its ship-by time: late for good
    assert shipped["deliver_by_ms"] == shipped["shipped_ms"] + HURRIED_DELIVERY_DAYS * DAY_MS
    buyer_view = await orders_seen_by(hurried_http, paid.buyer)
    assert [(o["status"], o["late"]) for o in buyer_view] == [("shipped", True)]


async def test_to_ship_orders_sort_by_ship_by_on_request(
    http: httpx.AsyncClient,
    hurried_http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    """Two orders due in 72 hours, then one paid later on the hurried node but due at once:
    newest first, it comes first; most urgent first, too, then the older ones oldest first."""
    relaxed = [(await pay_and_wait_for_order(http, seller, sessions)).order for _ in range(2)]
    urgent = (await pay_and_wait_for_order(hurried_http, seller, sessions)).order
    assert urgent["ship_by_ms"] < relaxed[0]["ship_by_ms"] < relaxed[1]["ship_by_ms"]

    async def ids(**params: str) -> list[int]:
        r = await http.get("/api/orders", headers=seller.headers, params=params)
        assert r.status_code == 200, r.text
        return [o["id"] for o in r.json()["orders"]]

    oldest_first = [relaxed[0]["id"], relaxed[1]["id"]]
    assert await ids(status="paid", sort="ship_by") == [urgent["id"], *oldest_first]
    assert await ids(sort="ship_by") == [urgent["id"], *oldest_first]
    newest = [urgent["id"], *reversed(oldest_first)]
    assert await ids(status="paid") == newest == await ids(sort="newest")
    for bad in ("ship-by", "", "SHIP_BY"):
        r = await http.get("/api/orders", headers=seller.headers, params={"sort": bad})
        assert assert_error(r, 422, "invalid_sort")["details"]["allowed"] == ["newest", "ship_by"]


def _rows(page: str) -> list[tuple[int, str]]:
    """The orders table's rows: (order id, the row's whole markup), in the page's order."""
    found = re.findall(r'<tr id="order-(\d+)"(.*?)</tr>', page, flags=re.S)
    return [(int(n), body) for n, body in found]


async def test_the_seller_center_shows_time_left_urgent_first_and_the_late_dispatch_rate(
    server: Server,
    http: httpx.AsyncClient,
    hurried_http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as browser:
        await sign_in(browser, seller.token)
        empty = (await browser.get("/seller")).text
        assert 'id="tile-late-dispatch">\u2013<' in empty  # nothing due: no rate
        assert 'id="late-dispatch-count">0 of 0<' in empty

        relaxed = (await pay_and_wait_for_order(http, seller, sessions)).order
        late_shipped = (await pay_and_wait_for_order(hurried_http, seller, sessions)).order
        late_waiting = (await pay_and_wait_for_order(hurried_http, seller, sessions)).order

        async def both_late() -> bool:
            got = [await _order(http, seller, o["id"]) for o in (late_shipped, late_waiting)]
            return all(o["late"] for o in got)

        await until(both_late, "the hurried node's orders to be late")
        await _move(http, seller, late_shipped["id"], "confirm")
        await _move(http, seller, late_shipped["id"], "ship", carrier="UPS", tracking_number="1")

        page = (await browser.get("/seller", params={"tab": "to_ship"})).text
        rows = _rows(page)
        assert [n for n, _ in rows] == [late_waiting["id"], relaxed["id"]]  # most urgent first
        late_row, relaxed_row = rows[0][1], rows[1][1]
        assert 'data-late="true"' in late_row and "Late by" in late_row
        assert "late-flag" in late_row
        assert "Ship within 2 d 23 h" in relaxed_row
        assert 'data-late="true"' not in relaxed_row and "late-flag" not in relaxed_row
        # Due in the last 30 days: the two hurried ones (the relaxed one is not due yet); one
        # shipped late, one late and still waiting.
        assert 'id="late-dispatch-count">2 of 2<' in page
        assert 'id="tile-late-dispatch">100.0%<' in page

        shipped_tab = (await browser.get("/seller", params={"tab": "shipped"})).text
        ((shipped_id, shipped_row),) = _rows(shipped_tab)
        assert shipped_id == late_shipped["id"]
        assert "Shipped late" in shipped_row and "delivery expected by" in shipped_row


async def test_a_refused_sort_or_status_changes_nothing_and_buyers_ignore_both(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    item = await make_listing(http, seller)
    _, buyer = viewer_headers(sessions)
    hold = await reserve(http, item.deal_id, buyer)
    assert (await checkout(http, hold["id"], buyer, key="k")).status_code == 201

    async def persisted() -> bool:
        return len(await orders_seen_by(http, buyer)) == 1

    await until(persisted, "the order to be written")
    r = await http.get("/api/orders", headers=buyer, params={"sort": "nonsense", "status": "x"})
    assert r.status_code == 200 and len(r.json()["orders"]) == 1
    r = await http.get(
        "/api/orders", headers=seller.headers, params={"status": "paid", "sort": "nonsense"}
    )
    assert_error(r, 422, "invalid_sort")
