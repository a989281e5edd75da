"""The seller's pages: sign-in, the seller center (overview, live rooms, orders by status
with their actions, deals with their units, the products list (their pages and forms:
web/seller_products.py), and finance: web/finance_view.py, its forms in web/seller_finance.py)
and the creator studio.

Forms post back here with the CSRF token in a hidden field; a refused form is shown again with
what was typed, the reason next to the field to blame and a 4xx status, having changed nothing.
Refunds and cancellations are asked for twice: the row's button opens a confirmation page, and
only its post (``confirm=yes``) acts. The studio's script calls the JSON API with the same
cookie and the token in the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

import orjson
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from catalog import affiliates
from catalog import service as catalog
from catalog.deal_status import DealStatus
from catalog.error_codes import CatalogErrorCode
from catalog.models import Product, Seller, Shop
from checkout import bulk_ship, deadlines, finance_store, order_store, return_store
from checkout import deals as deal_runs
from checkout.error_codes import CheckoutErrorCode
from checkout.holds import HoldStore
from checkout.models import Order
from checkout.order_store import OrderSort
from checkout.orders import OrderStatus, next_status, shipment_fields
from checkout.refunds import RefundAsk, refund_key
from kernel.clock import now_ms
from kernel.db import Database
from kernel.errors import (
    CommonErrorCode,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    Unauthorized,
)
from live import figures, rules
from live import service as live_service
from people import accounts, staff
from people.error_codes import PeopleErrorCode
from people.roles import DUTIES, Duty, may
from web import i18n, l10n, shipments_csv
from web.affiliates_view import affiliates_view
from web.api_accounts import throttle_sign_in
from web.auth import Acting, member_account, member_tag, signed_in
from web.cookies import COOKIE
from web.error_codes import WebErrorCode
from web.finance_view import finance_view
from web.form_data import Upload, parse_multipart
from web.http import BadRequest, parse, read_limited, status_of
from web.pages import not_found_page, strings
from web.promotions_view import promotions_view
from web.return_views import returns_view
from web.schemas import MAX_ID, OrderActionIn, RoomIn
from web.services import Services, services
from web.staff_view import staff_view
from web.templating import minor_digits, money, page_language, render

Model = TypeVar("Model", bound=BaseModel)
LOGIN_CSRF_COOKIE = "lc_login_csrf"
# The seller center's order tabs, as TikTok Shop's Seller Center groups them.
ORDER_TABS: dict[str, tuple[str, ...]] = {
    "to_ship": ("paid", "awaiting_shipment"),
    "unpaid": ("unpaid",),
    "shipped": ("shipped", "delivered"),
    "completed": ("completed",),
    "cancelled": ("cancelled",),
    "refunded": ("refunded",),
    "all": (),
}
# Each tab's and view's label: its key in web/i18n/*.json.
TAB_LABELS = {name: f"sc_tab_{name}" for name in ORDER_TABS}
FORM_ACTIONS = frozenset({"ship", "cancel", "refund"})
# Actions that cannot be undone ask first, on a page of their own (no script needed).
CONFIRMED_ACTIONS = frozenset({"cancel", "refund"})
CONFIRM_DUTIES = {"cancel": Duty.ORDERS, "refund": Duty.MONEY}
PRODUCT_VIEWS = {"on_sale": "sc_view_on_sale", "archived": "sc_view_archived"}
RECENT_ROOMS = 20  # live rooms listed with their figures
RECENT_DEALS = 50  # deals listed with their units
CSRF_MESSAGE = "The form's security token did not match; reload the page and try again."
# What to tell a seller whose field the schema refused, in words about the form, not the schema.
FIELD_HINTS = {
    "image_url": "A picture is an http(s) address or a path here, like /static/img/mug.svg.",
    "currency": "A currency is three capital letters, like USD or JPY.",
    "stock": "Stock is a whole number from 0 to 1,000,000,000.",
    "list_price": "A price is above zero and below ten billion.",
    "title": "Write a title (at most 300 characters; 120 for a live).",
    "options": "An option has a name and 1 to 20 values separated by commas, each at most 40 "
    "characters.",
    "variant": "A name is at most 200 characters.",
}
# Pages speak the seller's language; the JSON API's messages stay English. A refusal with a
# code named here is shown in the page's language (its key: ``sc_err_<code>``), any other in
# the API's own words.
PAGE_MESSAGE_PREFIX = "sc_err_"


def page_message(err: DomainError, lang: str) -> str:
    """What a page says for a refusal: the API's English, or its code's words in ``lang``."""
    key = PAGE_MESSAGE_PREFIX + str(err.code)
    if lang == i18n.DEFAULT or key not in i18n.catalog(i18n.DEFAULT):
        return err.message
    return i18n.translate(lang, key)


def field_hint(name: str, err: DomainError, lang: str) -> str:
    """The words about the form for a field the schema refused (``FIELD_HINTS``), in ``lang``.
    A SKU's field on the product page is named with its id (``list_price-12``)."""
    base, _, sku_id = name.rpartition("-")
    name = base if base and sku_id.isdigit() else name
    if name not in FIELD_HINTS:
        return page_message(err, lang)
    return FIELD_HINTS[name] if lang == i18n.DEFAULT else i18n.translate(lang, f"sc_hint_{name}")


SCHEMA_TO_FORM = {"image_urls": "image_url"}  # schema field -> the form's input


def _secure(request: Request) -> bool:
    configured = services(request).settings.cookie_secure
    return request.url.scheme == "https" if configured is None else configured


def _local_path(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/seller"


async def form_fields(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest(
            "Send the form as a web form.", code=WebErrorCode.UNSUPPORTED_MEDIA_TYPE, status=415
        )
    body = await read_limited(request, "form")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise BadRequest(
            "The form is not UTF-8.", code=WebErrorCode.MALFORMED_FORM, status=400
        ) from None
    return {name: values[-1] for name, values in fields.items()}


@dataclass(frozen=True)
class Refused:
    """A refused form, to be shown again: where it was posted, what was typed (so nothing has
    to be typed twice) and why, by field when one field is to blame."""

    path: str = ""
    typed: dict[str, str] = field(default_factory=dict)
    field: str = ""
    message: str = ""

    @classmethod
    def of(
        cls, path: str, form: dict[str, str], err: DomainError, lang: str = i18n.DEFAULT
    ) -> Refused:
        name = field_of(err)
        schema_problem = bool(err.details.get("problems"))
        message = field_hint(name, err, lang) if schema_problem else page_message(err, lang)
        typed = {k: v for k, v in form.items() if k != "csrf"}
        return cls(path, typed, name, message)

    def value(self, path: str, name: str, default: Any = "") -> Any:
        """What the field shows: what was typed into this form, else ``default``."""
        return self.typed.get(name, "") if path == self.path else default

    def error_for(self, path: str, name: str) -> str:
        return self.message if path == self.path and name == self.field else ""

    @property
    def banner(self) -> str:
        """The reason, when no one field is to blame (it is shown at the top of the page)."""
        return "" if self.field else self.message


def field_of(err: DomainError) -> str:
    named = err.details.get("field")
    if isinstance(named, str):
        return named
    problems = err.details.get("problems") or [{}]
    schema_field = str(problems[0].get("field", "")).split(".")[0]
    return SCHEMA_TO_FORM.get(schema_field, schema_field)


FormAction = Callable[[Request, Seller, dict[str, str]], Awaitable[Response]]
Refusal = Callable[[Request, Seller, dict[str, str], DomainError], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


PageDuty = Duty | Mapping[str, Duty]  # one, or one per value of the path's {action}


def form_action(
    refused: Refusal | None = None, *, duty: PageDuty
) -> Callable[[FormAction], Endpoint]:
    """A seller-center form post: signed in (else to the sign-in page), its CSRF field checked,
    the member's role allowed to do ``duty``, and a refusal shown by ``refused`` (the seller
    center by default) with what was typed, having changed nothing."""

    def wrap(action: FormAction) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                who = await signed_in(request, check_csrf=False)
            except Unauthorized:
                return RedirectResponse("/seller/login", status_code=303)
            me = who.seller
            form = await form_fields(request)
            show = refused or _refused_on_center
            cookies = services(request).seller_sessions
            if not cookies.csrf_ok(request.cookies.get(COOKIE, ""), form.get("csrf", "")):
                forged = BadRequest(CSRF_MESSAGE, code=WebErrorCode.CSRF_FAILED, status=403)
                return await show(request, me, form, forged)
            try:
                _check_role(request, who, duty)
            except Forbidden as err:  # on the seller center: the form's own page may be closed
                return await _refused_on_center(request, me, form, err)
            try:
                return await action(request, me, form)
            except DomainError as err:
                return await show(request, me, form, err)

        endpoint.duty = duty  # type: ignore[attr-defined]  # the role matrix test reads it
        return endpoint

    return wrap


def page_duty(duty: PageDuty) -> Callable[[Endpoint], Endpoint]:
    """Name the duty of a page that shows itself (not a form post): the role matrix test
    reads it; the page checks it with ``_check_role``."""

    def mark(endpoint: Endpoint) -> Endpoint:
        endpoint.duty = duty  # type: ignore[attr-defined]
        return endpoint

    return mark


def _check_role(request: Request, who: Acting, duty: PageDuty) -> None:
    needed = duty.get(request.path_params.get("action", "")) if isinstance(duty, Mapping) else duty
    if needed is not None and not may(who.role, needed):
        raise Forbidden(
            f"Your role ({who.role}) may not do this; ask the shop's owner or an admin.",
            code=PeopleErrorCode.ROLE_FORBIDDEN,
        )


async def staff_page(request: Request, duty: PageDuty) -> Acting | Response:
    """Who a page is for, or the response instead: the sign-in page, or a 403 for a role that
    may not see it."""
    try:
        who = await signed_in(request)
    except Unauthorized:
        return to_login(request)
    try:
        _check_role(request, who, duty)
    except Forbidden as err:
        context = {"message": page_message(err, page_language(request)), "role": who.role}
        return render(request, "seller_forbidden.html", context, status=403)
    return who


async def _other_sellers(db: Database, who: Acting) -> list[tuple[int, str]]:
    """The other sellers a member signed in with e-mail and password is on the staff of."""
    account_id = member_account(who.tag)
    if account_id is None:
        return []
    async with db.session() as session:
        found = await staff.memberships(session, account_id)
        sellers = [await session.get(Seller, m.seller_id) for m in found]
    return [(s.id, s.name) for s in sellers if s is not None and s.id and s.id != who.seller.id]


@form_action(duty=Duty.READ)
async def switch(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """A member on several sellers' staff acts for another: a new page session for it, made
    only if they are on its staff (their role there is read on every request)."""
    who: Acting = request.state.acting
    account_id = member_account(who.tag)
    target = int(form["seller_id"]) if form.get("seller_id", "").isdigit() else 0
    async with services(request).db.session() as session:
        role = await staff.member_role(session, target, account_id) if account_id else None
    if role is None or target > MAX_ID:
        raise Forbidden("You are not on that seller's staff.", code=PeopleErrorCode.NOT_ON_STAFF)
    return signed_in_response(request, target, who.tag, "/seller")


async def center_with_notice(request: Request, me: Seller, notice: str) -> Response:
    """The seller center after a form that has something to say once (a new API token)."""
    return await _center(request, me, notice=notice)


async def _refused_on_center(
    request: Request, me: Seller, form: dict[str, str], err: DomainError
) -> Response:
    refused = Refused.of(request.url.path, form, err, page_language(request))
    return await _center(
        request, me, tab=form.get("tab", ""), refused=refused, status=status_of(err)
    )


def to_login(request: Request) -> Response:
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
    login_csrf_cookie(request, response, token)
    return response


def login_csrf_cookie(request: Request, response: Response, token: str) -> None:
    """The sign-in forms' CSRF token (no session to derive one from yet)."""
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/seller",
    )


async def login(request: Request) -> Response:
    form = await form_fields(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "").encode()
    if not expected or not secrets.compare_digest(expected, form.get("csrf", "").encode()):
        return await login_page(
            request,
            error=i18n.translate(page_language(request), "sc_form_expired"),
            status=403,
            next_path=form.get("next"),
        )
    try:
        seller_id, tag = await _sign_in(request, form)
    except DomainError as err:
        return await login_page(
            request,
            error=page_message(err, page_language(request)),
            status=status_of(err),
            next_path=form.get("next"),
        )
    return signed_in_response(request, seller_id, tag, _local_path(form.get("next")))


async def _sign_in(request: Request, form: dict[str, str]) -> tuple[int, str]:
    """The seller and sign-in tag of a token, or of a member's e-mail and password."""
    svc = services(request)
    token = form.get("token", "").strip()
    if token:
        try:
            who = await svc.seller_auth.for_token(token)
        except Unauthorized:
            raise Unauthorized(
                "That seller token is not valid. Check it and try again.",
                code=CommonErrorCode.INVALID_TOKEN,
            ) from None
        assert who.seller.id is not None
        return who.seller.id, who.tag
    email = form.get("email", "")
    await throttle_sign_in(svc, request, email=email)
    async with svc.db.session() as session:
        account = await accounts.sign_in(session, email, form.get("password", ""))
        assert account.id is not None
        memberships = await staff.memberships(session, account.id)
    if not memberships:
        raise Forbidden(
            "This account is on no seller's staff: ask a shop's owner for an invitation.",
            code=PeopleErrorCode.NOT_ON_STAFF,
        )
    return memberships[0].seller_id, member_tag(account)


def signed_in_response(request: Request, seller_id: int, tag: str, to: str) -> Response:
    """A new page session (never one the browser had: no fixation) and on to ``to``."""
    svc = services(request)
    response = RedirectResponse(to, status_code=303)
    response.set_cookie(
        COOKIE,
        svc.seller_sessions.issue(seller_id, tag),
        max_age=svc.settings.seller_session_max_age_s,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/seller")
    return response


@form_action(duty=Duty.READ)
async def logout(request: Request, me: Seller, form: dict[str, str]) -> Response:
    response = RedirectResponse("/seller/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


# --- the seller center --------------------------------------------------------------------


@page_duty(Duty.READ)
async def seller_center(request: Request) -> Response:
    who = await staff_page(request, Duty.READ)
    if isinstance(who, Response):
        return who
    return await _center(request, who.seller)


async def _center(
    request: Request,
    me: Seller,
    *,
    tab: str = "",
    refused: Refused | None = None,
    status: int = 200,
    notice: str = "",
) -> Response:
    svc = services(request)
    who: Acting = request.state.acting  # every caller signed in first
    can = {duty.value for duty in DUTIES[who.role]}
    tab = tab or request.query_params.get("tab", "to_ship")
    tab = tab if tab in ORDER_TABS else "to_ship"
    view = request.query_params.get("products", "on_sale")
    view = view if view in PRODUCT_VIEWS else "on_sale"
    async with svc.db.session() as session:
        shops = list(await catalog.shops_of(session, me))
        shop_ids = [s.id for s in shops if s.id is not None]
        every_product = await _products(session, shop_ids, archived=None)
        counts = await order_store.count_by_status(session, shop_ids)
        # To ship: the most urgent first (the earliest ship-by time); other tabs: the newest.
        sort = OrderSort.SHIP_BY if tab == "to_ship" else OrderSort.NEWEST
        orders = await order_store.orders_of_shops_in(session, shop_ids, ORDER_TABS[tab], sort=sort)
        # A cart's order has a line per SKU: the seller ships each (decision 0028).
        bought = await order_store.lines_of(
            session, [o.id or 0 for o in orders if o.deal_id is None]
        )
        every_sku = {o.sku_id for o in orders} | {x.sku_id for got in bought.values() for x in got}
        lines = await order_store.item_lines(session, sorted(every_sku))
        midnight = _midnight_utc_ms()
        orders_today = await order_store.orders_since(session, shop_ids, midnight)
        # "Today's sales" is net: today's sales less today's refunds, from the ledger.
        net_today = await finance_store.net_sales_since(
            await session.connection(), shop_ids, midnight
        )
        finance = await finance_view(
            request, session, shops, (refused or Refused()).typed.get("shop_id")
        )
        now = now_ms()
        late_dispatch = await order_store.dispatch_record(session, shop_ids, now)
        room_rows = (await live_service.list_rooms(session, seller_id=me.id))[:RECENT_ROOMS]
        recent_rooms = [
            (row, await figures.room_figures(session, svc.rooms, svc.holds, row))
            for row in room_rows
        ]
        deal_rows = await _deals(session, svc.holds, shop_ids)
        history = await _formats_history(session, svc, [row.id or 0 for row in room_rows])
        promotions = await promotions_view(
            request, session, svc.holds.shelf, shops, _main_currency(every_product), me
        )
        affiliate_sections = await affiliates_view(session, me, shop_ids, can)
    returns = await returns_view(svc.db, shop_ids)
    returns_pending = await return_store.count_open(svc.db, shop_ids)
    on_sale = [p for p in every_product if not p["archived"]]
    products = [p for p in every_product if p["archived"] == (view == "archived")]
    refused = refused or Refused()
    context = {
        "seller": me,
        "shops": shops,
        "products": products,
        "product_view": view,
        "product_views": [
            (name, label, sum(p["archived"] == (name == "archived") for p in every_product))
            for name, label in PRODUCT_VIEWS.items()
        ],
        "overview": {
            "to_ship": sum(counts.get(s, 0) for s in ORDER_TABS["to_ship"]),
            "refunded": counts.get("refunded", 0),
            "out_of_stock": [
                (p["title"], sku) for p in on_sale for sku in p["skus"] if sku["free"] <= 0
            ],
            "today_orders": orders_today,
            "today_sales": sorted(net_today.values(), key=lambda sales: sales.currency),
            "late_dispatch": late_dispatch,
            "returns_pending": returns_pending,
        },
        "tab": tab,
        "tabs": [(name, TAB_LABELS[name], _tab_count(counts, name)) for name in ORDER_TABS],
        "orders": [(o, lines.get(o.sku_id)) for o in orders],
        # Per cart order: each line's (item, units), the item as ``lines`` names it.
        "order_lines": {
            order_id: [(lines.get(x.sku_id), x.qty) for x in got]
            for order_id, got in bought.items()
        },
        "deadlines": {o.id: _deadline(o, now, page_language(request)) for o in orders},
        "recent_rooms": recent_rooms,
        "deals": deal_rows,
        "history": history,
        "returns": returns,
        "finance": finance,
        "promotions": promotions,
        "currency": _main_currency(every_product),
        "csrf": svc.seller_sessions.csrf_token(request.cookies.get(COOKIE, "")),
        "refused": refused,
        "error": refused.banner,
        "notice": notice,
        "can": can,
        "role": who.role,
        "staff": await staff_view(svc.db, me) if "staff" in can else None,
        "others": await _other_sellers(svc.db, who),
        "affiliates": affiliate_sections,
    }
    return render(request, "seller.html", context, status=status)


@dataclass(frozen=True)
class DeadlineView:
    """An order's deadline as its row shows it: "Ship within 2 d 5 h", "Late by 3 h", "Shipped
    late · delivery expected by 2026-05-20"; ``late`` flags the row."""

    text: str
    late: bool


def _deadline(order: Order, now: int, lang: str) -> DeadlineView | None:
    left = deadlines.time_left_to_ship_ms(order, now)
    if left is not None:
        key = "sc_late_by" if left < 0 else "sc_ship_within"
        return DeadlineView(i18n.translate(lang, key, time=l10n.format_span(left, lang)), left < 0)
    if order.shipped_ms is None:
        return None  # not waiting to be shipped, and never shipped: no deadline to show
    late = deadlines.is_late(order, now)
    words = [i18n.translate(lang, "sc_shipped_late")] if late else []
    if order.deliver_by_ms is not None and order.delivered_ms is None:
        by = l10n.format_day(order.deliver_by_ms, lang)
        words.append(i18n.translate(lang, "sc_delivery_expected_by", day=by))
    return DeadlineView(" · ".join(words), late) if words else None


def _main_currency(products: list[dict[str, Any]]) -> str:
    return next((sku["currency"] for p in products for sku in p["skus"]), "USD")


def _tab_count(counts: dict[str, int], tab: str) -> int:
    statuses = ORDER_TABS[tab] or tuple(s.value for s in OrderStatus)
    return sum(counts.get(s, 0) for s in statuses)


def _midnight_utc_ms() -> int:
    today = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(today.timestamp() * 1000)


async def _products(
    session: AsyncSession, shop_ids: Sequence[int], *, archived: bool | None = False
) -> list[dict[str, Any]]:
    """The shops' products as cards, each SKU with its stock and what deals may still take
    (only those on sale unless ``archived`` says otherwise, as ``catalog.list_products``)."""
    found: list[dict[str, Any]] = []
    for shop_id in shop_ids:
        for product in await catalog.list_products(session, shop_id, archived=archived):
            skus = await catalog.skus_of(session, product.id or 0)
            card = {**live_service.card_of(product, skus), "shop_id": shop_id}
            card["archived"] = product.archived
            for shown, sku in zip(card["skus"], skus, strict=True):
                shown.update(stock=sku.stock, free=sku.stock - sku.allocated)
            found.append(card)
    return found


async def _offered(session: AsyncSession, me: Seller) -> list[dict[str, Any]]:
    """Other shops' products an affiliate plan offers this creator (decision 0046), as cards the
    studio's bag can add, their commission in the title."""
    found: list[dict[str, Any]] = []
    seen: set[int] = set()
    for offer in await affiliates.offers_to(session, me):
        product = await session.get(Product, offer.product_id)
        shop = await session.get(Shop, offer.shop_id)
        if offer.product_id in seen or product is None or shop is None:
            continue
        seen.add(offer.product_id)
        skus = await catalog.skus_of(session, offer.product_id)
        card = {**live_service.card_of(product, skus), "archived": False}
        card["title"] = f"{product.title} · {shop.name} ({offer.rate_bp / 100:g} % commission)"
        for shown, sku in zip(card["skus"], skus, strict=True):
            shown.update(stock=sku.stock, free=sku.stock - sku.allocated)
        found.append(card)
    return found


async def _formats_history(
    session: AsyncSession, svc: Services, room_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """The recent rooms' auctions and giveaways, newest first: what ran, who won, at what
    price (the lot in SQL; its outcome from the room's Redis record, kept a week)."""
    if not room_ids:
        return []
    rows = []
    for lot, sku, product in await catalog.lots_of_rooms(session, room_ids, RECENT_DEALS):
        room_id, lot_id = lot.room_id or 0, lot.id or 0
        auction = await svc.auctions.view(room_id, lot_id)
        giveaway = None if auction else await svc.giveaways.view(room_id, lot_id)
        found = auction or giveaway or {}
        rows.append(
            {
                "lot": lot,
                "room_id": room_id,
                "kind": "auction" if auction else "giveaway" if giveaway else "lot",
                "title": product.title + (f" · {sku.variant}" if sku.variant else ""),
                "state": found.get("state", "expired record"),
                "winner": found.get("winner_name") or found.get("winner") or "",
                "price": found.get("hammer_price"),
                "count": found.get("bids", found.get("entries")),
                "when": lot.created_ms,  # the template formats it: |moment
            }
        )
    return rows


async def _deals(
    session: AsyncSession, holds: HoldStore, shop_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """The shops' newest deals with their units: the live counts from Redis (as GET /api/deals
    reads them) for deals that were started, none for those that were not."""
    rows = []
    for deal, sku, product in await catalog.deals_of_shops(session, shop_ids, RECENT_DEALS):
        if deal.kind != "flash":  # an auction's or giveaway's lot: the live rooms' history
            continue
        state = await deal_runs.started_state(holds, deal)
        view = deal_runs.deal_json(deal, state)
        rows.append(
            {
                "deal": deal,
                "title": product.title,
                "variant": sku.variant,
                "phase": view["phase"],
                "units": view.get("stock"),
                "starts": deal.starts_ms,
                "ends": deal.ends_ms,
                "stoppable": deal.status == DealStatus.LIVE and not (state and state.stopped),
            }
        )
    return rows


# --- orders -------------------------------------------------------------------------------


@form_action(duty={"ship": Duty.ORDERS, "cancel": Duty.ORDERS, "refund": Duty.MONEY})
async def order_action(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """Ship (with carrier and tracking number), cancel or refund one order, from its row;
    cancel and refund only from their confirmation page (``confirm=yes``)."""
    action: str = request.path_params["action"]
    if action not in FORM_ACTIONS:
        raise Invalid("Ship, cancel or refund.", code=CheckoutErrorCode.UNKNOWN_ACTION)
    tracking = parse_form(
        OrderActionIn,
        {"carrier": form.get("carrier", ""), "tracking_number": form.get("tracking_number", "")},
    )
    tab = form.get("tab", "to_ship")
    tab = tab if tab in ORDER_TABS else "to_ship"
    async with services(request).db.session() as session:
        shop_ids = [s.id for s in await catalog.shops_of(session, me) if s.id is not None]
        order = await order_store.order_for_shops(
            session, request.path_params["order_id"], shop_ids
        )
        if action in CONFIRMED_ACTIONS and form.get("confirm") != "yes":
            next_status(OrderStatus(order.status), action)  # a move it cannot make: say so
            note = f"Nothing was done yet: confirm to {action} the order."
            return await _confirmation(request, session, me, order, action, tab, note)
        actor = f"seller:{me.id}"
        if action == "ship":
            shipment_fields(OrderStatus.SHIPPED, tracking.carrier, tracking.tracking_number)
            # The seller center ships in one step (a paid order is confirmed on the way, in
            # the same UPDATE); the record keeps both moves.
            await order_store.transition(
                session,
                order,
                "ship",
                actor,
                carrier=tracking.carrier,
                tracking_number=tracking.tracking_number,
                deliver_within_ms=services(request).money.deliver_within_ms,
                confirm_first=True,
            )
    if action == "cancel":
        await services(request).refunds.cancel(order.id or 0, actor)
    elif action == "refund":
        await _refund_in_full(request, order, actor, form)
    return RedirectResponse(f"/seller?tab={tab}#orders", status_code=303)


async def _refund_in_full(request: Request, order: Order, actor: str, form: dict[str, str]) -> None:
    """The confirmation page's refund: what is left of the total, restocking the units the
    seller chose, under the key drawn into the page (a double click refunds once)."""
    key = form.get("refund_key", "")
    restock = form.get("restock", "0")
    if not key or not restock.isdigit():
        raise Invalid(
            "Open the refund page again.", code=CheckoutErrorCode.IDEMPOTENCY_KEY_REQUIRED
        )
    ask = RefundAsk(key=refund_key(order.id or 0, key), actor=actor, units=int(restock))
    await services(request).refunds.refund(order.id or 0, ask)


@page_duty(CONFIRM_DUTIES)
async def confirm_page(request: Request) -> Response:
    """ "Refund $X to the buyer?": the page a Refund (or Cancel) button opens."""
    who = await staff_page(request, CONFIRM_DUTIES)
    if isinstance(who, Response):
        return who
    me = who.seller
    action: str = request.path_params["action"]
    tab = request.query_params.get("tab", "to_ship")
    tab = tab if tab in ORDER_TABS else "to_ship"
    if action not in CONFIRMED_ACTIONS:
        return not_found_page(request)
    async with services(request).db.session() as session:
        shop_ids = [s.id for s in await catalog.shops_of(session, me) if s.id is not None]
        try:
            order = await order_store.order_for_shops(
                session, request.path_params["order_id"], shop_ids
            )
            next_status(OrderStatus(order.status), action)
        except NotFound:
            return not_found_page(request)
        except DomainError as err:  # refunded already, say: the center says why
            refused = Refused(message=err.message)
            return await _center(request, me, tab=tab, refused=refused, status=status_of(err))
        return await _confirmation(request, session, me, order, action, tab)


async def _confirmation(
    request: Request,
    session: AsyncSession,
    me: Seller,
    order: Order,
    action: str,
    tab: str,
    note: str = "",
) -> Response:
    line = (await order_store.item_lines(session, [order.sku_id])).get(order.sku_id)
    lang = page_language(request)
    amount = money(order.total - order.refunded, order.currency, lang)
    # Keys per action (CONFIRMED_ACTIONS): sc_refund_question, sc_cancel_question, and so on.
    question = i18n.translate(lang, f"sc_{action}_question", amount=amount)
    context = {
        "seller": me,
        "order": order,
        "line": line,
        "action": action,
        "heading": i18n.translate(lang, f"sc_{action}_heading", id=order.id),
        "question": question,
        "buyer": _buyer_of(order, lang),
        "tab": tab,
        "note": note,
        "refund_key": secrets.token_urlsafe(16),
        "restockable": order.quantity - order.restocked_units,
        "csrf": services(request).seller_sessions.csrf_token(request.cookies.get(COOKIE, "")),
    }
    return render(request, "seller_confirm.html", context, status=400 if note else 200)


def _buyer_of(order: Order, lang: str) -> str:
    if order.shipping:
        ship = order.shipping
        return f"{ship.get('name', '')}, {ship.get('city', '')} {ship.get('country', '')}".strip()
    return i18n.translate(lang, "sc_guest_buyer", id=order.buyer_id[:12])


@page_duty(Duty.ORDERS)
async def ship_from_csv(request: Request) -> Response:
    """The orders section's upload (``multipart/form-data``: ``csrf``, and ``file``, a CSV read
    by web/shipments_csv.py): each line's order ships on its own, and the page says what became
    of each line. A file refused as a whole (not a CSV of shipments, too many lines, a bad
    token) shows the seller center again with the reason and a 4xx, having shipped nothing."""
    try:
        who = await signed_in(request, check_csrf=False)
    except Unauthorized:
        return RedirectResponse("/seller/login", status_code=303)
    me, svc = who.seller, services(request)
    try:
        _check_role(request, who, Duty.ORDERS)
        upload = await _upload(request)
        if not svc.seller_sessions.csrf_ok(
            request.cookies.get(COOKIE, ""), upload.fields.get("csrf", "")
        ):
            raise BadRequest(CSRF_MESSAGE, code=WebErrorCode.CSRF_FAILED, status=403)
        if not upload.files.get("file"):
            raise BadRequest(
                "Choose a CSV file of shipments to upload.",
                code=WebErrorCode.MALFORMED_CSV,
                status=400,
            )
        lines = shipments_csv.read_shipments(upload.files["file"])
        bulk_ship.check_count(len(lines))
        async with svc.db.session() as session:
            shop_ids = [s.id for s in await catalog.shops_of(session, me) if s.id is not None]
        outcomes = await bulk_ship.ship_all(
            svc.db,
            [line.shipment for line in lines],
            shop_ids,
            f"seller:{me.id}",
            svc.money.deliver_within_ms,
        )
    except DomainError as err:
        return await _refused_on_center(request, me, {"tab": "to_ship"}, err)
    lang = page_language(request)
    rows = [
        {
            "line": line.number,
            "order_id": outcome.shipment.order_id,
            "order": outcome.order,
            "code": outcome.error.code if outcome.error else "",
            "message": page_message(outcome.error, lang) if outcome.error else "",
        }
        for line, outcome in zip(lines, outcomes, strict=True)
    ]
    shipped = sum(row["order"] is not None for row in rows)
    context = {
        "seller": me,
        "rows": rows,
        "shipped": shipped,
        "failed": len(rows) - shipped,
        "csrf": svc.seller_sessions.csrf_token(request.cookies.get(COOKIE, "")),
    }
    return render(request, "seller_shipments.html", context)


async def _upload(request: Request) -> Upload:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise BadRequest(
            "Upload the file with the page's form (multipart/form-data).",
            code=WebErrorCode.UNSUPPORTED_MEDIA_TYPE,
            status=415,
        )
    return parse_multipart(content_type, await read_limited(request, "file"))


# --- deals --------------------------------------------------------------------------------


@form_action(duty=Duty.LIVE)
async def stop_deal(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """Stop a live deal early: through its room when it has one (the viewers are told)."""
    svc = services(request)
    async with svc.db.session() as session:
        deal = await catalog.owned_deal(session, me, request.path_params["deal_id"])
        if deal.room_id is not None and await svc.rooms.read(deal.room_id) is not None:
            await live_service.stop_deal(session, svc.rooms, svc.holds, deal.room_id, deal.id or 0)
        else:
            await deal_runs.stop(session, svc.holds, deal)
    return RedirectResponse("/seller#deals", status_code=303)


@form_action(duty=Duty.LIVE)
async def create_room(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """A room with every product of the shop in its bag, opened straight in the studio."""
    svc = services(request)
    body = parse_form(
        RoomIn, {"shop_id": whole_field(form, "shop_id"), "title": form.get("title", "")}
    )
    async with svc.db.session() as session:
        room = await live_service.create_room(session, svc.rooms, me, body.shop_id, body.title)
        for product in (await catalog.list_products(session, body.shop_id))[: rules.MAX_BAG]:
            await live_service.add_product(session, svc.rooms, me, room["id"], product.id or 0)
    return RedirectResponse(f"/studio/{room['id']}", status_code=303)


def whole_field(form: dict[str, str], name: str, label: str = "") -> int:
    raw = form.get(name, "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) > MAX_ID:
        label = label or name.replace("_", " ").capitalize()
        raise Invalid(
            f"{label} must be a whole number.", code=CommonErrorCode.INVALID_REQUEST, field=name
        )
    return int(raw)


def money_field(form: dict[str, str], name: str, currency: str) -> int:
    """A price as typed (49 or 49.90; 1000 in yen) in the currency's minor units."""
    digits = minor_digits(currency)
    raw = form.get(name, "").strip()
    whole, dot, fraction = raw.partition(".")
    if not (whole.isascii() and whole.isdigit() and len(whole) <= 10) or not (
        (not dot and not fraction)
        or (fraction.isascii() and fraction.isdigit() and 0 < len(fraction) <= digits)
    ):
        example = "1000" if digits == 0 else "49 or 49.90"
        raise Invalid(
            f"Prices are written like {example}.", code=CatalogErrorCode.INVALID_PRICE, field=name
        )
    scale: int = 10**digits
    return int(whole) * scale + int(fraction.ljust(digits, "0") or "0")


def parse_form(model: type[Model], data: dict[str, Any]) -> Model:
    """A form's fields through the same schema (and errors) as the JSON API."""
    return parse(model, orjson.dumps(data))


# --- the studio ---------------------------------------------------------------------------


@page_duty(Duty.LIVE)
async def studio(request: Request) -> Response:
    who = await staff_page(request, Duty.LIVE)
    if isinstance(who, Response):
        return who
    me = who.seller
    svc = services(request)
    room_id: int = request.path_params["room_id"]
    async with svc.db.session() as session:
        try:
            row = await live_service.owned_room(session, me, room_id)
        except DomainError:
            return not_found_page(request)
        shop = await session.get(Shop, row.shop_id)
        products = await _products(session, [row.shop_id]) + await _offered(session, me)
    lang = page_language(request)
    config = {
        "room_id": room_id,
        "lang": lang,
        "strings": strings(lang),
        "ticket": svc.seller_sessions.ticket(who.seller.id or 0, who.tag, room_id),
        "csrf": svc.seller_sessions.csrf_token(request.cookies.get(COOKIE, "")),
        "products": products,
        "limits": {
            "countdown_s": [rules.MIN_COUNTDOWN_S, rules.MAX_COUNTDOWN_S],
            "duration_s": [rules.MIN_RUN_S, rules.MAX_RUN_S],
        },
    }
    context = {"room": row, "shop": shop, "config": config, "seller": me}
    return render(request, "studio.html", context)
