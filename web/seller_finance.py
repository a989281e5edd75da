"""The seller center's Finance forms: withdraw a currency's available balance, and set the
shop's payout method. Each posts with the page's CSRF field and answers ``303`` back to the
Finance tab, or the seller center again with the reason and a 4xx, having changed nothing
(``web.seller_pages.form_action``), as the other seller-center forms do."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from catalog import service as catalog
from catalog.models import Seller
from kernel.errors import CommonErrorCode, Invalid
from people.roles import Duty
from web.http import parse
from web.schemas import MAX_ID, PayoutMethodIn, WithdrawalIn
from web.seller_pages import form_action
from web.services import services

PAYOUT_METHOD_HINT = (
    "A payout method is up to 200 characters with no line breaks, like acct_1234 "
    "(empty removes it)."
)


def _shop_id(form: dict[str, str]) -> int:
    raw = form.get("shop_id", "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) > MAX_ID:
        raise Invalid("Choose one of your shops.", code=CommonErrorCode.INVALID_REQUEST)
    return int(raw)


def _back(shop_id: int) -> Response:
    return RedirectResponse(f"/seller?finance_shop={shop_id}#finance", status_code=303)


@form_action(duty=Duty.MONEY)
async def withdraw(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """The whole available balance of the form's currency, as ``POST /api/finance/withdrawals``
    takes it (one a day per shop and currency)."""
    shop_id = _shop_id(form)
    body = parse(
        WithdrawalIn,
        orjson.dumps({"shop_id": shop_id, "currency": form.get("currency", "").strip()}),
    )
    svc = services(request)
    async with svc.db.session() as session:
        await catalog.owned_shop(session, me, shop_id)
    await svc.payouts.withdraw(shop_id, body.currency, f"seller:{me.id}")
    return _back(shop_id)


@form_action(duty=Duty.MONEY)
async def set_payout_method(request: Request, me: Seller, form: dict[str, str]) -> Response:
    shop_id = _shop_id(form)
    try:
        body = parse(PayoutMethodIn, orjson.dumps({"payout_method": form.get("payout_method", "")}))
    except Invalid as err:
        raise Invalid(PAYOUT_METHOD_HINT, code=err.code, field="payout_method") from None
    async with services(request).db.session() as session:
        await catalog.set_payout_method(session, me, shop_id, body.payout_method)
    return _back(shop_id)
