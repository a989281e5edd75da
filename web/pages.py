"""The viewer-facing pages: the home page (who is live, who starts soon), a live room, the
buyer's orders, a shop's storefront and its product pages, and the page a browser gets for an
address that leads nowhere. Rooms and orders are shells: their state arrives over the room's
websocket and the JSON API, so a page never shows something the API would not."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from catalog import service as catalog
from catalog.error_codes import CatalogErrorCode
from catalog.models import Product, Shop, Sku
from checkout import pricing, promotions
from checkout.cart import for_sale
from kernel.clock import now_ms
from kernel.errors import NotFound
from live import follows
from live import service as live_service
from live.models import LiveRoom
from live.room_states import RoomStatus
from live.store import RoomStore
from people.passkeys import passkeys_possible
from web import api_passkeys, i18n, l10n
from web.http import http_error_handler
from web.services import services
from web.templating import page_language, render

HANDLE = re.compile(r"^[a-z0-9-]+$")
PLACEHOLDER_IMAGE = "/static/img/placeholder.svg"
# How many of a shop's live rooms the product page looks through for one showing the product.
ROOMS_TO_SEARCH = 10


async def home(request: Request) -> Response:
    async with services(request).db.session() as session:
        live = await live_service.list_rooms(session, RoomStatus.LIVE)
        soon = await live_service.list_rooms(session, RoomStatus.SCHEDULED)
    lang = page_language(request)
    config = {"lang": lang, "strings": strings(lang)}  # the bell's and reminders' script
    context = {"lang": lang, "rooms": live, "soon": soon, "config": config}
    return render(request, "home.html", context)


async def live_room(request: Request) -> Response:
    room_id: int = request.path_params["room_id"]
    snap = await services(request).rooms.read(room_id)
    lang = page_language(request)
    if snap is None:
        return not_found_page(request)
    config = {"room_id": room_id, "lang": lang, "strings": strings(lang)}
    context = {
        "lang": lang,
        "title": snap.room["title"],
        "config": config,
        "follow": await _follow(request, snap.room["seller_id"]),
        "countries": l10n.countries(lang),
        "country": l10n.default_country(lang, request.headers.get("accept-language", "")),
    }
    return render(request, "live.html", context)


async def my_orders(request: Request) -> Response:
    lang = page_language(request)
    # The return window, so the page offers a return only while one can be asked for.
    window_ms = round(services(request).settings.return_window_days * 86_400_000)
    config = {"lang": lang, "strings": strings(lang), "return_window_ms": window_ms}
    return render(request, "orders.html", {"lang": lang, "config": config})


async def account_page(request: Request) -> Response:
    """Sign up, sign in (by password or passkey), sign out, the account's passkeys and saved
    addresses, and a password reset's link (its code after ``#``)."""
    lang = page_language(request)
    site = api_passkeys.site_url(services(request), request)
    possible = passkeys_possible(site)
    config = {"lang": lang, "strings": strings(lang), "passkeys": possible}
    context = {
        "lang": lang,
        "config": config,
        "countries": l10n.countries(lang),
        "country": l10n.default_country(lang, request.headers.get("accept-language", "")),
        "passkeys_possible": possible,
        "passkeys_url": by_name(request),
    }
    return render(request, "account.html", context)


async def _follow(request: Request, seller_id: int) -> dict[str, int]:
    """What a page's Follow button starts from: whose it is and how many follow them."""
    async with services(request).db.session() as session:
        count = await follows.follower_count(session, seller_id)
    return {"seller_id": seller_id, "followers": count}


def by_name(request: Request) -> str:
    """This site at ``localhost``, for a page opened at an IP address (where WebAuthn cannot
    work); right for the machine it runs on, which is where a site is opened by address."""
    port = request.url.port
    return f"{request.url.scheme}://localhost" + (f":{port}" if port else "")


async def storefront(request: Request) -> Response:
    async with services(request).db.session() as session:
        try:
            shop = await catalog.shop_by_handle(session, _handle(request.path_params["handle"]))
        except NotFound:
            return not_found_page(request)
        assert shop.id is not None
        products = await catalog.list_products(session, shop.id)
        skus = {p.id or 0: await catalog.skus_of(session, p.id or 0) for p in products}
        now = now_ms()
        offers = promotions.shown(await promotions.encoded_for(session, shop.id, now), now)
        live = await live_service.list_rooms(session, RoomStatus.LIVE, shop_id=shop.id)
        soon = (
            []
            if live
            else await live_service.list_rooms(session, RoomStatus.SCHEDULED, shop_id=shop.id)
        )
    left = await for_sale(
        services(request).holds.shelf, [s for group in skus.values() for s in group]
    )
    cards = [_card(p, skus[p.id or 0], left, offers.get(p.id or 0, NONE)) for p in products]
    lang = page_language(request)
    context = {
        "lang": lang,
        "config": {"lang": lang, "strings": strings(lang)},  # the Follow button's script
        "follow": await _follow(request, shop.seller_id),
        "shop": shop,
        "products": [c for c in cards if c is not None],
        "live_room": live[0] if live else None,
        # The next room to start: the lowest id of those scheduled (the list is newest first).
        "soon_room": soon[-1] if soon else None,
    }
    return render(request, "shop.html", context)


async def product_page(request: Request) -> Response:
    svc = services(request)
    async with svc.db.session() as session:
        try:
            shop = await catalog.shop_by_handle(session, _handle(request.path_params["handle"]))
            product = await _product_of(session, shop, request.path_params["product_id"])
        except NotFound:
            return not_found_page(request)
        skus = await catalog.skus_of(session, product.id or 0)
        live = await live_service.list_rooms(session, RoomStatus.LIVE, shop_id=shop.id)
        now = now_ms()
        encoded = await promotions.encoded_for(session, shop.id or 0, now)
    offer = promotions.shown(encoded, now).get(product.id or 0, NONE)
    left = await for_sale(svc.holds.shelf, skus)
    lang = page_language(request)
    # The product sheet's card: the same a room's bag holds (live.service.card_of).
    config = {"lang": lang, "strings": strings(lang), "card": live_service.card_of(product, skus)}
    context = {
        "lang": lang,
        "config": config,
        "countries": l10n.countries(lang),
        "country": l10n.default_country(lang, request.headers.get("accept-language", "")),
        "shop": shop,
        "product": product,
        "images": product.image_urls or [PLACEHOLDER_IMAGE],
        "skus": [_variant(s, left, offer) for s in skus],
        "promo": _promo(offer),
        "room": await _room_showing(svc.rooms, live, product.id or 0),
    }
    return render(request, "product.html", context)


async def _product_of(session: AsyncSession, shop: Shop, product_id: int) -> Product:
    product = await catalog.get_product(session, product_id)
    if product.shop_id != shop.id or product.archived:
        # Another shop's product under this shop's address is as missing as no product, and
        # an archived one is off the storefront.
        raise NotFound(
            "No such product.", code=CatalogErrorCode.PRODUCT_NOT_FOUND, product_id=product_id
        )
    return product


async def _room_showing(
    store: RoomStore, live: Sequence[LiveRoom], product_id: int
) -> LiveRoom | None:
    """The newest live room whose bag holds the product (the bag lives in Redis, not SQL)."""
    for room in live[:ROOMS_TO_SEARCH]:
        snap = await store.read(room.id or 0)
        if snap and any(item["product_id"] == product_id for item in snap.room["bag"]):
            return room
    return None


def _handle(raw: str) -> str:
    """Handles are made of a-z, 0-9 and dashes: anything else (a NUL, which PostgreSQL would
    refuse) names no shop, without asking the database."""
    if not (0 < len(raw) <= 60) or not HANDLE.match(raw):
        raise NotFound("No such shop.", code=CatalogErrorCode.SHOP_NOT_FOUND)
    return raw


NONE = promotions.Shown()  # a product with no promotion running


def _card(
    product: Product, skus: Sequence[Sku], left: dict[int, int], offer: promotions.Shown
) -> dict[str, Any] | None:
    """A showcase tile: the product and its cheapest price, after a running discount (none
    while it has no SKU)."""
    if not skus:
        return None  # nothing to sell yet
    cheapest = min(skus, key=lambda s: s.list_price)
    return {
        "id": product.id,
        "title": product.title,
        "description": product.description,
        "image": product.image_urls[0] if product.image_urls else PLACEHOLDER_IMAGE,
        "price": pricing.discounted(cheapest.list_price, offer.bps),
        "list_price": cheapest.list_price,
        "currency": cheapest.currency,
        "varies": len({s.list_price for s in skus}) > 1,
        "in_stock": any(left.get(s.id or 0, 0) > 0 for s in skus),
        "promo": _promo(offer),
    }


def _variant(sku: Sku, left: dict[int, int], offer: promotions.Shown) -> dict[str, Any]:
    return {
        "id": sku.id,
        "variant": sku.variant,
        "options": sku.options,
        "image": sku.image_url,
        "price": pricing.discounted(sku.list_price, offer.bps),
        "list_price": sku.list_price,
        "currency": sku.currency,
        "left": left.get(sku.id or 0, 0),
        "in_stock": left.get(sku.id or 0, 0) > 0,
    }


def _promo(offer: promotions.Shown) -> dict[str, Any]:
    """What a page says of a product's running promotions: "15" (per cent off), and each bundle."""
    return {
        "off": f"{offer.bps / 100:g}" if offer.bps else "",
        "bundles": [
            {"size": size, "price": price, "currency": currency}
            for size, price, currency in offer.bundles
        ],
    }


def strings(lang: str) -> dict[str, str]:
    """The page script's strings: the language's, with English for any it lacks."""
    return {**i18n.catalog(i18n.DEFAULT), **i18n.catalog(lang)}


def not_found_page(request: Request) -> Response:
    """A translated "nothing here" with a way home, status 404."""
    return render(request, "not_found.html", {"lang": page_language(request)}, status=404)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route, an id too large for SQL): a browser asking for
    a page gets the translated 404 page; the API and every script keep the JSON error."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and _wants_page(request):
        return not_found_page(request)
    return await http_error_handler(request, exc)


def _wants_page(request: Request) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and not request.url.path.startswith("/api/")
        and "text/html" in request.headers.get("accept", "")
    )
