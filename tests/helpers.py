"""Builders shared by the tests: a product with a SKU, and a live deal, made over HTTP or SQL."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from catalog import service
from catalog.clock import now_ms
from catalog.db import Database
from catalog.errors import DomainError
from catalog.models import Deal, Sku
from catalog.rules import DealTerms
from checkout import deals
from checkout.faults import CrashPoints
from checkout.holds import Hold, HoldStore
from tests.conftest import SellerAccount


async def make_seller(db: Database, name: str = "Other Seller") -> SellerAccount:
    """A seller with one shop, besides the ``seller`` fixture's: for ownership tests."""
    async with db.session() as session:
        me, shop, token = await service.create_seller(
            session, name, f"seller-{secrets.token_hex(6)}@example.com"
        )
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
) -> tuple[int, int, int]:
    """A room with one product (one SKU) in its bag, live by default: (room, product, sku)."""
    h = seller.headers
    product = (
        await http.post(
            f"/api/shops/{seller.shop.id}/products",
            headers=h,
            json={"title": "Live jacket", "image_urls": ["https://example.com/j.jpg"]},
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
        },
    )
    assert made.status_code == 201, made.text
    deal: dict[str, Any] = made.json()["deal"]
    return deal


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
    """Crash points that raise ``Crashed`` in process instead of SIGKILL."""

    def reach(self, point: str) -> None:
        if point == self.armed:
            raise Crashed(point)
