"""Buyers' requests to cancel, be refunded or return goods, and their sellers' answers
(docs/money.md, decision 0027 section 4): the buyer asks on their order (by its hold id) and
accepts or declines an offer, withdraws, ships goods back; the seller lists their shops'
requests and approves, rejects, offers less, confirms receipt. Money moves as
checkout/return_store.py says."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from catalog import service
from checkout import return_store
from checkout.error_codes import CheckoutErrorCode
from checkout.keys import is_hold_id
from checkout.models import ReturnRequest
from checkout.return_states import ReturnStatus
from checkout.returns import RequestAsk
from kernel.errors import Invalid, NotFound
from people.roles import Duty
from web import responses as out
from web.api_checkout import HOLD_ID
from web.api_orders import order_json
from web.auth import as_seller, seller, viewer
from web.error_codes import WebErrorCode
from web.http import JSONResponse, json_body, parse, read_body
from web.return_views import request_json, request_windows
from web.routing import Api, Param
from web.schemas import OfferIn, ReceiveIn, RejectIn, ReturnRequestIn, ShipBackIn
from web.services import services

api = Api()

REQUEST_STATUSES = frozenset(s.value for s in ReturnStatus)
# What a move that refunds (approving a cancellation or refund only, accepting an offer,
# receiving a return) can meet when the order can no longer take it.
MONEY_REFUSALS = (
    CheckoutErrorCode.ORDER_NOT_REFUNDABLE,
    CheckoutErrorCode.REFUND_EXCEEDS_PAID,
    CheckoutErrorCode.ORDER_CHANGED,
)
MOVE_REFUSALS = (CheckoutErrorCode.REQUEST_NOT_FOUND, CheckoutErrorCode.INVALID_TRANSITION)


async def _answer(request: Request, found: ReturnRequest, status: int = 200) -> Response:
    """The request with its events, and its order as it is now."""
    db = services(request).db
    order = await return_store.order_of(db, found)
    events = await return_store.events_of(db, found.id or 0)
    return JSONResponse(
        {"request": request_json(found, order.currency, events), "order": order_json(order)},
        status_code=status,
    )


async def _buyers(request: Request) -> tuple[ReturnRequest, str]:
    buyer = viewer(request)
    found = await return_store.of_buyer(
        services(request).db, request.path_params["request_id"], buyer
    )
    return found, f"buyer:{buyer}"


async def _sellers(request: Request) -> tuple[ReturnRequest, str]:
    me = await seller(request)
    found = await return_store.of_shops(
        services(request).db, request.path_params["request_id"], await _shop_ids(request)
    )
    return found, f"seller:{me.id}"


async def _shop_ids(request: Request) -> list[int]:
    me = await seller(request)
    async with services(request).db.session() as session:
        return [s.id for s in await service.shops_of(session, me) if s.id is not None]


def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") not in ("", "0")


# -- the buyer ----------------------------------------------------------------------------------


@api.route(
    "POST",
    "/api/orders/by-hold/{hold_id}/requests",
    "Ask to cancel your order (before it ships), or for a refund or a return (once delivered, "
    "within the return window); one open request per order",
    body=ReturnRequestIn,
    auth="viewer",
    tag="returns",
    path_params=(HOLD_ID,),
    ok={201: out.RequestAnswer},
    errors=(
        CheckoutErrorCode.ORDER_NOT_FOUND,
        CheckoutErrorCode.RETURN_OPEN,
        CheckoutErrorCode.RETURN_WINDOW_CLOSED,
        CheckoutErrorCode.INVALID_TRANSITION,
        CheckoutErrorCode.ORDER_NOT_REFUNDABLE,
        CheckoutErrorCode.REFUND_EXCEEDS_PAID,
        CheckoutErrorCode.ORDER_CHANGED,
        CheckoutErrorCode.INVALID_REASON,
        CheckoutErrorCode.INVALID_PHOTOS,
        CheckoutErrorCode.INVALID_UNITS,
        CheckoutErrorCode.INVALID_AMOUNT,
    ),
)
async def create_request(request: Request) -> Response:
    buyer = viewer(request)
    hold_id: str = request.path_params["hold_id"]
    if not is_hold_id(hold_id):
        raise NotFound("No such order among yours.", code=CheckoutErrorCode.ORDER_NOT_FOUND)
    body = await json_body(request, ReturnRequestIn)
    svc = services(request)
    ask = RequestAsk(
        kind=body.kind.value,
        reason=body.reason,
        note=body.note,
        photos=tuple(body.photos),
        units=body.units,
        amount=body.amount,
    )
    window_ms = request_windows(svc.settings).return_window_ms
    made = await return_store.create(svc.db, hold_id, buyer, ask, window_ms)
    return await _answer(request, made, status=201)


@api.route(
    "POST",
    "/api/requests/{request_id:id}/accept",
    "Accept the seller's offer: it becomes the refund (a refund only is refunded now; a return "
    "waits for the goods)",
    auth="viewer",
    tag="returns",
    ok={200: out.RequestAnswer},
    errors=(*MOVE_REFUSALS, *MONEY_REFUSALS),
)
async def accept_offer(request: Request) -> Response:
    found, actor = await _buyers(request)
    svc = services(request)
    return await _answer(request, await return_store.accept(svc.db, svc.refunds, found, actor))


@api.route(
    "POST",
    "/api/requests/{request_id:id}/decline",
    "Decline the seller's offer: the request waits for the seller's answer again",
    auth="viewer",
    tag="returns",
    ok={200: out.RequestAnswer},
    errors=MOVE_REFUSALS,
)
async def decline_offer(request: Request) -> Response:
    found, actor = await _buyers(request)
    return await _answer(request, await return_store.decline(services(request).db, found, actor))


@api.route(
    "POST",
    "/api/requests/{request_id:id}/withdraw",
    "Withdraw your request while the seller has not answered it",
    auth="viewer",
    tag="returns",
    ok={200: out.RequestAnswer},
    errors=MOVE_REFUSALS,
)
async def withdraw_request(request: Request) -> Response:
    found, actor = await _buyers(request)
    return await _answer(request, await return_store.withdraw(services(request).db, found, actor))


@api.route(
    "POST",
    "/api/requests/{request_id:id}/ship_back",
    "Say you sent an approved return back, with the carrier and tracking number",
    body=ShipBackIn,
    auth="viewer",
    tag="returns",
    ok={200: out.RequestAnswer},
    errors=(*MOVE_REFUSALS, CheckoutErrorCode.TRACKING_REQUIRED),
)
async def ship_back(request: Request) -> Response:
    found, actor = await _buyers(request)
    body = await json_body(request, ShipBackIn)
    moved = await return_store.ship_back(
        services(request).db, found, actor, body.carrier, body.tracking_number
    )
    return await _answer(request, moved)


# -- either side ---------------------------------------------------------------------------------


@api.route(
    "GET",
    "/api/requests/{request_id:id}",
    "One request with its events: a buyer's own, or one on a seller's shops' orders",
    auth=("viewer", "seller"),
    duty=(Duty.ORDERS, Duty.MONEY),
    tag="returns",
    ok={200: out.RequestAnswer},
    errors=(CheckoutErrorCode.REQUEST_NOT_FOUND,),
)
async def get_request(request: Request) -> Response:
    found = (await _sellers(request))[0] if as_seller(request) else (await _buyers(request))[0]
    return await _answer(request, found)


# -- the seller -------------------------------------------------------------------------------


@api.route(
    "GET",
    "/api/requests",
    "Your shops' buyers' requests, the newest first (?status= for one state)",
    auth="seller",
    duty=(Duty.ORDERS, Duty.MONEY),
    tag="returns",
    query=(Param("status", "Only requests in this state", {"enum": sorted(REQUEST_STATUSES)}),),
    ok={200: out.RequestList},
    errors=(WebErrorCode.INVALID_STATUS,),
)
async def list_requests(request: Request) -> Response:
    status = request.query_params.get("status")
    if status is not None and status not in REQUEST_STATUSES:
        raise Invalid(
            "Unknown request status.",
            code=WebErrorCode.INVALID_STATUS,
            allowed=sorted(REQUEST_STATUSES),
        )
    shop_ids = await _shop_ids(request)
    statuses = [status] if status else []
    found = await return_store.of_shops_in(
        services(request).db, shop_ids, statuses, newest_first=True
    )
    return JSONResponse({"requests": [request_json(r, o.currency) for r, o in found]})


@api.route(
    "POST",
    "/api/requests/{request_id:id}/approve",
    "Approve a request: a cancellation or refund only is refunded now; a return once its "
    "goods are back",
    auth="seller",
    duty=Duty.ORDERS,
    tag="returns",
    ok={200: out.RequestAnswer},
    errors=(*MOVE_REFUSALS, *MONEY_REFUSALS),
)
async def approve_request(request: Request) -> Response:
    found, actor = await _sellers(request)
    svc = services(request)
    return await _answer(request, await return_store.approve(svc.db, svc.refunds, found, actor))


@api.route(
    "POST",
    "/api/requests/{request_id:id}/reject",
    "Reject a request, saying why",
    body=RejectIn,
    auth="seller",
    duty=Duty.ORDERS,
    tag="returns",
    ok={200: out.RequestAnswer},
    errors=(*MOVE_REFUSALS, CheckoutErrorCode.INVALID_REASON),
)
async def reject_request(request: Request) -> Response:
    found, actor = await _sellers(request)
    body = await json_body(request, RejectIn)
    moved = await return_store.reject(services(request).db, found, actor, body.reason)
    return await _answer(request, moved)


@api.route(
    "POST",
    "/api/requests/{request_id:id}/offer",
    "Offer a smaller refund than asked for (refunds and returns); the buyer accepts or declines",
    body=OfferIn,
    auth="seller",
    duty=Duty.ORDERS,
    tag="returns",
    ok={200: out.RequestAnswer},
    errors=(*MOVE_REFUSALS, CheckoutErrorCode.INVALID_AMOUNT),
)
async def offer_less(request: Request) -> Response:
    found, actor = await _sellers(request)
    body = await json_body(request, OfferIn)
    moved = await return_store.offer(services(request).db, found, actor, body.amount, body.note)
    return await _answer(request, moved)


@api.route(
    "POST",
    "/api/requests/{request_id:id}/receive",
    "Confirm a return's goods came back: the buyer is refunded, and the units you choose (all "
    "returned by default) go back into stock",
    body=ReceiveIn,
    body_required=False,
    auth="seller",
    duty=Duty.ORDERS,
    tag="returns",
    ok={200: out.RequestAnswer},
    errors=(*MOVE_REFUSALS, *MONEY_REFUSALS, CheckoutErrorCode.RESTOCK_EXCEEDS_UNITS),
)
async def receive_return(request: Request) -> Response:
    found, actor = await _sellers(request)
    body = parse(ReceiveIn, await read_body(request)) if _has_body(request) else ReceiveIn()
    svc = services(request)
    moved = await return_store.receive(svc.db, svc.refunds, found, actor, body.restock)
    return await _answer(request, moved)
