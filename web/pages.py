"""The viewer-facing pages: the home page (who is live), a live room, the buyer's orders and a
shop's storefront. They are shells: the room's state arrives over its websocket and the buyer's
orders over the JSON API, so a page never shows something the API would not."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from catalog import service as catalog
from catalog.errors import NotFound
from catalog.models import Product, Sku
from live import service as rooms
from web import i18n
from web.services import services
from web.templating import page_language, render

HANDLE = re.compile(r"^[a-z0-9-]+$")


async def home(request: Request) -> Response:
    async with services(request).db.session() as session:
        live = await rooms.list_rooms(session, "live")
    return render(request, "home.html", {"lang": page_language(request), "rooms": live})


async def live_room(request: Request) -> Response:
    room_id: int = request.path_params["room_id"]
    snap = await services(request).rooms.read(room_id)
    lang = page_language(request)
    if snap is None:
        return render(request, "not_found.html", {"lang": lang}, status=404)
    config = {"room_id": room_id, "lang": lang, "strings": strings(lang)}
    return render(
        request, "live.html", {"lang": lang, "title": snap.room["title"], "config": config}
    )


async def my_orders(request: Request) -> Response:
    lang = page_language(request)
    config = {"lang": lang, "strings": strings(lang)}
    return render(request, "orders.html", {"lang": lang, "config": config})


async def storefront(request: Request) -> Response:
    lang = page_language(request)
    svc = services(request)
    async with svc.db.session() as session:
        try:
            shop = await catalog.shop_by_handle(session, _handle(request.path_params["handle"]))
        except NotFound:
            return render(request, "not_found.html", {"lang": lang}, status=404)
        products = await catalog.list_products(session, shop.id)
        cards = [_card(p, await catalog.skus_of(session, p.id or 0)) for p in products]
        live = await rooms.list_rooms(session, "live", shop_id=shop.id)
    context = {
        "lang": lang,
        "shop": shop,
        "products": [c for c in cards if c is not None],
        "live_room": live[0] if live else None,
    }
    return render(request, "shop.html", context)


def _handle(raw: str) -> str:
    """Handles are made of a-z, 0-9 and dashes: anything else (a NUL, which PostgreSQL would
    refuse) names no shop, without asking the database."""
    if not (0 < len(raw) <= 60) or not HANDLE.match(raw):
        raise NotFound("No such shop.", code="shop_not_found")
    return raw


def _card(product: Product, skus: Sequence[Sku]) -> dict[str, Any] | None:
    """A showcase tile: the product and its cheapest price (none while it has no SKU)."""
    if not skus:
        return None  # nothing to sell yet
    cheapest = min(skus, key=lambda s: s.list_price)
    return {
        "title": product.title,
        "description": product.description,
        "image": product.image_urls[0] if product.image_urls else None,
        "price": cheapest.list_price,
        "currency": cheapest.currency,
        "varies": len({s.list_price for s in skus}) > 1,
        "in_stock": any(s.stock - s.allocated > 0 for s in skus),
    }


def strings(lang: str) -> dict[str, str]:
    """The page script's strings: the language's, with English for any it lacks."""
    return {**i18n.catalog(i18n.DEFAULT), **i18n.catalog(lang)}
