"""Shipping many orders at once (checkout/bulk_ship.py): ``POST /api/orders/ship`` and the seller
center's CSV upload (web/shipments_csv.py). Each row is applied on its own: good rows ship
whatever the bad ones do, each bad row is answered with the code shipping that order alone would
get, and nothing about a bad row's order changes. A file or request refused whole ships nothing.
Two uploads racing over the same orders ship each order once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from checkout.bulk_ship import MAX_SHIPMENTS
from kernel.db import Database
from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import (
    assert_error,
    checkout,
    make_listing,
    make_seller,
    orders_seen_by,
    reserve,
    until,
)
from tests.test_seller_pages import sign_in
from web.auth import GuestSessions

pytestmark = pytest.mark.storage
DAY_MS = 86_400_000


async def paid_orders(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, count: int
) -> list[dict[str, Any]]:
    """``count`` paid orders of ``seller``'s, one per buyer, from one live deal; oldest first."""
    item = await make_listing(http, seller, quantity=max(count, 5))  # the deal limit is 5
    for n in range(count):
        _, buyer = viewer_headers(sessions)
        hold = await reserve(http, item.deal_id, buyer)
        assert (await checkout(http, hold["id"], buyer, key=f"pay-{n}")).status_code == 201

    async def all_written() -> bool:
        return len(await _deal_orders(http, seller, item.deal_id)) == count

    await until(all_written, f"{count} orders to be written")
    return sorted(await _deal_orders(http, seller, item.deal_id), key=lambda o: o["id"])


async def _deal_orders(
    http: httpx.AsyncClient, seller: SellerAccount, deal_id: int
) -> list[dict[str, Any]]:
    return [o for o in await orders_seen_by(http, seller.headers) if o["deal_id"] == deal_id]


async def _order(http: httpx.AsyncClient, seller: SellerAccount, order_id: int) -> dict[str, Any]:
    r = await http.get(f"/api/orders/{order_id}", headers=seller.headers)
    assert r.status_code == 200, r.text
    order: dict[str, Any] = r.json()["order"]
    return order


async def _ship(
    http: httpx.AsyncClient, seller: SellerAccount, shipments: list[dict[str, Any]]
) -> httpx.Response:
    return await http.post(
        "/api/orders/ship", headers=seller.headers, json={"shipments": shipments}
    )


def _moves(order: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["from"], e["to"]) for e in order["events"]]


PAID_ONLY = [(None, "paid")]
SHIPPED_FROM_PAID = [
    (None, "paid"),
    ("paid", "awaiting_shipment"),
    ("awaiting_shipment", "shipped"),
]


# -- the JSON API --------------------------------------------------------------------------------


async def test_every_good_shipment_ships_a_paid_one_confirmed_on_the_way(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    orders = await paid_orders(http, seller, sessions, 3)
    confirmed = await http.post(f"/api/orders/{orders[2]['id']}/confirm", headers=seller.headers)
    assert confirmed.status_code == 200
    shipments = [
        {"order_id": o["id"], "carrier": f"Carrier {n}", "tracking_number": f"TRK{n}"}
        for n, o in enumerate(orders)
    ]
    r = await _ship(http, seller, shipments)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["shipped"], body["failed"]) == (3, 0)
    assert [(x["index"], x["order_id"], x["shipped"]) for x in body["results"]] == [
        (n, o["id"], True) for n, o in enumerate(orders)
    ]
    for n, result in enumerate(body["results"]):
        shipped = result["order"]
        assert (shipped["status"], shipped["carrier"], shipped["tracking_number"]) == (
            "shipped",
            f"Carrier {n}",
            f"TRK{n}",
        )
        assert shipped["deliver_by_ms"] == shipped["shipped_ms"] + 7 * DAY_MS
        assert "error" not in result
    assert _moves(await _order(http, seller, orders[0]["id"])) == SHIPPED_FROM_PAID
    assert _moves(await _order(http, seller, orders[2]["id"])) == SHIPPED_FROM_PAID


async def test_bad_shipments_are_answered_row_by_row_and_change_nothing(
    http: httpx.AsyncClient, db: Database, seller: SellerAccount, sessions: GuestSessions
) -> None:
    good, unshippable, untracked, second_good = await paid_orders(http, seller, sessions, 4)
    rival = await make_seller(db, "Rival Seller")
    theirs = (await paid_orders(http, rival, sessions, 1))[0]
    ship = {"carrier": "UPS", "tracking_number": "1Z"}
    await _ship(http, seller, [{"order_id": unshippable["id"], **ship}])  # shipped already
    confirmed = await http.post(f"/api/orders/{second_good['id']}/confirm", headers=seller.headers)
    assert confirmed.status_code == 200
    before = {o["id"]: await _order(http, seller, o["id"]) for o in (unshippable, untracked)}
    rival_before = await _order(http, rival, theirs["id"])

    r = await _ship(
        http,
        seller,
        [
            {"order_id": good["id"], "carrier": "DHL", "tracking_number": "JD1"},
            {"order_id": 2_000_000_000, **ship},  # no such order
            {"order_id": theirs["id"], **ship},  # another seller's
            {"order_id": unshippable["id"], **ship},  # shipped already
            {"order_id": untracked["id"], "carrier": "DHL"},  # no tracking number
            {"order_id": second_good["id"], **ship},
            {"order_id": good["id"], **ship},  # the same order again: it has shipped
        ],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["shipped"], body["failed"]) == (2, 5)
    outcome = [(x["shipped"], x.get("error", {}).get("code")) for x in body["results"]]
    assert outcome == [
        (True, None),
        (False, "order_not_found"),
        (False, "order_not_found"),
        (False, "invalid_transition"),
        (False, "tracking_required"),
        (True, None),
        (False, "invalid_transition"),
    ]
    for result in body["results"]:
        if not result["shipped"]:
            assert result["error"]["message"] and "order" not in result
    assert body["results"][4]["error"]["details"]["missing"] == ["tracking_number"]
    assert body["results"][3]["error"]["details"]["status"] == "shipped"

    # The good rows shipped; the bad rows' orders are exactly as they were.
    assert (await _order(http, seller, good["id"]))["tracking_number"] == "JD1"  # not "1Z"
    assert (await _order(http, seller, second_good["id"]))["status"] == "shipped"
    for order_id, was in before.items():
        assert await _order(http, seller, order_id) == was
    assert await _order(http, rival, theirs["id"]) == rival_before
    assert _moves(rival_before) == PAID_ONLY


async def test_a_request_too_large_or_malformed_ships_nothing(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    (order,) = await paid_orders(http, seller, sessions, 1)
    row = {"order_id": order["id"], "carrier": "UPS", "tracking_number": "1Z"}
    too_many = await _ship(http, seller, [row] * (MAX_SHIPMENTS + 1))
    details = assert_error(too_many, 422, "too_many_shipments")["details"]
    assert (details["limit"], details["count"]) == (MAX_SHIPMENTS, MAX_SHIPMENTS + 1)
    for bad in (
        [{**row, "order_id": str(order["id"])}],  # a string id
        [{**row, "order_id": 0}],
        [{**row, "carrier": "x" * 61}],
        [{**row, "price": 1}],
    ):
        r = await _ship(http, seller, bad)
        assert r.status_code == 422, (bad, r.text)
    assert_error(
        await http.post("/api/orders/ship", headers=seller.headers, content=b"order_id\n1"),
        415,
        "unsupported_media_type",
    )
    signed_out = await http.post("/api/orders/ship", json={"shipments": [row]})
    assert_error(signed_out, 401, "missing_token")
    assert _moves(await _order(http, seller, order["id"])) == PAID_ONLY
    empty = await _ship(http, seller, [])
    assert empty.json() == {"shipped": 0, "failed": 0, "results": []}


async def test_two_bulk_shipments_racing_ship_each_order_once(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    orders = await paid_orders(http, seller, sessions, 6)
    rows = [{"order_id": o["id"], "carrier": "UPS", "tracking_number": "1Z"} for o in orders]
    answers = await asyncio.gather(
        _ship(http, seller, rows), _ship(http, seller, list(reversed(rows)))
    )
    assert [a.status_code for a in answers] == [200, 200]
    shipped_by = {o["id"]: 0 for o in orders}
    for answer in answers:
        for result in answer.json()["results"]:
            if result["shipped"]:
                shipped_by[result["order_id"]] += 1
            else:
                assert result["error"]["code"] in ("invalid_transition", "order_changed")
    assert set(shipped_by.values()) == {1}  # each order shipped by exactly one of the two
    for order in orders:
        assert _moves(await _order(http, seller, order["id"])) == SHIPPED_FROM_PAID


# -- the seller center's CSV upload --------------------------------------------------------------


@pytest.fixture
async def browser_like(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        yield client


def _csv_form(csrf: str, text: str | bytes) -> dict[str, Any]:
    content = text.encode() if isinstance(text, str) else text
    return {"data": {"csrf": csrf}, "files": {"file": ("shipments.csv", content, "text/csv")}}


def _line_codes(page: str) -> dict[int, str]:
    """Each line's outcome on the results page: "shipped" or its error code."""
    rows = re.findall(r'<tr id="line-(\d+)" class="(shipped|refused)" data-code="([a-z_]*)"', page)
    return {int(n): code or kind for n, kind, code in rows}


async def test_a_csv_ships_its_good_lines_and_says_why_the_others_did_not(
    browser_like: httpx.AsyncClient,
    http: httpx.AsyncClient,
    db: Database,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    good, hashed, shipped_before, untracked = await paid_orders(http, seller, sessions, 4)
    rival = await make_seller(db, "Rival Seller")
    (theirs,) = await paid_orders(http, rival, sessions, 1)
    await _ship(
        http, seller, [{"order_id": shipped_before["id"], "carrier": "A", "tracking_number": "B"}]
    )
    before = {o["id"]: await _order(http, seller, o["id"]) for o in (shipped_before, untracked)}
    csrf = await sign_in(browser_like, seller.token)
    text = (
        "\ufeffOrder_ID, Carrier ,tracking_number\r\n"  # a spreadsheet's BOM and spacing
        f"{good['id']},DHL,JD0001\r\n"  # line 2
        "2000000000,UPS,1Z\r\n"  # 3: no such order
        f"{theirs['id']},UPS,1Z\r\n"  # 4: another seller's
        f"{shipped_before['id']},UPS,1Z\r\n"  # 5: shipped already
        f"{untracked['id']},UPS,\r\n"  # 6: no tracking number
        f"{good['id']},UPS,1Z,extra\r\n"  # 7: a field too many
        "abc,UPS,1Z\r\n"  # 8: not an order number
        "\r\n"  # 9: blank, skipped
        ",,\r\n"  # 10: only commas, skipped
        f'#{hashed["id"]},"Royal Mail, Tracked",RM 42\r\n'  # 11: as the center writes ids
        f"{good['id']},{'x' * 61},1Z\r\n"  # 12: a carrier too long
    )
    page = await browser_like.post("/seller/orders/ship", **_csv_form(csrf, text))
    assert page.status_code == 200, page.text
    assert _line_codes(page.text) == {
        2: "shipped",
        3: "order_not_found",
        4: "order_not_found",
        5: "invalid_transition",
        6: "tracking_required",
        7: "malformed_csv_row",
        8: "invalid_order_id",
        11: "shipped",
        12: "malformed_csv_row",
    }
    assert re.search(r"2 shipped, 7 not shipped", page.text)
    assert "&#39;abc&#39; is not an order number" in page.text

    shipped = await _order(http, seller, good["id"])
    assert (shipped["carrier"], shipped["tracking_number"]) == ("DHL", "JD0001")
    assert _moves(shipped) == SHIPPED_FROM_PAID
    royal = await _order(http, seller, hashed["id"])
    assert (royal["status"], royal["carrier"], royal["tracking_number"]) == (
        "shipped",
        "Royal Mail, Tracked",
        "RM 42",
    )
    for order_id, was in before.items():
        assert await _order(http, seller, order_id) == was
    assert _moves(await _order(http, rival, theirs["id"])) == PAID_ONLY


async def test_a_file_refused_whole_ships_nothing(
    browser_like: httpx.AsyncClient,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    (order,) = await paid_orders(http, seller, sessions, 1)
    csrf = await sign_in(browser_like, seller.token)
    line = f"{order['id']},UPS,1Z\n"
    header = "order_id,carrier,tracking_number\n"
    for content, status, words in (
        (line, 400, "The first line must name the columns"),  # no header
        ("order_id,carrier\n" + line, 400, "The first line must name the columns"),
        (b"order_id,carrier,tracking_number\n\xff\xfe1,UPS,1Z\n", 400, "not UTF-8"),
        (header + line + "\x00\n", 400, "not text"),
        ("", 400, "Choose a CSV file"),
        (header + line * (MAX_SHIPMENTS + 1), 422, f"At most {MAX_SHIPMENTS} shipments"),
    ):
        r = await browser_like.post("/seller/orders/ship", **_csv_form(csrf, content))
        assert r.status_code == status, (content[:40], r.status_code)
        assert words in r.text and 'id="page-error"' in r.text  # the center, with the reason
    forged = await browser_like.post("/seller/orders/ship", **_csv_form("forged", header + line))
    assert forged.status_code == 403
    as_form = await browser_like.post(
        "/seller/orders/ship", data={"csrf": csrf, "file": header + line}
    )
    assert as_form.status_code == 415
    garbled = await browser_like.post(
        "/seller/orders/ship",
        content=b"--x\r\nnot a part",
        headers={"Content-Type": "multipart/form-data; boundary=zz"},
    )
    assert garbled.status_code == 400
    assert _moves(await _order(http, seller, order["id"])) == PAID_ONLY

    browser_like.cookies.clear()
    signed_out = await browser_like.post("/seller/orders/ship", **_csv_form(csrf, header + line))
    assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/seller/login")
    assert _moves(await _order(http, seller, order["id"])) == PAID_ONLY


async def test_the_seller_center_offers_the_upload(
    browser_like: httpx.AsyncClient, seller: SellerAccount
) -> None:
    await sign_in(browser_like, seller.token)
    page = (await browser_like.get("/seller")).text
    form = re.search(r'<form[^>]*id="ship-csv"[^>]*>', page)
    assert form is not None
    assert 'action="/seller/orders/ship"' in form.group(0)
    assert 'enctype="multipart/form-data"' in form.group(0)
    assert 'type="file" name="file"' in page
