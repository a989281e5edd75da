"""A seller's finance over HTTP against a running ``livecart serve`` (decision 0027, docs/money.md
"Finance in the seller center" and "Net figures"): earnings as orders are paid, delivered and
settled; statements with opening and closing balances, as JSON and CSV; withdrawals (one a day,
two at once pay once, none without a payout method or a balance); another seller's shop is not
found; "Today's sales" net of refunds, a refused refund counted back; a room's figures gross and
net; and the seller center's Finance tab.

Settlement is run here as the order sweeper runs it, ``settle_due`` on the server's database,
with the clock moved past the settlement delay."""

from __future__ import annotations

import asyncio
import csv
import datetime
import html
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog import service
from checkout import finance_store, ledger, ledger_store
from checkout.ledger import Account
from checkout.settlement import settle_due
from kernel.clock import now_ms
from kernel.db import Database
from live.room_sales import CurrencySales, leading
from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import (
    assert_error,
    checkout,
    http_flash_deal,
    http_room,
    make_seller,
    pay_and_wait_for_order,
    poll,
    reserve,
    until_flash_deal_live,
)
from tests.test_seller_pages import sign_in
from web.auth import GuestSessions
from web.migrate import upgrade

pytestmark = pytest.mark.storage

DAY_MS = 86_400_000
SETTLEMENT_MS = 7 * DAY_MS  # LIVECART_SETTLEMENT_DAYS' default
ORDER_TOTAL = 9800  # pay_and_wait_for_order: two units at 49.00
FEE = 490  # 5 %, LIVECART_PLATFORM_FEE_BPS' default
NET = ORDER_TOTAL - FEE


async def finance(http: httpx.AsyncClient, seller: SellerAccount) -> dict[str, Any]:
    r = await http.get("/api/finance", params={"shop_id": seller.shop.id}, headers=seller.headers)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()["finance"]
    return found


async def usd(http: httpx.AsyncClient, seller: SellerAccount) -> dict[str, int]:
    """The shop's USD earnings (zeros before its first sale)."""
    found = {e["currency"]: e for e in (await finance(http, seller))["earnings"]}
    zero = {"pending": 0, "available": 0, "paid_out": 0, "withdrawable": 0}
    return {k: v for k, v in found.get("USD", zero).items() if k != "currency"}


async def deliver(http: httpx.AsyncClient, seller: SellerAccount, order_id: int) -> None:
    path = f"/api/orders/{order_id}"
    for action, body in (
        ("confirm", None),
        ("ship", {"carrier": "UPS", "tracking_number": "1Z999"}),
        ("deliver", None),
    ):
        r = await http.post(f"{path}/{action}", headers=seller.headers, json=body)
        assert r.status_code == 200, r.text


async def settle(db: Database) -> int:
    """The order sweeper's settlement, a day after the delay has passed for what was delivered
    now: its entries are written at that moved clock."""
    return await settle_due(db, now_ms() + SETTLEMENT_MS + DAY_MS, SETTLEMENT_MS)


async def sold_delivered_settled(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> int:
    paid = await pay_and_wait_for_order(http, seller, sessions)
    await deliver(http, seller, paid.order["id"])
    assert await settle(db) >= 1
    order = (await http.get(f"/api/orders/{paid.order['id']}", headers=seller.headers)).json()
    assert order["order"]["status"] == "completed"
    order_id: int = paid.order["id"]
    return order_id


async def withdraw(http: httpx.AsyncClient, seller: SellerAccount) -> httpx.Response:
    return await http.post(
        "/api/finance/withdrawals",
        headers=seller.headers,
        json={"shop_id": seller.shop.id, "currency": "USD"},
    )


async def set_method(http: httpx.AsyncClient, seller: SellerAccount, method: str) -> httpx.Response:
    return await http.put(
        f"/api/shops/{seller.shop.id}/payout-method",
        headers=seller.headers,
        json={"payout_method": method},
    )


async def statement(
    http: httpx.AsyncClient, seller: SellerAccount, from_ms: int, to_ms: int
) -> dict[str, Any]:
    r = await http.get(
        "/api/finance/statement",
        params={"shop_id": seller.shop.id, "from_ms": from_ms, "to_ms": to_ms},
        headers=seller.headers,
    )
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()["statement"]
    return found


def balances_of(found: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {
        b["account"]: (b["opening"], b["closing"])
        for b in found["balances"]
        if b["currency"] == "USD"
    }


async def test_earnings_follow_a_sale_through_settlement_and_a_withdrawal(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    assert await finance(http, seller) == {
        "shop_id": seller.shop.id,
        "payout_method": "",
        "earnings": [],
    }
    paid = await pay_and_wait_for_order(http, seller, sessions)
    assert await usd(http, seller) == {
        "pending": NET,
        "available": 0,
        "paid_out": 0,
        "withdrawable": 0,
    }
    assert_error(await withdraw(http, seller), 409, "no_payout_method")
    assert (await set_method(http, seller, "acct_test_1")).json() == {
        "shop_id": seller.shop.id,
        "payout_method": "acct_test_1",
    }
    refused = assert_error(await withdraw(http, seller), 409, "nothing_to_withdraw")
    assert refused["details"]["available"] == 0  # earned, but still pending

    await deliver(http, seller, paid.order["id"])
    assert await settle(db) >= 1
    assert await usd(http, seller) == {
        "pending": 0,
        "available": NET,
        "paid_out": 0,
        "withdrawable": NET,
    }
    made = await withdraw(http, seller)
    assert made.status_code == 201, made.text
    payout = made.json()["payout"]
    assert {k: payout[k] for k in ("shop_id", "amount", "currency", "status", "destination")} == {
        "shop_id": seller.shop.id,
        "amount": NET,
        "currency": "USD",
        "status": "paid",
        "destination": "acct_test_1",
    }
    assert await usd(http, seller) == {
        "pending": 0,
        "available": 0,
        "paid_out": NET,
        "withdrawable": 0,
    }
    history = await http.get(
        "/api/finance/payouts", params={"shop_id": seller.shop.id}, headers=seller.headers
    )
    assert history.json()["payouts"] == [payout]
    # Nothing left: refused, and nothing changed.
    assert_error(await withdraw(http, seller), 409, "nothing_to_withdraw")
    assert (await usd(http, seller))["paid_out"] == NET


async def test_one_withdrawal_a_day_even_when_two_race(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    await sold_delivered_settled(http, seller, sessions, db)
    assert (await set_method(http, seller, "acct_race")).status_code == 200
    first, second = await asyncio.gather(withdraw(http, seller), withdraw(http, seller))
    answers = sorted([first, second], key=lambda r: r.status_code)
    assert [r.status_code for r in answers] == [201, 409], [r.text for r in answers]
    # The loser either lost on the one-a-day index or read the balance after the winner took
    # it all: either way one payout, for the whole balance.
    assert answers[1].json()["error"]["code"] in ("payout_limit", "nothing_to_withdraw")
    history = await http.get(
        "/api/finance/payouts", params={"shop_id": seller.shop.id}, headers=seller.headers
    )
    assert [p["amount"] for p in history.json()["payouts"]] == [NET]
    # More money the same day: the day is used up, whatever the balance.
    await sold_delivered_settled(http, seller, sessions, db)
    assert (await usd(http, seller))["available"] == NET
    assert_error(await withdraw(http, seller), 409, "payout_limit")
    assert (await usd(http, seller))["available"] == NET  # refused: nothing moved


async def test_a_statement_has_every_entry_and_balances_that_add_up(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    start = now_ms()
    order_id = await sold_delivered_settled(http, seller, sessions, db)
    assert (await set_method(http, seller, "acct_statement")).status_code == 200
    payout = (await withdraw(http, seller)).json()["payout"]
    end = now_ms() + SETTLEMENT_MS + 2 * DAY_MS  # past the settlement, written at a moved clock

    whole = await statement(http, seller, start, end)
    entries = whole["entries"]
    assert [(e["txn"], e["account"], e["amount"]) for e in entries] == [
        (f"sale:{order_id}", "shop:pending", ORDER_TOTAL),
        (f"sale:{order_id}", "shop:pending", -FEE),
        (f"payout:{payout['id']}", "shop:available", -NET),
        (f"payout:{payout['id']}", "shop:paid_out", NET),
        (f"settle:{order_id}", "shop:pending", -NET),
        (f"settle:{order_id}", "shop:available", NET),
    ]  # oldest first: the settlement was written at the moved clock, after the payout
    assert [e["created_ms"] for e in entries] == sorted(e["created_ms"] for e in entries)
    assert {e["reference"] for e in entries} == {f"order:{order_id}", f"payout:{payout['id']}"}
    assert balances_of(whole) == {
        "shop:pending": (0, 0),
        "shop:available": (0, 0),
        "shop:paid_out": (0, NET),
    }
    # Cut after the sale: the sale is in the opening balance, the rest in the period.
    sale_ms = entries[0]["created_ms"]
    later = await statement(http, seller, sale_ms + 1, end)
    assert [e["id"] for e in later["entries"]] == [e["id"] for e in entries[2:]]
    assert balances_of(later) == {
        "shop:pending": (NET, 0),
        "shop:available": (0, 0),
        "shop:paid_out": (0, NET),
    }
    # Cut before the settlement: its closing is the later one's opening.
    settle_ms = entries[-1]["created_ms"]
    earlier = await statement(http, seller, start, settle_ms)
    assert balances_of(earlier) == {
        "shop:pending": (0, NET),
        "shop:available": (0, -NET),  # withdrawn before it settled: the books say so
        "shop:paid_out": (0, NET),
    }
    # Before anything: nothing, and no currency.
    assert (await statement(http, seller, start - 10 * DAY_MS, start)) == {
        "shop_id": seller.shop.id,
        "from_ms": start - 10 * DAY_MS,
        "to_ms": start,
        "balances": [],
        "entries": [],
    }

    csv_answer = await http.get(
        "/api/finance/statement.csv",
        params={"shop_id": seller.shop.id, "from_ms": start, "to_ms": end},
        headers=seller.headers,
    )
    assert csv_answer.status_code == 200, csv_answer.text
    assert csv_answer.headers["content-type"].startswith("text/csv")
    assert re.fullmatch(
        rf'attachment; filename="statement-shop-{seller.shop.id}-\d{{4}}-\d\d-\d\d-to-'
        r'\d{4}-\d\d-\d\d\.csv"',
        csv_answer.headers["content-disposition"],
    )
    rows = list(csv.DictReader(io.StringIO(csv_answer.text)))
    assert [(r["txn"], r["account"], int(r["amount_minor"])) for r in rows] == [
        (e["txn"], e["account"], e["amount"]) for e in entries
    ]
    assert [r["amount"] for r in rows[:2]] == ["98.00", "-4.90"]
    assert {r["currency"] for r in rows} == {"USD"}
    assert [r["reference"] for r in rows] == [e["reference"] for e in entries]
    for row, entry in zip(rows, entries, strict=True):
        when = datetime.datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
        assert round(when.timestamp() * 1000) == entry["created_ms"]
        assert when.tzinfo == datetime.UTC


async def test_statement_parameters_are_checked(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    good = {"shop_id": seller.shop.id, "from_ms": 0, "to_ms": DAY_MS}
    for path in ("/api/finance/statement", "/api/finance/statement.csv"):

        async def get(params: dict[str, Any], path: str = path) -> httpx.Response:
            return await http.get(path, params=params, headers=seller.headers)

        assert (await get(good)).status_code == 200
        for name in ("shop_id", "from_ms", "to_ms"):
            missing = {k: v for k, v in good.items() if k != name}
            error = assert_error(await get(missing), 422, "invalid_query")
            assert error["details"]["param"] == name
            for bad in ("abc", "-1", "1.5", "", "9" * 17, "٣"):
                error = assert_error(await get({**good, name: bad}), 422, "invalid_query")
                assert error["details"]["param"] == name
        for from_ms, to_ms in ((DAY_MS, DAY_MS), (DAY_MS, 0), (0, 367 * DAY_MS)):
            error = assert_error(
                await get({**good, "from_ms": from_ms, "to_ms": to_ms}), 422, "invalid_period"
            )
            assert error["details"]["max_days"] == 366
        assert (await get({**good, "to_ms": 366 * DAY_MS})).status_code == 200
    for path in ("/api/finance", "/api/finance/payouts"):
        error = assert_error(await http.get(path, headers=seller.headers), 422, "invalid_query")
        assert error["details"]["param"] == "shop_id"


async def test_another_sellers_shop_is_not_found(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    await sold_delivered_settled(http, seller, sessions, db)
    assert (await set_method(http, seller, "acct_owner")).status_code == 200
    rival = await make_seller(db, "Rival")
    mine = {"shop_id": seller.shop.id}
    period = {**mine, "from_ms": 0, "to_ms": DAY_MS}
    for path, params in (
        ("/api/finance", mine),
        ("/api/finance/payouts", mine),
        ("/api/finance/statement", period),
        ("/api/finance/statement.csv", period),
    ):
        r = await http.get(path, params=params, headers=rival.headers)
        assert_error(r, 404, "shop_not_found")
    stolen = await http.post(
        "/api/finance/withdrawals",
        headers=rival.headers,
        json={"shop_id": seller.shop.id, "currency": "USD"},
    )
    assert_error(stolen, 404, "shop_not_found")
    r = await http.put(
        f"/api/shops/{seller.shop.id}/payout-method",
        headers=rival.headers,
        json={"payout_method": "acct_thief"},
    )
    assert_error(r, 404, "shop_not_found")
    assert_error(
        await http.get("/api/finance", params=mine), 401, "missing_token"
    )  # and nobody's without a token
    # Nothing moved: the owner's money and payout method are as they were.
    assert (await finance(http, seller))["payout_method"] == "acct_owner"
    assert (await usd(http, seller))["available"] == NET


async def test_a_payout_method_is_printable_text_up_to_200_characters(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    for bad in ("x" * 201, "acct\n1", "acct\x001", "tab\there", "\x7f"):
        assert_error(await set_method(http, seller, bad), 422, "invalid_request")
    r = await http.put(
        f"/api/shops/{seller.shop.id}/payout-method", headers=seller.headers, json={}
    )
    assert_error(r, 422, "invalid_request")
    assert (await finance(http, seller))["payout_method"] == ""  # nothing was stored
    assert (await set_method(http, seller, "  IBAN DE89 3704 0044 0532 0130 00 ")).json()[
        "payout_method"
    ] == "IBAN DE89 3704 0044 0532 0130 00"
    assert (await set_method(http, seller, "x" * 200)).status_code == 200
    assert (await set_method(http, seller, "")).json()["payout_method"] == ""
    assert_error(await withdraw(http, seller), 409, "no_payout_method")  # removed


# --- net figures -----------------------------------------------------------------------------


def _tile(page: str, tile_id: str) -> str:
    """A tile's figure, as text (its label follows in a span of its own)."""
    found = re.search(rf'id="{tile_id}">(.*?)</span><span>', page, re.S)
    assert found, tile_id
    return re.sub(r"<[^>]+>", "", found[1])


async def test_todays_sales_and_a_rooms_figures_are_net_of_refunds(
    server: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    room, _product, sku = await http_room(http, seller)
    deal = await http_flash_deal(http, seller, room, sku, quantity=5, limit=2)
    await until_flash_deal_live(http, room, deal["deal_id"])
    orders = []
    for n in range(2):
        _, buyer = viewer_headers(sessions)
        hold = await reserve(http, deal["deal_id"], buyer, qty=1)
        assert (await checkout(http, hold["id"], buyer, key=f"net-{n}")).status_code == 201
        found = await poll(
            lambda buyer=buyer: http.get("/api/orders", headers=buyer),
            lambda r: r.status_code == 200 and len(r.json()["orders"]) == 1,
        )
        orders.append(found.json()["orders"][0])
    assert [o["total"] for o in orders] == [4900, 4900]

    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as browser_like:
        await sign_in(browser_like, seller.token)
        before = (await browser_like.get("/seller")).text
        assert "Today's sales, net of refunds" in html.unescape(before)  # t() escapes the '
        assert _tile(before, "tile-today-sales") == "$98.00"

        refund = await http.post(
            f"/api/orders/{orders[0]['id']}/refund",
            headers={**seller.headers, "Idempotency-Key": "net-figures"},
            json={"amount": 1000, "reason": "scratched"},
        )
        assert refund.status_code == 200, refund.text
        figures = (await http.get(f"/api/rooms/{room}/figures", headers=seller.headers)).json()[
            "figures"
        ]
        assert (figures["gmv"], figures["net_gmv"]) == (9800, 8800)
        cancel = await http.post(f"/api/orders/{orders[1]['id']}/cancel", headers=seller.headers)
        assert cancel.status_code == 200, cancel.text
        figures = (await http.get(f"/api/rooms/{room}/figures", headers=seller.headers)).json()[
            "figures"
        ]
        assert (figures["orders"], figures["gmv"], figures["net_gmv"]) == (2, 9800, 3900)

        after = (await browser_like.get("/seller")).text
        assert _tile(after, "tile-today-sales") == "$39.00"
        assert "$98.00 sold, $59.00 refunded" in after
        row = re.search(rf'<tr id="room-{room}">(.*?)</tr>', after, re.S)
        assert row is not None
        assert re.search(r'class="gmv">\$98\.00<', row[1])
        assert re.search(r'class="net-gmv">\$39\.00<', row[1])
        assert "GMV (gross)" in after and "GMV (net of refunds)" in after


async def two_currency_room(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> int:
    """A live room that sold two units of a USD deal ($49.00 each) and one of a EUR deal
    (€49.00), to three buyers; its id once the three orders are written. Its pictures are the
    server's own, so a browser can show it."""
    room, _product, dollars = await http_room(http, seller, image="/static/img/jacket.svg")
    made = await http.post(
        f"/api/shops/{seller.shop.id}/products", headers=seller.headers, json={"title": "Scarf"}
    )
    product = made.json()["product"]["id"]
    euros = await http.post(
        f"/api/products/{product}/skus",
        headers=seller.headers,
        json={"variant": "L", "list_price": 9900, "currency": "EUR", "stock": 100},
    )
    assert euros.status_code == 201, euros.text
    bagged = await http.post(
        f"/api/rooms/{room}/bag", headers=seller.headers, json={"product_id": product}
    )
    assert bagged.status_code == 200, bagged.text
    # Both deals count down at once: a countdown is ten seconds at the least.
    deals = [
        (await http_flash_deal(http, seller, room, sku, quantity=5, limit=2), buyers)
        for sku, buyers in ((dollars, 2), (euros.json()["sku"]["id"], 1))
    ]
    for deal, buyers in deals:
        await until_flash_deal_live(http, room, deal["deal_id"])
        for n in range(buyers):
            _, buyer = viewer_headers(sessions)
            hold = await reserve(http, deal["deal_id"], buyer, qty=1)
            paid = await checkout(http, hold["id"], buyer, key=f"currencies-{deal['deal_id']}-{n}")
            assert paid.status_code == 201, paid.text
            await poll(
                lambda buyer=buyer: http.get("/api/orders", headers=buyer),
                lambda r: r.status_code == 200 and len(r.json()["orders"]) == 1,
            )
    return room


async def test_a_room_that_sells_in_two_currencies_adds_up_neither_into_the_other(
    server: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    """Decision 0053: two orders of a USD deal and one of a EUR deal in one room. Every report
    gives each currency its own money; the counts are of every order; the money drawn per
    minute or day is the leading currency's (most orders) alone."""
    room = await two_currency_room(http, seller, sessions)
    each = [
        {"currency": "EUR", "orders": 1, "units": 1, "gmv": 4900, "net_gmv": 4900},
        {"currency": "USD", "orders": 2, "units": 2, "gmv": 9800, "net_gmv": 9800},
    ]

    found = await http.get(f"/api/rooms/{room}/figures", headers=seller.headers)
    figures = found.json()["figures"]
    assert figures["sales"] == each
    assert (figures["orders"], figures["units_sold"], figures["buyers"]) == (3, 3, 3)
    assert (figures["currency"], figures["gmv"], figures["net_gmv"]) == ("USD", 9800, 9800)

    found = await http.get(f"/api/rooms/{room}/analytics", headers=seller.headers)
    report = found.json()["analytics"]
    totals = report["totals"]
    assert (totals["sales"], totals["currency"]) == (each, "USD")
    assert (totals["orders"], totals["units"], totals["gmv"], totals["net_gmv"]) == (
        3,
        3,
        9800,
        9800,
    )
    assert sum(m["gmv"] for m in report["minutes"]) == 9800

    path = f"/api/shops/{seller.shop.id}/analytics/daily"
    daily = (await http.get(path, params={"days": 1}, headers=seller.headers)).json()
    assert (daily["currency"], daily["sales"]) == ("USD", each)
    assert [(d["orders"], d["gmv"]) for d in daily["days"]] == [(3, 9800)]
    as_csv = await http.get(f"{path}.csv", params={"days": 1}, headers=seller.headers)
    [row] = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert (row["orders"], row["gmv"], row["currency"]) == ("3", "9800", "USD")

    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as browser_like:
        await sign_in(browser_like, seller.token)
        page = html.unescape((await browser_like.get("/seller")).text)
    row_html = re.search(rf'<tr id="room-{room}">(.*?)</tr>', page, re.S)
    assert row_html is not None
    gross = re.search(r'class="gmv">(.*?)</td>', row_html[1])
    assert gross is not None and gross[1] == "€49.00 · $98.00"


@pytest.fixture
def own_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'net.db'}"
    upgrade(url)  # synchronous: alembic runs its own event loop
    return url


@pytest.fixture
async def own_db(own_url: str) -> AsyncIterator[Database]:
    """A database of the test's own: the entries posted here by hand are not real orders', and
    the shared database must stay clean for whatever audits it."""
    database = Database(own_url)
    yield database
    await database.close()


async def test_net_sales_leave_out_confirmations_and_count_a_refused_refund_back(
    own_db: Database,
) -> None:
    async with own_db.session() as session:
        _, shop, _ = await service.create_seller(session, "Net", "net@example.com")
        _, other, _ = await service.create_seller(session, "Other", "other@example.com")
    assert shop.id is not None and other.id is not None
    midnight = now_ms() - 1000
    yesterday = midnight - DAY_MS
    refused = ledger.refund_granted(12, 2, shop.id, "USD", 2000, 100, Account.PENDING)
    postings = [
        (ledger.sale(1, shop.id, "USD", 10_000, 500), yesterday),  # before: not today's
        (ledger.sale(2, shop.id, "USD", 5000, 500), midnight),
        (ledger.sale(3, shop.id, "JPY", 1200, 500), midnight),
        (ledger.sale(4, other.id, "USD", 7000, 500), midnight),  # another shop's
        # A refund of yesterday's order today, confirmed: counted once.
        (ledger.refund_granted(11, 1, shop.id, "USD", 3000, 150, Account.PENDING), midnight),
        (ledger.refund_succeeded(11, 1, shop.id, "USD", 3000), midnight),
        # A refund the provider refused: granted, then reversed; nets to nothing.
        (refused, midnight),
        (ledger.refund_failed(refused), midnight),
        # Still pending: granted is refunded.
        (ledger.refund_granted(13, 3, shop.id, "JPY", 200, 10, Account.PENDING), midnight),
        # Yesterday's grant is not today's refund.
        (ledger.refund_granted(14, 1, shop.id, "USD", 500, 25, Account.PENDING), yesterday),
    ]
    async with own_db.session() as session:
        conn = await session.connection()
        for txn, at in postings:
            await ledger_store.post(conn, txn, at)
        await session.commit()
    async with own_db.session() as session:
        conn = await session.connection()
        found = await finance_store.net_sales_since(conn, [shop.id], midnight)
        both = await finance_store.net_sales_since(conn, [shop.id, other.id], midnight)
        none = await finance_store.net_sales_since(conn, [], midnight)
    assert {c: (s.gross, s.refunded, s.net) for c, s in found.items()} == {
        "USD": (5000, 3000, 2000),
        "JPY": (1200, 200, 1000),
    }
    assert (both["USD"].gross, both["USD"].net) == (12_000, 9000)
    assert none == {}


# --- the seller center's Finance tab ---------------------------------------------------------


def _day(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).date().isoformat()


async def test_the_finance_tab_shows_earnings_withdraws_and_lists_the_statement(
    server: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    db: Database,
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as page:
        csrf = await sign_in(page, seller.token)
        empty = (await page.get("/seller")).text
        assert 'id="finance"' in empty and 'id="no-earnings"' in empty
        assert 'href="#finance"' in empty

        paid = await pay_and_wait_for_order(http, seller, sessions)
        center = (await page.get("/seller")).text
        tiles = re.search(r'id="earnings-USD".*?</ul>', center, re.S)
        assert tiles is not None
        assert 'data-balance="pending">$93.10<' in tiles[0]
        assert 'data-balance="available">$0.00<' in tiles[0]

        form = {"csrf": csrf, "shop_id": str(seller.shop.id), "currency": "USD"}
        forged = await page.post("/seller/finance/withdraw", data={**form, "csrf": "x"})
        assert forged.status_code == 403
        no_method = await page.post("/seller/finance/withdraw", data=form)
        assert no_method.status_code == 409
        assert "Add a payout method" in no_method.text and 'id="page-error"' in no_method.text

        method = "/seller/finance/payout-method"
        bad = await page.post(
            method, data={"csrf": csrf, "shop_id": str(seller.shop.id), "payout_method": "a\nb"}
        )
        assert bad.status_code == 422
        assert 'id="payout-method-error"' in bad.text and "no line breaks" in bad.text
        assert (await finance(http, seller))["payout_method"] == ""
        saved = await page.post(
            method,
            data={"csrf": csrf, "shop_id": str(seller.shop.id), "payout_method": "acct_page"},
        )
        assert (saved.status_code, saved.headers["location"]) == (
            303,
            f"/seller?finance_shop={seller.shop.id}#finance",
        )
        assert (await finance(http, seller))["payout_method"] == "acct_page"

        pending = await page.post("/seller/finance/withdraw", data=form)
        assert pending.status_code == 409 and "nothing available to withdraw" in pending.text

        await deliver(http, seller, paid.order["id"])
        assert await settle(db) >= 1
        done = await page.post("/seller/finance/withdraw", data=form)
        assert done.status_code == 303, done.text
        (payout,) = (
            await http.get(
                "/api/finance/payouts", params={"shop_id": seller.shop.id}, headers=seller.headers
            )
        ).json()["payouts"]
        again = await page.post("/seller/finance/withdraw", data=form)
        assert again.status_code == 409  # once a day; nothing left anyway

        # The statement, from today to past the settlement (written at a moved clock).
        first, last = _day(now_ms()), _day(now_ms() + SETTLEMENT_MS + 2 * DAY_MS)
        shown = await page.get(
            "/seller",
            params={
                "finance_shop": seller.shop.id,
                "statement_from": first,
                "statement_to": last,
            },
        )
        assert shown.status_code == 200
        text = shown.text
        assert f'id="payout-{payout["id"]}"' in text and "acct_page" in text
        assert 'data-balance="paid_out">$93.10<' in text
        assert len(re.findall(r'<tr id="entry-\d+">', text)) == 6
        assert f"sale:{paid.order['id']}" in text and f"payout:{payout['id']}" in text
        link = re.search(r'href="(/api/finance/statement\.csv\?[^"]+)" id="statement-csv"', text)
        assert link is not None
        exported = await page.get(link[1].replace("&amp;", "&"))  # the cookie stands in
        assert exported.status_code == 200 and exported.headers["content-type"].startswith(
            "text/csv"
        )
        assert len(list(csv.DictReader(io.StringIO(exported.text)))) == 6

        # Days that are not a period: this month is shown, with the reason.
        for params in (
            {"statement_from": "2026-13-01", "statement_to": "2026-12-31"},
            {"statement_from": first},
        ):
            wrong = await page.get("/seller", params=params)
            assert wrong.status_code == 200 and 'id="statement-error"' in wrong.text
        reversed_days = await page.get(
            "/seller", params={"statement_from": last, "statement_to": first}
        )
        assert "ends after it starts" in reversed_days.text

        # Another seller's shop, by its id in the form: not found, nothing paid.
        other = await make_seller(db, "Finance rival")
        await sign_in(page, other.token)
        csrf_other = (await page.get("/seller")).text
        token = re.findall(r'name="csrf" value="([^"]+)"', csrf_other)[0]
        stolen = await page.post("/seller/finance/withdraw", data={**form, "csrf": token})
        assert stolen.status_code == 404
        thief = await page.post(
            method,
            data={"csrf": token, "shop_id": str(seller.shop.id), "payout_method": "acct_thief"},
        )
        assert thief.status_code == 404
        assert (await finance(http, seller))["payout_method"] == "acct_page"


def test_the_leading_currency_has_the_most_orders_then_the_first_code() -> None:
    def sales(currency: str, orders: int, gmv: int) -> CurrencySales:
        return CurrencySales(currency, orders, orders, gmv, gmv)

    assert leading([]).currency == "USD"  # nothing sold yet
    assert leading([sales("EUR", 1, 90_000), sales("USD", 2, 100)]).currency == "USD"
    # As many orders: the first code, whatever the amounts (yen and dollars do not compare).
    assert leading([sales("USD", 2, 100), sales("JPY", 2, 500_000)]).currency == "JPY"
    assert leading([sales("JPY", 2, 500_000), sales("GBP", 2, 100)]).currency == "GBP"
