"""Refunds and cancellations of orders, by sellers (decision 0027): they move the charge, the
stock, the live deal and the ledger. Registered before web/api_orders.py's generic order moves,
so ``/cancel`` and ``/refund`` land here."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from catalog import service
from checkout import order_store
from checkout.error_codes import CheckoutErrorCode
from checkout.idempotency import body_hash
from checkout.line_refunds import Pick
from checkout.models import Order, Refund
from checkout.refunds import RefundAsk, refund_key
from kernel.errors import Invalid
from people.roles import Duty
from web import responses as out
from web.api_checkout import IDEMPOTENCY_KEY
from web.api_orders import order_json
from web.auth import seller
from web.http import JSONResponse, parse, read_body
from web.routing import Api
from web.schemas import CancelIn, RefundIn
from web.services import services

api = Api()

# What a refund or a cancel can meet besides the order not being found.
MONEY_REFUSALS = (
    CheckoutErrorCode.ORDER_NOT_FOUND,
    CheckoutErrorCode.ORDER_NOT_REFUNDABLE,
    CheckoutErrorCode.ORDER_DISPUTED,
    CheckoutErrorCode.ORDER_CHANGED,
    CheckoutErrorCode.INVALID_TRANSITION,
)


def refund_json(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "order_id": refund.order_id,
        "amount": refund.amount,
        "fee_returned": refund.fee_returned,
        "currency": refund.currency,
        "units_restocked": refund.units,
        "reason": refund.reason,
        "actor": refund.actor,
        "status": refund.status,
        "provider_ref": refund.provider_ref,
        "created_ms": refund.created_ms,
        "updated_ms": refund.updated_ms,
    }


async def _answer(request: Request, order_id: int, refund: Refund) -> Response:
    async with services(request).db.session() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        events = await order_store.events_of(session, order_id)
    return JSONResponse({"order": order_json(order, list(events)), "refund": refund_json(refund)})


async def _own_order(request: Request) -> int:
    me = await seller(request)
    order_id: int = request.path_params["order_id"]
    async with services(request).db.session() as session:
        shop_ids = [s.id for s in await service.shops_of(session, me) if s.id is not None]
        await order_store.order_for_shops(session, order_id, shop_ids)
    return order_id


@api.route(
    "POST",
    "/api/orders/{order_id:id}/cancel",
    "Cancel an order before it ships: refund everything left, every unit back in stock (into "
    "the flash deal while it still sells). Once per order, whoever asks",
    body=CancelIn,
    body_required=False,
    auth="seller",
    duty=Duty.ORDERS,
    tag="orders",
    ok={200: out.RefundAnswer},
    errors=MONEY_REFUSALS,
)
async def cancel_order(request: Request) -> Response:
    order_id = await _own_order(request)
    body = CancelIn()
    if request.headers.get("content-length", "0") not in ("", "0"):
        body = parse(CancelIn, await read_body(request))
    me = await seller(request)
    refund = await services(request).refunds.cancel(order_id, f"seller:{me.id}", body.reason)
    return await _answer(request, order_id, refund)


@api.route(
    "POST",
    "/api/orders/{order_id:id}/refund",
    "Refund an order in full or in part (by amount, by units or by chosen lines), restocking as "
    "many units as you choose; the same Idempotency-Key is the same refund",
    body=RefundIn,
    body_required=False,
    auth="seller",
    duty=Duty.MONEY,
    tag="orders",
    headers=(IDEMPOTENCY_KEY,),
    ok={200: out.RefundAnswer},
    errors=(
        *MONEY_REFUSALS,
        CheckoutErrorCode.REFUND_EXCEEDS_PAID,
        CheckoutErrorCode.INVALID_AMOUNT,
        CheckoutErrorCode.INVALID_UNITS,
        CheckoutErrorCode.RESTOCK_EXCEEDS_UNITS,
        CheckoutErrorCode.IDEMPOTENCY_KEY_REQUIRED,
        CheckoutErrorCode.IDEMPOTENCY_KEY_REUSED,
    ),
)
async def refund_order(request: Request) -> Response:
    key = request.headers.get("idempotency-key", "")
    if not (1 <= len(key) <= 128) or not key.isprintable():
        raise Invalid(
            "Send an Idempotency-Key header (1-128 printable characters): a refund is made once "
            "per key, however often it is sent.",
            code=CheckoutErrorCode.IDEMPOTENCY_KEY_REQUIRED,
        )
    order_id = await _own_order(request)
    raw = b""
    body = RefundIn()
    if request.headers.get("content-length", "0") not in ("", "0"):
        raw = await read_body(request)
        body = parse(RefundIn, raw)
    me = await seller(request)
    svc = services(request)
    if sum(x is not None for x in (body.amount, body.units, body.lines)) > 1:
        raise Invalid(
            "Refund by amount, by units or by lines: one of them.",
            code=CheckoutErrorCode.INVALID_AMOUNT,
        )
    ask = RefundAsk(
        key=refund_key(order_id, key),
        actor=f"seller:{me.id}",
        amount=body.amount,
        units=body.restock,
        refund_units=body.units,
        lines=tuple(Pick(line.sku_id, line.units) for line in body.lines or ()),
        reason=body.reason,
        body_hash=body_hash(request.method, request.url.path, raw),
    )
    refund = await svc.refunds.refund(order_id, ask)
    return await _answer(request, order_id, refund)
