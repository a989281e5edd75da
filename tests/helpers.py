"""Builders shared by the tests: a product with a SKU, and a live deal, made over HTTP or SQL;
the HTTP API's calls as the tests make them (listings, holds, checkout, orders); waiting for a
condition."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from redis.asyncio import Redis

from catalog import service
from catalog.models import Deal, Sku
from catalog.rules import DealTerms
from checkout import deals
from checkout.faults import MONEY_POINTS, POINTS, SHELF_POINTS, CrashPoints
from checkout.holds import Hold, HoldStore
from checkout.keys import Keyspace
from checkout.payments import Charge, SandboxProvider
from checkout.shelf import ShelfStore
from checkout.shelving import Shelving
from kernel.clock import now_ms
from kernel.db import Database
from kernel.errors import DomainError
from tests.conftest import SellerAccount, viewer_headers
from web.auth import GuestSessions


async def make_seller(
    db: Database, name: str = "Other Seller", payout_method: str = ""
) -> SellerAccount:
    """A seller with one shop, besides the ``seller`` fixture's: for ownership tests, or, with
    a ``payout_method``, a shop that can withdraw."""
    async with db.session() as session:
        me, shop, token = await service.create_seller(
            session, name, f"seller-{secrets.token_hex(6)}@example.com"
        )
        if payout_method:
            shop = await service.set_payout_method(session, me, shop.id or 0, payout_method)
    return SellerAccount(me, shop, token)


async def make_sku(
    db: Database, seller: SellerAccount, *, stock: int = 1000, list_price: int = 5000
) -> Sku:
    async with db.session() as session:
        assert seller.shop.id is not None
        product = await service.create_product(
            session, seller.seller, seller.shop.id, {"title": "Test product"}
        )
        return await service.create_sku(
            session,
            seller.seller,
            product.id or 0,
            {"variant": "One size", "list_price": list_price, "currency": "USD", "stock": stock},
        )


async def make_live_deal(
    db: Database,
    holds: HoldStore,
    seller: SellerAccount,
    *,
    quantity: int = 100,
    limit: int = 5,
    stock: int | None = None,
    hold_ttl_ms: int = 60_000,
    pay_ttl_ms: int = 60_000,
    starts_in_ms: int = -1000,
    duration_ms: int = 3_600_000,
) -> Deal:
    sku = await make_sku(db, seller, stock=quantity if stock is None else stock)
    start = now_ms() + starts_in_ms
    async with db.session() as session:
        deal = await service.create_deal(
            session,
            seller.seller,
            sku.id or 0,
            DealTerms(
                deal_price=2500,
                quantity=quantity,
                per_buyer_limit=min(limit, quantity),
                starts_ms=start,
                ends_ms=start + duration_ms,
            ),
        )
        deal = await deals.start(
            session, holds, deal, hold_ttl_ms=hold_ttl_ms, pay_ttl_ms=pay_ttl_ms
        )
    return deal


async def http_live_deal(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    *,
    quantity: int,
    limit: int = 1,
    stock: int | None = None,
) -> dict[str, Any]:
    h = seller.headers
    product = (
        await http.post(
            f"/api/shops/{seller.shop.id}/products", headers=h, json={"title": "Race jacket"}
        )
    ).json()["product"]
    sku = (
        await http.post(
            f"/api/products/{product['id']}/skus",
            headers=h,
            json={
                "variant": "M",
                "list_price": 9900,
                "currency": "USD",
                "stock": quantity if stock is None else stock,
            },
        )
    ).json()["sku"]
    deal = (
        await http.post(
            "/api/deals",
            headers=h,
            json={
                "sku_id": sku["id"],
                "deal_price": 4900,
                "quantity": quantity,
                "per_buyer_limit": limit,
                "duration_s": 3600,
            },
        )
    ).json()["deal"]
    started = await http.post(f"/api/deals/{deal['id']}/start", headers=h)
    assert started.status_code == 200, started.text
    result: dict[str, Any] = started.json()["deal"]
    return result


async def outcome(call: Awaitable[Hold]) -> Hold | str:
    """The hold a reservation gave, or the code of the error it raised."""
    try:
        return await call
    except DomainError as err:
        return err.code


async def http_room(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    *,
    stock: int = 100,
    list_price: int = 9900,
    live: bool = True,
    image: str = "https://example.com/j.jpg",
) -> tuple[int, int, int]:
    """A room with one product (one SKU) in its bag, live by default: (room, product, sku).
    A browser test passes an image this server has (a page must load all it asks for)."""
    h = seller.headers
    product = (
        await http.post(
            f"/api/shops/{seller.shop.id}/products",
            headers=h,
            json={"title": "Live jacket", "image_urls": [image]},
        )
    ).json()["product"]
    sku = (
        await http.post(
            f"/api/products/{product['id']}/skus",
            headers=h,
            json={"variant": "M", "list_price": list_price, "currency": "USD", "stock": stock},
        )
    ).json()["sku"]
    made = await http.post(
        "/api/rooms", headers=h, json={"shop_id": seller.shop.id, "title": "Test live"}
    )
    assert made.status_code == 201, made.text
    room = made.json()["room"]["id"]
    added = await http.post(f"/api/rooms/{room}/bag", headers=h, json={"product_id": product["id"]})
    assert added.status_code == 200, added.text
    if live:
        assert (await http.post(f"/api/rooms/{room}/live", headers=h)).status_code == 200
    return room, product["id"], sku["id"]


async def http_flash_deal(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    room: int,
    sku: int,
    *,
    quantity: int = 10,
    limit: int = 2,
    countdown_s: int = 10,
    duration_s: int = 60,
    accounts_only: bool = False,
) -> dict[str, Any]:
    made = await http.post(
        f"/api/rooms/{room}/deals",
        headers=seller.headers,
        json={
            "sku_id": sku,
            "deal_price": 4900,
            "quantity": quantity,
            "per_buyer_limit": limit,
            "countdown_s": countdown_s,
            "duration_s": duration_s,
            "accounts_only": accounts_only,
        },
    )
    assert made.status_code == 201, made.text
    deal: dict[str, Any] = made.json()["deal"]
    return deal


async def until_flash_deal_live(
    http: httpx.AsyncClient, room: int, deal_id: int, within: float = 30
) -> None:
    """Wait out a flash deal's countdown: until the room says the deal is live (its clock is
    Redis's, as the reservations' is, so it takes them from then on)."""

    async def live() -> bool:
        deals = (await http.get(f"/api/rooms/{room}")).json()["room"]["deals"]
        return any(d["deal_id"] == deal_id and d["status"] == "live" for d in deals)

    await until(live, f"flash deal {deal_id} live in room {room}", within)


# ---------------------------------------------------------------------------------------------
# The HTTP API as the tests call it (tests/api/ and others): listings, holds, checkout, orders


CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_NO_FUNDS = "4000000000009995"
LIST_PRICE = 9900
DEAL_PRICE = 4900

Headers = dict[str, str]
T = TypeVar("T")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the error envelope with this status and code; returns the error."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


@dataclass(frozen=True)
class Listing:
    """A product with one SKU and a deal on it, all made over HTTP."""

    shop_id: int
    product_id: int
    sku_id: int
    deal_id: int


async def new_product(http: httpx.AsyncClient, seller: SellerAccount) -> dict[str, Any]:
    r = await http.post(
        f"/api/shops/{seller.shop.id}/products", headers=seller.headers, json={"title": "Jacket"}
    )
    assert r.status_code == 201, r.text
    product: dict[str, Any] = r.json()["product"]
    return product


async def new_sku(
    http: httpx.AsyncClient, seller: SellerAccount, product_id: int, *, stock: int = 10
) -> dict[str, Any]:
    r = await http.post(
        f"/api/products/{product_id}/skus",
        headers=seller.headers,
        json={"variant": "M", "list_price": LIST_PRICE, "currency": "USD", "stock": stock},
    )
    assert r.status_code == 201, r.text
    sku: dict[str, Any] = r.json()["sku"]
    return sku


def deal_body(sku_id: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "sku_id": sku_id,
        "deal_price": DEAL_PRICE,
        "quantity": 5,
        "per_buyer_limit": 5,
        "duration_s": 3600,
    }
    return {**body, **overrides}


async def make_listing(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    *,
    quantity: int = 10,
    start: bool = True,
    starts_ms: int | None = None,
) -> Listing:
    product = await new_product(http, seller)
    sku = await new_sku(http, seller, product["id"], stock=quantity)
    body = deal_body(sku["id"], quantity=quantity, starts_ms=starts_ms)
    if starts_ms is None:
        del body["starts_ms"]
    r = await http.post("/api/deals", headers=seller.headers, json=body)
    assert r.status_code == 201, r.text
    deal_id = r.json()["deal"]["id"]
    if start:
        started = await http.post(f"/api/deals/{deal_id}/start", headers=seller.headers)
        assert started.status_code == 200, started.text
    return Listing(seller.shop.id or 0, product["id"], sku["id"], deal_id)


async def get_deal(http: httpx.AsyncClient, deal_id: int) -> dict[str, Any]:
    r = await http.get(f"/api/deals/{deal_id}")
    assert r.status_code == 200, r.text
    deal: dict[str, Any] = r.json()["deal"]
    deal.pop("server_ms", None)  # the only field that changes by itself
    return deal


async def deal_stock(http: httpx.AsyncClient, deal_id: int) -> dict[str, int]:
    stock: dict[str, int] = (await get_deal(http, deal_id))["stock"]
    return stock


async def get_product(http: httpx.AsyncClient, product_id: int) -> dict[str, Any]:
    r = await http.get(f"/api/products/{product_id}")
    assert r.status_code == 200, r.text
    product: dict[str, Any] = r.json()["product"]
    return product


async def sku_stock(http: httpx.AsyncClient, item: Listing) -> int:
    (sku,) = [
        s for s in (await get_product(http, item.product_id))["skus"] if s["id"] == item.sku_id
    ]
    stock: int = sku["stock"]
    return stock


async def shop_products(http: httpx.AsyncClient, shop_id: int) -> list[dict[str, Any]]:
    r = await http.get("/api/products", params={"shop_id": shop_id})
    assert r.status_code == 200, r.text
    products: list[dict[str, Any]] = r.json()["products"]
    return products


async def deals_of_sku(http: httpx.AsyncClient, sku_id: int) -> list[dict[str, Any]]:
    r = await http.get("/api/deals")
    assert r.status_code == 200, r.text
    return [d for d in r.json()["deals"] if d["sku_id"] == sku_id]


async def catalog_state(http: httpx.AsyncClient, item: Listing) -> dict[str, Any]:
    """Everything a refused request could have changed about a listing, read over HTTP."""
    return {
        "product": await get_product(http, item.product_id),
        "deal": await get_deal(http, item.deal_id),
        "products": await shop_products(http, item.shop_id),
    }


async def reserve(
    http: httpx.AsyncClient, deal_id: int, buyer: Headers, qty: int = 1
) -> dict[str, Any]:
    r = await http.post(f"/api/deals/{deal_id}/reserve", headers=buyer, json={"qty": qty})
    assert r.status_code == 201, r.text
    hold: dict[str, Any] = r.json()["hold"]
    return hold


async def checkout(
    http: httpx.AsyncClient, hold_id: str, buyer: Headers, *, card: str = CARD_OK, key: str
) -> httpx.Response:
    return await http.post(
        f"/api/holds/{hold_id}/checkout",
        headers={**buyer, "Idempotency-Key": key},
        json={"card": card},
    )


async def hold_state(http: httpx.AsyncClient, hold_id: str, buyer: Headers) -> str:
    r = await http.get(f"/api/holds/{hold_id}", headers=buyer)
    assert r.status_code == 200, r.text
    state: str = r.json()["hold"]["state"]
    return state


async def charges_for(ledger: SandboxProvider, hold_id: str) -> list[Charge]:
    return [c for c in await ledger.charges() if c.key.startswith(f"{hold_id}:")]


async def resync_shelves(redis: Redis, keys: Keyspace, db: Database) -> int:
    """The order sweep's resync pass (SQL's terms, shipping rules and promotions pushed to
    every shelf that says otherwise), as a node runs it; returns how many it pushed."""
    shelving = Shelving(ShelfStore(redis, keys, hold_ttl_ms=60_000, pay_ttl_ms=60_000))
    async with db.session() as session:
        return await shelving.resync(session)


async def poll(
    fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], within_s: float = 10
) -> T:
    """Fetch until ``done`` says so or the time is up; returns the last value either way."""
    deadline = time.monotonic() + within_s
    value = await fetch()
    while not done(value) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        value = await fetch()
    return value


async def orders_seen_by(http: httpx.AsyncClient, headers: Headers) -> list[dict[str, Any]]:
    r = await http.get("/api/orders", headers=headers)
    assert r.status_code == 200, r.text
    orders: list[dict[str, Any]] = r.json()["orders"]
    return orders


@dataclass(frozen=True)
class PaidOrder:
    item: Listing
    buyer: Headers
    payment_ref: str
    order: dict[str, Any]


async def pay_and_wait_for_order(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> PaidOrder:
    item = await make_listing(http, seller)
    buyer_id, buyer = viewer_headers(sessions)
    hold = await reserve(http, item.deal_id, buyer, qty=2)
    r = await checkout(http, hold["id"], buyer, key="pay")
    assert r.status_code == 201, r.text
    orders = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    assert len(orders) == 1, "the pipeline did not persist the order within 10 s"
    (order,) = orders
    assert (order["hold_id"], order["buyer_id"]) == (hold["id"], buyer_id)
    return PaidOrder(item, buyer, r.json()["order"]["payment_ref"], order)


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 30) -> None:
    """Poll ``check`` until it holds (wait for a condition, never for a fixed time)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


class Crashed(BaseException):
    """Stands for the process dying at a crash point: nothing after it runs (BaseException, so
    no handler in the checkout catches it). tests/test_crash_points.py kills real processes."""


class CrashAt(CrashPoints):
    """Crash points that raise ``Crashed`` in process at ``point`` ("": nowhere) instead of
    SIGKILL (which tests/crashing.py's do)."""

    def __init__(self, point: str) -> None:
        assert point in ("", *POINTS, *MONEY_POINTS, *SHELF_POINTS), point
        self.point = point

    def reach(self, point: str) -> None:
        if point == self.point:
            raise Crashed(point)
