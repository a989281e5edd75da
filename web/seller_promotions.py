"""The seller center's Promotions forms (decision 0028): the shop's shipping rule and a new
voucher (the section itself: ``web/promotions_view.py``). They go through the same services as
the JSON API, answer ``303`` back to the section, or the seller center again with the reason,
having changed nothing (``web.seller_pages.form_action``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from catalog import service as catalog
from catalog.models import Seller
from checkout import promotions, vouchers
from checkout.pricing import VoucherKind
from checkout.shelving import Shelving
from kernel.clock import now_ms
from kernel.errors import CommonErrorCode, Invalid
from live import service as live_service
from people.roles import Duty
from web.schemas import MAX_ID
from web.seller_pages import form_action, money_field, whole_field
from web.services import services

DAY_MS = 86_400_000
MAX_DAYS = 365


@form_action(duty=Duty.CATALOG)
async def create_promotion(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """A product discount (typed as 15 for 15 %) or a bundle ("any 2 for 25.00") on the
    products ticked, from now for a number of days, as ``POST /api/shops/{id}/promotions``."""
    shop_id = _shop_id(form)
    currency = _currency(form)
    kind = form.get("kind", "")
    products = tuple(
        int(value)
        for name, value in form.items()
        if name.startswith("product-") and value.isdigit()
    )
    days = _days(form, "A promotion")
    now = now_ms()
    discount = kind == promotions.DISCOUNT
    terms = promotions.PromotionTerms(
        kind=kind,
        products=products,
        starts_ms=now,
        ends_ms=now + days * DAY_MS,
        bps=whole_field(form, "percent", "The percentage") * 100 if discount else 0,
        size=0 if discount else whole_field(form, "size", "Units in a bundle"),
        price=0 if discount else money_field(form, "price", currency),
        currency="" if discount else currency,
    )
    svc = services(request)
    async with svc.db.session() as session:
        await catalog.owned_shop(session, me, shop_id)
        await promotions.create(session, shop_id, terms)
        await Shelving(svc.holds.shelf).publish_promotions(session, shop_id)
    return _back(shop_id)


@form_action(duty=Duty.CATALOG)
async def end_promotion(request: Request, me: Seller, form: dict[str, str]) -> Response:
    shop_id = _shop_id(form)
    svc = services(request)
    async with svc.db.session() as session:
        await catalog.owned_shop(session, me, shop_id)
        await promotions.end(session, shop_id, request.path_params["promotion_id"])
        await Shelving(svc.holds.shelf).publish_promotions(session, shop_id)
    return _back(shop_id)


def _days(form: dict[str, str], what: str) -> int:
    days = whole_field(form, "days", "Days")
    if not 1 <= days <= MAX_DAYS:
        raise Invalid(
            f"{what} runs 1 to {MAX_DAYS} days.",
            code=CommonErrorCode.INVALID_REQUEST,
            field="days",
        )
    return days


def _shop_id(form: dict[str, str]) -> int:
    raw = form.get("shop_id", "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) > MAX_ID:
        raise Invalid("Choose one of your shops.", code=CommonErrorCode.INVALID_REQUEST)
    return int(raw)


def _currency(form: dict[str, str]) -> str:
    raw = form.get("currency", "").strip()
    if len(raw) != 3 or not raw.isascii() or not raw.isupper():
        raise Invalid("Choose a currency.", code=CommonErrorCode.INVALID_REQUEST, field="currency")
    return raw


def _back(shop_id: int) -> Response:
    return RedirectResponse(f"/seller?promo_shop={shop_id}#promotions", status_code=303)


@form_action(duty=Duty.CATALOG)
async def set_shipping(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """The shop's shipping rule, as ``PUT /api/shops/{id}/shipping`` sets it."""
    shop_id = _shop_id(form)
    currency = _currency(form)
    kind = form.get("kind", "")
    if kind not in ("flat", "free_over", "per_item"):
        raise Invalid("Choose a kind of fee.", code=CommonErrorCode.INVALID_REQUEST, field="kind")
    fee = money_field(form, "fee", currency)
    free_over = money_field(form, "free_over", currency) if kind == "free_over" else 0
    svc = services(request)
    async with svc.db.session() as session:
        await catalog.set_shipping(session, me, shop_id, kind, fee, free_over)
        await Shelving(svc.holds.shelf).publish_shipping(session, shop_id)
    return _back(shop_id)


@form_action(duty=Duty.CATALOG)
async def create_voucher(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """A voucher, as ``POST /api/shops/{id}/vouchers`` makes it: a percentage (typed as 10 for
    10 %) or an amount off, from now for a number of days, for the whole shop or one live room."""
    shop_id = _shop_id(form)
    currency = _currency(form)
    kind = form.get("kind", "")
    if kind not in {k.value for k in VoucherKind}:
        raise Invalid(
            "Choose a kind of voucher.", code=CommonErrorCode.INVALID_REQUEST, field="kind"
        )
    if kind == VoucherKind.PERCENT:
        value = whole_field(form, "value", "The percentage") * 100
    else:
        value = money_field(form, "value", currency)
    days = _days(form, "A voucher")
    room = form.get("room_id", "").strip()
    room_id = whole_field(form, "room_id", "The room") if room else None
    now = now_ms()
    terms = vouchers.VoucherTerms(
        code=form.get("code", "").strip().upper(),
        kind=VoucherKind(kind),
        value=value,
        currency=currency,
        budget=whole_field(form, "budget", "The budget"),
        per_buyer=whole_field(form, "per_buyer", "Uses per buyer"),
        starts_ms=now,
        ends_ms=now + days * DAY_MS,
        min_spend=money_field(form, "min_spend", currency) if form.get("min_spend") else 0,
        room_id=room_id,
    )
    svc = services(request)
    async with svc.db.session() as session:
        await catalog.owned_shop(session, me, shop_id)
        if room_id is not None:
            found = await live_service.owned_room(session, me, room_id)
            if found.shop_id != shop_id:
                raise Invalid(
                    "Choose one of this shop's rooms.",
                    code=CommonErrorCode.INVALID_REQUEST,
                    field="room_id",
                )
        made = await vouchers.create(session, shop_id, terms)
    await vouchers.put_on_shelf(svc.holds.shelf, made)
    return _back(shop_id)
