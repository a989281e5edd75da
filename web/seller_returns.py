"""The seller center's Returns forms: approve a buyer's request, reject it (saying why), offer a
smaller refund (typed as a price, e.g. ``12.50``), confirm a return's receipt (restocking the
units chosen). Each posts with the page's CSRF field and answers ``303`` back to the Returns
section, or the seller center again with the reason and a 4xx, having changed nothing
(``web.seller_pages.form_action``), as the other seller-center forms do."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from catalog import service as catalog
from catalog.models import Seller
from checkout import return_store, returns
from checkout.error_codes import CheckoutErrorCode
from kernel.errors import Invalid, NotFound
from people.roles import Duty
from web.seller_pages import form_action, money_field
from web.services import services


@form_action(duty=Duty.ORDERS)
async def answer_request(request: Request, me: Seller, form: dict[str, str]) -> Response:
    action: str = request.path_params["action"]
    if action not in returns.SELLER_MOVES:
        raise NotFound(
            "Approve, reject, offer or receive.",
            code=CheckoutErrorCode.UNKNOWN_ACTION,
            allowed=sorted(returns.SELLER_MOVES),
        )
    svc = services(request)
    async with svc.db.session() as session:
        shop_ids = [s.id for s in await catalog.shops_of(session, me) if s.id is not None]
    found = await return_store.of_shops(svc.db, request.path_params["request_id"], shop_ids)
    actor = f"seller:{me.id}"
    if action == returns.APPROVE.name:
        await return_store.approve(svc.db, svc.refunds, found, actor)
    elif action == returns.REJECT.name:
        await return_store.reject(svc.db, found, actor, form.get("reason", ""))
    elif action == returns.OFFER.name:
        order = await return_store.order_of(svc.db, found)
        amount = money_field(form, "amount", order.currency)
        await return_store.offer(svc.db, found, actor, amount, form.get("note", "").strip())
    else:
        await return_store.receive(svc.db, svc.refunds, found, actor, _restock(form))
    return RedirectResponse("/seller#returns", status_code=303)


def _restock(form: dict[str, str]) -> int | None:
    """The units going back into stock as typed; empty: all those returned."""
    raw = form.get("restock", "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 5:
        raise Invalid(
            "Units back into stock is a whole number.",
            code=CheckoutErrorCode.RESTOCK_EXCEEDS_UNITS,
            field="restock",
        )
    return int(raw)
