"""Viewer-facing API: guest sessions, reserving deal stock, holds, and idempotent checkout."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from catalog import service
from catalog.error_codes import CatalogErrorCode
from checkout.cart_store import CartStore
from checkout.checkout import pay_for_hold
from checkout.error_codes import CheckoutErrorCode
from checkout.holds import ReserveRequest
from checkout.idempotency import StoredResponse, body_hash
from checkout.keys import deal_id_of_hold
from checkout.limits import Rate, client_address
from kernel.clock import now_ms
from kernel.errors import CommonErrorCode, DomainError, Invalid, PaymentFailed
from web import responses as out
from web.auth import viewer, viewer_and_kind
from web.http import JSONResponse, error_response, parse, read_body, status_of
from web.routing import Answer, Api, Param
from web.schemas import CartPayIn, CheckoutIn, ReserveIn
from web.services import Services, services

api = Api()
HOLD_ID = Param(
    "hold_id",
    "A hold's id: `<deal id>-<n>` for a deal's, `s<shop id>-<n>` for a cart's",
    {"type": "string", "pattern": "^s?[0-9]+-[0-9]+$"},
)
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "1-128 printable characters; a retry with the same key and body pays at most once",
    {"type": "string", "minLength": 1, "maxLength": 128},
    required=True,
)
REPLAYED = Param("Idempotent-Replayed", "`true` on the stored answer to a retried key")
# What giving back or paying for a hold can meet: none of yours, lapsed, given back, sold, or
# a payment already under way.
HOLD_REFUSALS = (
    CheckoutErrorCode.HOLD_NOT_FOUND,
    CheckoutErrorCode.HOLD_EXPIRED,
    CheckoutErrorCode.HOLD_RELEASED,
    CheckoutErrorCode.HOLD_ALREADY_PAID,
    CheckoutErrorCode.PAYMENT_IN_PROGRESS,
    CheckoutErrorCode.CHECKOUT_REQUIRED,
)
log = logging.getLogger("livecart.checkout")


@api.route(
    "POST",
    "/api/session",
    "Start a guest session (viewer/buyer identity)",
    tag="identity",
    ok={201: out.GuestSession},
    errors=(CommonErrorCode.RATE_LIMITED,),
)
async def create_session(request: Request) -> Response:
    svc = services(request)
    rate = Rate(svc.settings.session_rate_per_s, svc.settings.session_burst)
    await svc.limiter.take("session", address_of(request), rate, "new sessions")
    buyer, token = svc.sessions.issue()
    return JSONResponse({"token": token, "buyer_id": buyer}, status_code=201)


def address_of(request: Request) -> str:
    """The client address the per-address limits count against (see checkout/limits.py)."""
    return client_address(request.client.host if request.client else None)


@api.route(
    "POST",
    "/api/deals/{deal_id:id}/reserve",
    "Hold units of a live deal",
    body=ReserveIn,
    auth="viewer",
    tag="checkout",
    ok={
        201: Answer(out.HoldAnswer, "A new hold"),
        200: Answer(out.HoldAnswer, "The hold this request_id made before"),
    },
    errors=(
        CatalogErrorCode.DEAL_NOT_FOUND,
        CatalogErrorCode.DEAL_NOT_LIVE,
        CatalogErrorCode.DEAL_NOT_STARTED,
        CheckoutErrorCode.AUCTION_LOT,
        CatalogErrorCode.DEAL_ENDED,
        CheckoutErrorCode.SOLD_OUT,
        CheckoutErrorCode.INSUFFICIENT_STOCK,
        CheckoutErrorCode.LIMIT_EXCEEDED,
        CheckoutErrorCode.ACCOUNT_REQUIRED,
        CheckoutErrorCode.ADDRESS_HOLD_LIMIT,
        CatalogErrorCode.INVALID_QUANTITY,
        CommonErrorCode.RATE_LIMITED,
    ),
)
async def reserve(request: Request) -> Response:
    svc = services(request)
    buyer, account = viewer_and_kind(request)
    body = parse(ReserveIn, await read_body(request))
    deal_id: int = request.path_params["deal_id"]
    try:
        hold = await svc.batcher.reserve(
            deal_id,
            ReserveRequest(
                buyer, body.qty, body.request_id or "", address_of(request), account=account
            ),
        )
    except DomainError as err:
        svc.metrics.reservations.labels(result=err.code).inc()
        if err.code is CatalogErrorCode.DEAL_NOT_LIVE:
            await _raise_if_unknown(svc, deal_id)
        raise
    svc.metrics.reserved_ok.inc()
    return JSONResponse({"hold": hold.json()}, status_code=200 if hold.replayed else 201)


async def _raise_if_unknown(svc: Services, deal_id: int) -> None:
    async with svc.db.session() as session:
        await service.get_deal(session, deal_id)  # raises deal_not_found


@api.route(
    "GET",
    "/api/holds/{hold_id}",
    "One of your holds",
    auth="viewer",
    tag="checkout",
    path_params=(HOLD_ID,),
    ok={200: out.HoldAnswer},
    errors=(CheckoutErrorCode.HOLD_NOT_FOUND,),
)
async def get_hold(request: Request) -> Response:
    svc = services(request)
    buyer = viewer(request)
    hold = await svc.holds.get_hold(request.path_params["hold_id"], buyer)
    return JSONResponse({"hold": hold.json()})


@api.route(
    "DELETE",
    "/api/holds/{hold_id}",
    "Give a hold's units back",
    auth="viewer",
    tag="checkout",
    path_params=(HOLD_ID,),
    ok={204: Answer(description="The units are back on sale")},
    errors=HOLD_REFUSALS,
)
async def release_hold(request: Request) -> Response:
    svc = services(request)
    buyer = viewer(request)
    hold_id = request.path_params["hold_id"]
    await svc.holds.release(hold_id, buyer)
    await _tell_room(svc, hold_id, buyer, {"type": "hold.released", "hold_id": hold_id})
    return Response(status_code=204)


async def _tell_room(svc: Services, hold_id: str, buyer: str, message: dict[str, Any]) -> None:
    """Tell the buyer's room connections (on any node) what happened to a hold bought there.
    Best effort: the sale or release already happened, and must be answered as such."""
    deal_id = deal_id_of_hold(hold_id)
    try:
        room_id = await svc.rooms.room_of_deal(deal_id) if deal_id is not None else None
        if room_id is not None:
            await svc.rooms.send_to_user(room_id, buyer, {**message, "ms": now_ms()})
    except Exception:
        log.warning("could not tell the room about hold %s", hold_id, exc_info=True)


@api.route(
    "POST",
    "/api/holds/{hold_id}/checkout",
    "Pay for a hold (idempotent)",
    body=CheckoutIn,
    auth="viewer",
    tag="checkout",
    headers=(IDEMPOTENCY_KEY,),
    path_params=(HOLD_ID,),
    ok={
        201: Answer(out.CheckoutAnswer, "Paid; the order follows", headers=(REPLAYED,)),
    },
    errors=(
        *HOLD_REFUSALS,
        CheckoutErrorCode.PAYMENT_REFUNDED,
        CatalogErrorCode.DEAL_ENDED,
        CheckoutErrorCode.REQUEST_IN_PROGRESS,
        CheckoutErrorCode.IDEMPOTENCY_KEY_REQUIRED,
        CheckoutErrorCode.IDEMPOTENCY_KEY_REUSED,
        CheckoutErrorCode.INVALID_CARD,
        # Stored like a success: a retry with the key gets it again.
        CheckoutErrorCode.CARD_DECLINED,
        CheckoutErrorCode.INSUFFICIENT_FUNDS,
    ),
)
async def checkout(request: Request) -> Response:
    raw = await read_body(request)
    body = parse(CheckoutIn, raw)
    hold_id = request.path_params["hold_id"]
    return await _idempotent(
        request, raw, lambda svc, buyer, key: _checkout_once(svc, hold_id, buyer, body, key)
    )


@api.route(
    "POST",
    "/api/cart/pay",
    "Pay for several holds at once (a cart across shops): one charge and one order per hold",
    body=CartPayIn,
    auth="viewer",
    tag="checkout",
    headers=(IDEMPOTENCY_KEY,),
    ok={
        201: Answer(out.CartPayAnswer, "Every hold paid; the orders follow", headers=(REPLAYED,)),
    },
    errors=(
        *HOLD_REFUSALS,
        CheckoutErrorCode.PAYMENT_REFUNDED,
        CatalogErrorCode.DEAL_ENDED,
        CheckoutErrorCode.REQUEST_IN_PROGRESS,
        CheckoutErrorCode.IDEMPOTENCY_KEY_REQUIRED,
        CheckoutErrorCode.IDEMPOTENCY_KEY_REUSED,
        CheckoutErrorCode.INVALID_CARD,
        CheckoutErrorCode.CARD_DECLINED,
        CheckoutErrorCode.INSUFFICIENT_FUNDS,
    ),
)
async def pay_holds(request: Request) -> Response:
    raw = await read_body(request)
    body = parse(CartPayIn, raw)
    if len(set(body.holds)) != len(body.holds):
        raise Invalid("Name each hold once.", code=CommonErrorCode.INVALID_REQUEST)
    return await _idempotent(
        request, raw, lambda svc, buyer, key: _pay_holds_once(svc, buyer, body, key)
    )


async def _idempotent(
    request: Request,
    raw: bytes,
    once: Callable[[Services, str, str], Awaitable[StoredResponse]],
) -> Response:
    """Run ``once`` at most once per buyer and Idempotency-Key: a retry with the key and the
    same body gets the stored answer; a run that raised stored nothing (the key is free)."""
    svc = services(request)
    buyer = viewer(request)
    key = request.headers.get("idempotency-key", "")
    if not (1 <= len(key) <= 128) or not key.isprintable():
        raise Invalid(
            "Send an Idempotency-Key header (1-128 printable characters).",
            code=CheckoutErrorCode.IDEMPOTENCY_KEY_REQUIRED,
        )
    digest = body_hash(request.method, request.url.path, raw)
    claim = await svc.idempotency.begin(buyer, key, digest)
    if isinstance(claim, StoredResponse):
        return Response(
            claim.body,
            status_code=claim.status,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        async with svc.idempotency.held(claim):
            response = await once(svc, buyer, key)
    except BaseException:
        await svc.idempotency.abandon(claim)
        raise
    await svc.idempotency.finish(claim, digest, response)
    return Response(response.body, status_code=response.status, media_type="application/json")


async def _pay_holds_once(svc: Services, buyer: str, body: CartPayIn, key: str) -> StoredResponse:
    """Pay the holds one after another, each as its own checkout under this key (decision
    0030). A refusal before anything was paid is the answer as for one hold; once a hold is
    paid, a refusal is stored with what was paid and what was not, since money has moved."""
    paid: list[dict[str, Any]] = []
    for i, hold_id in enumerate(body.holds):
        try:
            order = await _pay(svc, hold_id, buyer, body, key)
            paid.append(order)
            deal_id = deal_id_of_hold(hold_id)
            if deal_id is not None:  # a cart's deal item: bought, out of the cart
                await _take_deal_out(svc, buyer, deal_id, order["qty"])
        except DomainError as err:
            svc.metrics.checkouts.labels(result=err.code).inc()
            if not paid and not isinstance(err, PaymentFailed):
                raise  # nothing was charged: the key is released for a retry
            details = {**err.details, "paid": paid, "unpaid": body.holds[i:]}
            failed = error_response(status_of(err), err.code, err.message, details)
            return StoredResponse(status=failed.status_code, body=bytes(failed.body))
    return StoredResponse(status=201, body=orjson.dumps({"orders": paid}))


async def _take_deal_out(svc: Services, buyer: str, deal_id: int, qty: int) -> None:
    try:
        await CartStore(svc.redis, svc.keys).take_out_deal(buyer, deal_id, qty)
    except Exception:  # best effort: the sale stands whatever happens here
        log.warning("could not take deal %s out of the cart", deal_id, exc_info=True)


async def _checkout_once(
    svc: Services, hold_id: str, buyer: str, body: CheckoutIn, key: str
) -> StoredResponse:
    try:
        order = await _pay(svc, hold_id, buyer, body, key)
    except PaymentFailed as err:
        # A decline is an outcome of this key: a replay gets the same answer, no new charge.
        svc.metrics.checkouts.labels(result=err.code).inc()
        failed = error_response(status_of(err), err.code, err.message, err.details)
        return StoredResponse(status=failed.status_code, body=bytes(failed.body))
    except DomainError as err:
        # Nothing was charged (a missing, foreign or lapsed hold, an unknown card): the key is
        # released so the buyer may retry with it.
        svc.metrics.checkouts.labels(result=err.code).inc()
        raise
    return StoredResponse(status=201, body=orjson.dumps({"order": order}))


async def _pay(
    svc: Services, hold_id: str, buyer: str, body: CheckoutIn, key: str
) -> dict[str, Any]:
    """Pay for one hold (``pay_for_hold``) and tell the buyer's room; the paid order."""
    receipt = await pay_for_hold(
        svc.till,
        hold_id=hold_id,
        buyer=buyer,
        card=body.card,
        attempt_key=key,
        shipping=orjson.dumps(body.shipping.model_dump()).decode() if body.shipping else "",
    )
    svc.metrics.checkouts.labels(result="paid").inc()
    await _tell_room(svc, hold_id, buyer, {"type": "hold.sold", "hold_id": hold_id})
    order: dict[str, Any] = {
        "hold_id": receipt.hold_id,
        "status": "paid",
        "qty": receipt.qty,
        "unit_price": receipt.unit_price,
        "amount": receipt.amount,
        "currency": receipt.currency,
        "payment_ref": receipt.payment_ref,
    }
    if receipt.lines:
        order["lines"] = [line.json() for line in receipt.lines]
        # Bought: out of the cart (best effort: the sale stands whatever happens here).
        bought = {line.sku_id: line.qty for line in receipt.lines}
        try:
            await CartStore(svc.redis, svc.keys).take_out(buyer, bought)
        except Exception:
            log.warning("could not take hold %s's items out of the cart", hold_id, exc_info=True)
    return order
