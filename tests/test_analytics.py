"""Live analytics per room per minute (decision 0044), against a real server: every figure
equals what the test did, while the room is live (from Redis) and after it ended (from SQL);
rewriting an ended room's minutes counts nothing twice; bad reports are refused with a code and
not counted; the shop's days add the room up, as JSON and CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from kernel.clock import now_ms
from kernel.db import Database
from live import analytics_sql
from live.analytics import RoomAnalytics
from live.keys import LiveKeys
from tests.conftest import PREFIX, SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import (
    assert_error,
    checkout,
    http_flash_deal,
    http_room,
    make_seller,
    new_product,
    orders_seen_by,
    poll,
    until_flash_deal_live,
)
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

VIEWERS = 3
LIKES_EACH = 5
DEAL_PRICE = 4900
FIGURES = (
    "peak_viewers",
    "unique_viewers",
    "followers",
    "likes",
    "chat",
    "impressions",
    "clicks",
    "carts",
    "orders",
    "units",
    "gmv",
    "net_gmv",
)


async def analytics_of(http: httpx.AsyncClient, room: int, seller: SellerAccount) -> Any:
    r = await http.get(f"/api/rooms/{room}/analytics", headers=seller.headers)
    assert r.status_code == 200, r.text
    return r.json()["analytics"]


def figures(report: Any) -> dict[str, int]:
    return {name: report["totals"][name] for name in FIGURES}


async def until_figures(
    http: httpx.AsyncClient, room: int, seller: SellerAccount, want: dict[str, int], source: str
) -> Any:
    report = await poll(
        lambda: analytics_of(http, room, seller),
        lambda r: r["source"] == source and figures(r) == want,
        within_s=30,
    )
    assert (report["source"], figures(report)) == (source, want)
    return report


async def settled(viewer: WsViewer, mark: int) -> None:
    """Everything the viewer sent before has been acted on (a connection's messages are
    handled in order, and a ping is answered)."""
    await viewer.send(type="ping", client_ms=mark)
    await viewer.next("time", client_ms=mark)


def refusals(viewer: WsViewer, ref: str) -> list[str]:
    return [m["code"] for m in viewer.messages if m.get("type") == "error" and m.get("ref") == ref]


def check_minutes_add_up(report: Any) -> None:
    minutes = report["minutes"]
    summed = {
        name: sum(m[name] for m in minutes)
        for name in FIGURES
        if name not in ("peak_viewers", "unique_viewers")
    }
    assert summed == {k: v for k, v in figures(report).items() if k in summed}
    assert max(m["viewers"] for m in minutes) == report["totals"]["peak_viewers"]
    # Each viewer joined once, so the minutes' joiners are the room's unique viewers.
    assert sum(m["unique_viewers"] for m in minutes) == report["totals"]["unique_viewers"]


async def test_every_figure_is_what_the_viewers_did_live_and_after_the_end(
    server: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    redis: Redis,
    db: Database,
) -> None:
    room, product, sku = await http_room(http, seller)
    second = (await new_product(http, seller))["id"]
    bagged = await http.post(
        f"/api/rooms/{room}/bag", headers=seller.headers, json={"product_id": second}
    )
    assert bagged.status_code == 200, bagged.text
    viewers, buyers = [], []
    for n in range(VIEWERS):
        _, headers = viewer_headers(sessions)
        ws = await WsViewer.open(server.base_url, room)
        await ws.hello(headers["Authorization"].split()[1], name=f"v{n}")
        viewers.append(ws)
        buyers.append(headers)
    creator = await WsViewer.open(server.base_url, room)
    await creator.hello(seller.token)
    await poll(
        lambda: http.get(f"/api/rooms/{room}/figures", headers=seller.headers),
        lambda r: r.json()["figures"]["viewers"] == VIEWERS,
    )

    # A pin is seen by every viewer there; an opened bag shows its two products.
    pinned = await http.post(
        f"/api/rooms/{room}/pin", headers=seller.headers, json={"product_id": product}
    )
    assert pinned.status_code == 200, pinned.text
    impressions = VIEWERS
    for n, ws in enumerate(viewers):
        await ws.send(type="like", count=LIKES_EACH)
        await ws.send(type="chat", text=f"hello {n}")
        await ws.next("chat", text=f"hello {n}")
    for _ in range(2):
        await viewers[0].send(type="bag.opened")
    impressions += 2 * 2
    for _ in range(3):
        await viewers[1].send(type="product.clicked", product_id=second)
    clicks = 3
    # Refused and not counted: a product not in the bag, a bad field, a seller's look.
    await viewers[1].send(type="product.clicked", product_id=999_999)
    await viewers[1].send(type="product.clicked", product_id="one")
    await creator.send(type="bag.opened")
    # Past the burst of ten, a connection's looks are refused (and say so) for a moment.
    for _ in range(12):
        await viewers[2].send(type="bag.opened")
    for n, ws in enumerate([*viewers, creator]):
        await settled(ws, n)
    assert refusals(viewers[1], "product.clicked") == ["product_not_in_bag"]
    assert [m["code"] for m in viewers[1].messages if m.get("type") == "error"] == [
        "product_not_in_bag",
        "invalid_field",
    ]
    assert refusals(creator, "bag.opened") == ["viewer_session_required"]
    limited = refusals(viewers[2], "bag.opened")
    assert limited and set(limited) == {"rate_limited"}
    impressions += 2 * (12 - len(limited))

    # Carts: two guests put the deal in their carts, two viewers hold it from the room (a
    # retried buy is the same hold, not another cart).
    deal = await http_flash_deal(http, seller, room, sku, quantity=10, limit=2)
    deal_id = deal["deal_id"]
    await until_flash_deal_live(http, room, deal_id)
    for _ in range(2):
        _, guest = viewer_headers(sessions)
        put = await http.put(f"/api/cart/deals/{deal_id}", headers=guest, json={"qty": 1})
        assert put.status_code == 200, put.text
    holds = []
    for n, qty in ((0, 2), (1, 1)):
        await viewers[n].send(type="buy", deal_id=deal_id, qty=qty, request_id=f"b{n}")
        holds.append((await viewers[n].answer(f"b{n}"))["hold"])
    await viewers[0].send(type="buy", deal_id=deal_id, qty=2, request_id="b0")
    assert (await viewers[0].next("hold.granted", replayed=True))["hold"]["id"] == holds[0]["id"]
    carts = 2 + 2

    orders = []
    for n, hold in enumerate(holds):
        paid = await checkout(http, hold["id"], buyers[n], key=f"analytics-{n}")
        assert paid.status_code == 201, paid.text
        found = await poll(lambda n=n: orders_seen_by(http, buyers[n]), lambda o: len(o) == 1)
        orders.append(found[0])
    gmv = 3 * DEAL_PRICE
    want = {
        "peak_viewers": VIEWERS,
        "unique_viewers": VIEWERS,
        "followers": 0,
        "likes": VIEWERS * LIKES_EACH,
        "chat": VIEWERS,
        "impressions": impressions,
        "clicks": clicks,
        "carts": carts,
        "orders": 2,
        "units": 3,
        "gmv": gmv,
        "net_gmv": gmv,
    }
    live = await until_figures(http, room, seller, want, "redis")
    check_minutes_add_up(live)
    assert live["totals"]["click_through"] == round(clicks / impressions, 4)
    assert live["totals"]["conversion"] == round(2 / VIEWERS, 4)

    refund = await http.post(
        f"/api/orders/{orders[0]['id']}/refund",
        headers={**seller.headers, "Idempotency-Key": "analytics-refund"},
        json={"amount": 1000, "reason": "scratched"},
    )
    assert refund.status_code == 200, refund.text
    ended = await http.post(f"/api/rooms/{room}/end", headers=seller.headers)
    assert ended.status_code == 200, ended.text
    want["net_gmv"] = gmv - 1000
    after = await until_figures(http, room, seller, want, "sql")
    check_minutes_add_up(after)

    # Writing the minutes again (a node that crashed before forgetting the room) changes
    # nothing.
    async with db.session() as session:
        again = await analytics_sql.archive(session, RoomAnalytics(redis, LiveKeys(PREFIX)), room)
        stored = await analytics_sql.stored_minutes(await session.connection(), room)
    assert again == len(stored) > 0
    assert await analytics_of(http, room, seller) == after

    days = await http.get(f"/api/shops/{seller.shop.id}/analytics/daily", headers=seller.headers)
    assert days.status_code == 200, days.text
    found = days.json()["days"]
    assert len(found) == 30
    today = found[-1]
    assert today["day_ms"] == now_ms() - now_ms() % 86_400_000
    expected_day = {**want, "viewers": VIEWERS}
    del expected_day["peak_viewers"]
    assert {k: today[k] for k in expected_day} == expected_day
    as_csv = await http.get(
        f"/api/shops/{seller.shop.id}/analytics/daily.csv?days=7", headers=seller.headers
    )
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(rows) == 7
    assert int(rows[-1]["clicks"]) == clicks and int(rows[-1]["net_gmv"]) == gmv - 1000
    for ws in [*viewers, creator]:
        await ws.ws.close()


@pytest.mark.parametrize("days", ["0", "91", "x", "-1", "1.5"])
async def test_a_bad_days_is_refused(
    http: httpx.AsyncClient, seller: SellerAccount, days: str
) -> None:
    for path in ("daily", "daily.csv"):
        r = await http.get(
            f"/api/shops/{seller.shop.id}/analytics/{path}",
            params={"days": days},
            headers=seller.headers,
        )
        assert_error(r, 422, "invalid_query")


async def test_another_sellers_room_and_shop_are_not_found(
    http: httpx.AsyncClient, seller: SellerAccount, db: Database
) -> None:
    room, _, _ = await http_room(http, seller)
    other = await make_seller(db)
    r = await http.get(f"/api/rooms/{room}/analytics", headers=other.headers)
    assert_error(r, 404, "room_not_found")
    r = await http.get(f"/api/shops/{seller.shop.id}/analytics/daily", headers=other.headers)
    assert_error(r, 404, "shop_not_found")


async def test_two_nodes_counts_add_up_in_one_rooms_minutes(
    server: Server,
    storm_server: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    room, _product, _sku = await http_room(http, seller)
    viewers = []
    for node in (server, storm_server, server, storm_server):
        _, headers = viewer_headers(sessions)
        ws = await WsViewer.open(node.base_url, room)
        await ws.hello(headers["Authorization"].split()[1])
        viewers.append(ws)
    await poll(
        lambda: http.get(f"/api/rooms/{room}/figures", headers=seller.headers),
        lambda r: r.json()["figures"]["viewers"] == len(viewers),
    )
    for n, ws in enumerate(viewers):
        await ws.send(type="like", count=3)
        await ws.send(type="bag.opened")  # one product in the bag
        await ws.send(type="chat", text=f"from {n}")
    for ws in viewers:
        await settled(ws, 0)
    want = {
        "peak_viewers": 4,
        "unique_viewers": 4,
        "followers": 0,
        "likes": 12,
        "chat": 4,
        "impressions": 4,
        "clicks": 0,
        "carts": 0,
        "orders": 0,
        "units": 0,
        "gmv": 0,
        "net_gmv": 0,
    }
    check_minutes_add_up(await until_figures(http, room, seller, want, "redis"))
    for ws in viewers:
        await ws.ws.close()
