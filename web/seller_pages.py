"""The seller's pages: sign-in, the seller center (overview, products, orders by status with
their actions, live sessions and their figures) and the creator studio.

Forms post back here with the CSRF token in a hidden field; a refused action shows the seller
center again with the reason and a 4xx status, having changed nothing. The studio's script
calls the JSON API with the same cookie and the token in the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

import orjson
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from catalog import service as catalog
from catalog.errors import DomainError, Invalid, Unauthorized
from catalog.models import Seller, Shop
from checkout import order_store
from checkout.orders import OrderStatus, shipment_fields
from live import figures, rules
from live import service as rooms
from web.auth import signed_in_seller
from web.cookies import COOKIE
from web.http import BadRequest, parse, read_limited, status_of
from web.schemas import MAX_ID, OrderActionIn, ProductIn, RoomIn, SkuIn
from web.services import services
from web.templating import minor_digits, render

Model = TypeVar("Model", bound=BaseModel)
LOGIN_CSRF_COOKIE = "lc_login_csrf"
# The seller center's order tabs, as TikTok Shop's Seller Center groups them.
ORDER_TABS: dict[str, tuple[str, ...]] = {
    "to_ship": ("paid", "awaiting_shipment"),
    "unpaid": ("unpaid",),
    "shipped": ("shipped", "delivered"),
    "completed": ("completed",),
    "cancelled": ("cancelled", "refunded"),
    "all": (),
}
TAB_LABELS = {
    "to_ship": "To ship",
    "unpaid": "Unpaid",
    "shipped": "Shipped",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "all": "All",
}
FORM_ACTIONS = frozenset({"ship", "cancel", "refund"})
RECENT_ROOMS = 20  # live sessions listed with their figures


def _secure(request: Request) -> bool:
    configured = services(request).settings.cookie_secure
    return request.url.scheme == "https" if configured is None else configured


def _local_path(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/seller"


async def _form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest("Send the form as a web form.", code="unsupported_media_type", status=415)
    body = await read_limited(request, "form")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise BadRequest("The form is not UTF-8.", code="malformed_form", status=400) from None
    return {name: values[-1] for name, values in fields.items()}


FormAction = Callable[[Request, Seller, dict[str, str]], Awaitable[Response]]


def form_action(action: FormAction) -> Callable[[Request], Awaitable[Response]]:
    """A seller-center form post: signed in (else to the sign-in page), its CSRF field checked,
    and a refusal shown as the seller center with the reason, having changed nothing."""

    async def endpoint(request: Request) -> Response:
        try:
            me = await signed_in_seller(request, check_csrf=False)
        except Unauthorized:
            return RedirectResponse("/seller/login", status_code=303)
        form = await _form(request)
        tab = form.get("tab", "to_ship")
        cookies = services(request).seller_sessions
        if not cookies.csrf_ok(request.cookies.get(COOKIE, ""), form.get("csrf", "")):
            error = "The form's security token did not match; reload the page and try again."
            return await _center(request, me, tab=tab, error=error, status=403)
        try:
            return await action(request, me, form)
        except DomainError as err:
            return await _center(request, me, tab=tab, error=err.message, status=status_of(err))

    return endpoint


def _to_login(request: Request) -> Response:
    return RedirectResponse(f"/seller/login?next={quote(request.url.path)}", status_code=303)


# --- sign-in ------------------------------------------------------------------------------


async def login_page(
    request: Request, *, error: str = "", status: int = 200, next_path: str | None = None
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(16)
    response = render(
        request,
        "seller_login.html",
        {
            "csrf": token,
            "next": _local_path(next_path or request.query_params.get("next")),
            "error": error,
        },
        status=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/seller",
    )
    return response


async def login(request: Request) -> Response:
    form = await _form(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "").encode()
    if not expected or not secrets.compare_digest(expected, form.get("csrf", "").encode()):
        return await login_page(
            request, error="The form expired; try again.", status=403, next_path=form.get("next")
        )
    svc = services(request)
    try:
        async with svc.db.session() as session:
            me = await catalog.seller_for_token(session, form.get("token", "").strip())
    except Unauthorized:
        return await login_page(
            request,
            error="That seller token is not valid. Check it and try again.",
            status=401,
            next_path=form.get("next"),
        )
    response = RedirectResponse(_local_path(form.get("next")), status_code=303)
    response.set_cookie(
        COOKIE,
        svc.seller_sessions.issue(me),
        max_age=svc.settings.seller_session_max_age_s,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/seller")
    return response


@form_action
async def logout(request: Request, me: Seller, form: dict[str, str]) -> Response:
    response = RedirectResponse("/seller/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


# --- the seller center --------------------------------------------------------------------


async def seller_center(request: Request) -> Response:
    try:
        me = await signed_in_seller(request)
    except Unauthorized:
        return _to_login(request)
    return await _center(request, me)


async def _center(
    request: Request, me: Seller, *, tab: str = "", error: str = "", status: int = 200
) -> Response:
    svc = services(request)
    tab = tab or request.query_params.get("tab", "to_ship")
    tab = tab if tab in ORDER_TABS else "to_ship"
    async with svc.db.session() as session:
        shops = list(await catalog.shops_of(session, me))
        shop_ids = [s.id for s in shops if s.id is not None]
        products = await _products(session, shop_ids)
        counts = await order_store.count_by_status(session, shop_ids)
        orders = await order_store.orders_of_shops_in(session, shop_ids, ORDER_TABS[tab])
        lines = await order_store.item_lines(session, [o.sku_id for o in orders])
        today = await order_store.sales_since(session, shop_ids, _midnight_utc_ms())
        room_rows = (await rooms.list_rooms(session, seller_id=me.id))[:RECENT_ROOMS]
        sessions = [
            (row, await figures.room_figures(session, svc.rooms, svc.holds, row))
            for row in room_rows
        ]
    context = {
        "seller": me,
        "shops": shops,
        "products": products,
        "overview": {
            "to_ship": sum(counts.get(s, 0) for s in ORDER_TABS["to_ship"]),
            "refunded": counts.get("refunded", 0),
            "out_of_stock": [
                (p["title"], sku) for p in products for sku in p["skus"] if sku["free"] <= 0
            ],
            "today_orders": today[0],
            "today_sales": today[1],
        },
        "tab": tab,
        "tabs": [(name, TAB_LABELS[name], _tab_count(counts, name)) for name in ORDER_TABS],
        "orders": [(o, lines.get(o.sku_id)) for o in orders],
        "sessions": sessions,
        "currency": _main_currency(products),
        "csrf": svc.seller_sessions.csrf_token(request.cookies.get(COOKIE, "")),
        "error": error,
    }
    return render(request, "seller.html", context, status=status)


def _main_currency(products: list[dict[str, Any]]) -> str:
    return next((sku["currency"] for p in products for sku in p["skus"]), "USD")


def _tab_count(counts: dict[str, int], tab: str) -> int:
    statuses = ORDER_TABS[tab] or tuple(s.value for s in OrderStatus)
    return sum(counts.get(s, 0) for s in statuses)


def _midnight_utc_ms() -> int:
    today = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(today.timestamp() * 1000)


async def _products(session: AsyncSession, shop_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The shops' products as cards, each SKU with its stock and what deals may still take."""
    found: list[dict[str, Any]] = []
    for shop_id in shop_ids:
        for product in await catalog.list_products(session, shop_id):
            skus = await catalog.skus_of(session, product.id or 0)
            card = {**rooms.card_of(product, skus), "shop_id": shop_id}
            for shown, sku in zip(card["skus"], skus, strict=True):
                shown.update(stock=sku.stock, free=sku.stock - sku.allocated)
            found.append(card)
    return found


@form_action
async def order_action(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """Ship (with carrier and tracking number), cancel or refund one order, from its row."""
    action: str = request.path_params["action"]
    if action not in FORM_ACTIONS:
        raise Invalid("Ship, cancel or refund.", code="unknown_action")
    tracking = _model(
        OrderActionIn,
        {"carrier": form.get("carrier", ""), "tracking_number": form.get("tracking_number", "")},
    )
    async with services(request).db.session() as session:
        shop_ids = [s.id for s in await catalog.shops_of(session, me) if s.id is not None]
        order = await order_store.order_for_shops(
            session, request.path_params["order_id"], shop_ids
        )
        actor = f"seller:{me.id}"
        if action == "ship":
            shipment_fields(OrderStatus.SHIPPED, tracking.carrier, tracking.tracking_number)
            if order.status == OrderStatus.PAID:
                # The seller center ships in one step; the record keeps both moves.
                order = await order_store.transition(session, order, "confirm", actor)
            await order_store.transition(
                session,
                order,
                "ship",
                actor,
                carrier=tracking.carrier,
                tracking_number=tracking.tracking_number,
            )
        else:
            await order_store.transition(session, order, action, actor)
    tab = form.get("tab", "to_ship")
    tab = tab if tab in ORDER_TABS else "to_ship"
    return RedirectResponse(f"/seller?tab={tab}#orders", status_code=303)


@form_action
async def create_product(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """A product with one SKU, from the seller center's form."""
    shop_id = _whole(form, "shop_id")
    currency = form.get("currency", "USD").strip()
    product = _model(
        ProductIn,
        {
            "title": form.get("title", ""),
            "description": form.get("description", ""),
            "image_urls": [form["image_url"].strip()] if form.get("image_url") else [],
        },
    )
    sku = _model(
        SkuIn,
        {
            "variant": form.get("variant", ""),
            "list_price": _money(form, "list_price", currency),
            "currency": currency,
            "stock": _whole(form, "stock"),
        },
    )
    async with services(request).db.session() as session:
        made = await catalog.create_product(session, me, shop_id, product.model_dump())
        await catalog.create_sku(session, me, made.id or 0, sku.model_dump())
    return RedirectResponse("/seller#products", status_code=303)


@form_action
async def create_room(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """A room with every product of the shop in its bag, opened straight in the studio."""
    svc = services(request)
    body = _model(RoomIn, {"shop_id": _whole(form, "shop_id"), "title": form.get("title", "")})
    async with svc.db.session() as session:
        room = await rooms.create_room(session, svc.rooms, me, body.shop_id, body.title)
        for product in (await catalog.list_products(session, body.shop_id))[: rules.MAX_BAG]:
            await rooms.add_product(session, svc.rooms, me, room["id"], product.id or 0)
    return RedirectResponse(f"/studio/{room['id']}", status_code=303)


def _whole(form: dict[str, str], name: str) -> int:
    raw = form.get(name, "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) > MAX_ID:
        raise Invalid(f"{name.replace('_', ' ')} must be a whole number.", code="invalid_request")
    return int(raw)


def _money(form: dict[str, str], name: str, currency: str) -> int:
    """A price as typed (49 or 49.90; 1000 in yen) in the currency's minor units."""
    digits = minor_digits(currency)
    raw = form.get(name, "").strip()
    whole, dot, fraction = raw.partition(".")
    if not (whole.isascii() and whole.isdigit() and len(whole) <= 10) or not (
        (not dot and not fraction)
        or (fraction.isascii() and fraction.isdigit() and 0 < len(fraction) <= digits)
    ):
        example = "1000" if digits == 0 else "49 or 49.90"
        raise Invalid(f"Prices are written like {example}.", code="invalid_price")
    scale: int = 10**digits
    return int(whole) * scale + int(fraction.ljust(digits, "0") or "0")


def _model(model: type[Model], data: dict[str, Any]) -> Model:
    """A form's fields through the same schema (and errors) as the JSON API."""
    return parse(model, orjson.dumps(data))


# --- the studio ---------------------------------------------------------------------------


async def studio(request: Request) -> Response:
    try:
        me = await signed_in_seller(request)
    except Unauthorized:
        return _to_login(request)
    svc = services(request)
    room_id: int = request.path_params["room_id"]
    async with svc.db.session() as session:
        try:
            row = await rooms.owned_room(session, me, room_id)
        except DomainError:
            return render(request, "not_found.html", {}, status=404)
        shop = await session.get(Shop, row.shop_id)
        products = await _products(session, [row.shop_id])
    config = {
        "room_id": room_id,
        "ticket": svc.seller_sessions.ticket(me, room_id),
        "csrf": svc.seller_sessions.csrf_token(request.cookies.get(COOKIE, "")),
        "products": products,
        "limits": {
            "countdown_s": [rules.MIN_COUNTDOWN_S, rules.MAX_COUNTDOWN_S],
            "duration_s": [rules.MIN_RUN_S, rules.MAX_RUN_S],
        },
    }
    context = {"room": row, "shop": shop, "config": config, "seller": me}
    return render(request, "studio.html", context)
