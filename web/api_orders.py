"""Orders: buyers see their own, sellers see and move their shops' orders."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from catalog import service
from catalog.models import Seller
from checkout import order_store
from checkout.error_codes import CheckoutErrorCode
from checkout.keys import deal_id_of_hold
from checkout.models import Order, OrderEvent
from checkout.order_store import ItemLine
from checkout.orders import ACTIONS, OrderStatus
from kernel.errors import Invalid, NotFound
from web import responses as out
from web.api_checkout import HOLD_ID
from web.auth import as_seller, seller, viewer
from web.error_codes import WebErrorCode
from web.http import JSONResponse, json_body
from web.routing import Api, Param
from web.schemas import OrderActionIn
from web.services import services

api = Api()


def _status_filter(request: Request) -> str | None:
    status = request.query_params.get("status")
    if status is not None and status not in ORDER_STATUSES:
        raise Invalid(
            "Unknown order status.",
            code=WebErrorCode.INVALID_STATUS,
            allowed=sorted(ORDER_STATUSES),
        )
    return status


ORDER_STATUSES = frozenset(s.value for s in OrderStatus)


def order_json(
    order: Order, events: list[OrderEvent] | None = None, line: ItemLine | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": order.id,
        "hold_id": order.hold_id,
        "deal_id": order.deal_id,
        "shop_id": order.shop_id,
        "sku_id": order.sku_id,
        "buyer_id": order.buyer_id,
        "quantity": order.quantity,
        "unit_price": order.unit_price,
        "total": order.total,
        "currency": order.currency,
        "status": order.status,
        "payment_ref": order.payment_ref,
        "paid_ms": order.paid_ms,
        "updated_ms": order.updated_ms,
        "shipping": order.shipping,
        "carrier": order.carrier,
        "tracking_number": order.tracking_number,
    }
    if line is not None:
        body["item"] = {"title": line.title, "variant": line.variant, "image": line.image}
    if events is not None:
        body["events"] = [
            {
                "from": e.from_status,
                "to": e.to_status,
                "at_ms": e.at_ms,
                "actor": e.actor,
                "note": e.note,
            }
            for e in events
        ]
    return body


async def _shop_ids(request: Request, me: Seller) -> list[int]:
    async with services(request).db.session() as session:
        return [s.id for s in await service.shops_of(session, me) if s.id is not None]


@api.route(
    "GET",
    "/api/orders",
    "Your orders: a buyer's own, or a seller's shops' (?status= for sellers)",
    auth=("viewer", "seller"),
    tag="orders",
    query=(
        Param(
            "status",
            "Sellers: only orders in this status (buyers: ignored)",
            {"enum": sorted(ORDER_STATUSES)},
        ),
    ),
    ok={200: out.OrderList},
    errors=(WebErrorCode.INVALID_STATUS,),
)
async def list_orders(request: Request) -> Response:
    svc = services(request)
    if as_seller(request):
        me = await seller(request)
        shop_ids = await _shop_ids(request, me)
        async with svc.db.session() as session:
            orders = await order_store.orders_of_shops(session, shop_ids, _status_filter(request))
    else:
        buyer = viewer(request)
        async with svc.db.session() as session:
            orders = await order_store.orders_of_buyer(session, buyer)
    async with svc.db.session() as session:
        lines = await order_store.item_lines(session, [o.sku_id for o in orders])
    return JSONResponse({"orders": [order_json(o, line=lines.get(o.sku_id)) for o in orders]})


@api.route(
    "GET",
    "/api/orders/by-hold/{hold_id}",
    "Your order for a hold, once persisted",
    auth="viewer",
    tag="orders",
    path_params=(HOLD_ID,),
    ok={200: out.OrderAnswer},
    errors=(CheckoutErrorCode.ORDER_NOT_FOUND,),
)
async def order_by_hold(request: Request) -> Response:
    svc = services(request)
    buyer = viewer(request)
    if deal_id_of_hold(request.path_params["hold_id"]) is None:
        raise NotFound("No such order among yours.", code=CheckoutErrorCode.ORDER_NOT_FOUND)
    async with svc.db.session() as session:
        order = await order_store.order_for_buyer(session, request.path_params["hold_id"], buyer)
        events = await order_store.events_of(session, order.id or 0)
    return JSONResponse({"order": order_json(order, list(events))})


@api.route(
    "GET",
    "/api/orders/{order_id:id}",
    "One of your shops' orders with its events",
    auth="seller",
    tag="orders",
    ok={200: out.OrderAnswer},
    errors=(CheckoutErrorCode.ORDER_NOT_FOUND,),
)
async def get_order(request: Request) -> Response:
    me = await seller(request)
    shop_ids = await _shop_ids(request, me)
    async with services(request).db.session() as session:
        order = await order_store.order_for_shops(
            session, request.path_params["order_id"], shop_ids
        )
        events = await order_store.events_of(session, order.id or 0)
    return JSONResponse({"order": order_json(order, list(events))})


@api.route(
    "POST",
    "/api/orders/{order_id:id}/{action}",
    "Move an order: confirm, ship, deliver, complete, cancel or refund",
    body=OrderActionIn,
    body_required=False,
    auth="seller",
    tag="orders",
    path_params=(Param("action", "What to do", {"enum": sorted(ACTIONS)}),),
    ok={200: out.OrderAnswer},
    errors=(
        CheckoutErrorCode.ORDER_NOT_FOUND,
        CheckoutErrorCode.UNKNOWN_ACTION,
        CheckoutErrorCode.INVALID_TRANSITION,
        CheckoutErrorCode.ORDER_CHANGED,
        CheckoutErrorCode.TRACKING_REQUIRED,
        CheckoutErrorCode.UNEXPECTED_TRACKING,
    ),
)
async def order_action(request: Request) -> Response:
    me = await seller(request)
    body = OrderActionIn()
    if request.headers.get("content-length", "0") not in ("", "0"):
        body = await json_body(request, OrderActionIn)
    shop_ids = await _shop_ids(request, me)
    async with services(request).db.session() as session:
        order = await order_store.order_for_shops(
            session, request.path_params["order_id"], shop_ids
        )
        order = await order_store.transition(
            session,
            order,
            request.path_params["action"],
            actor=f"seller:{me.id}",
            note=body.note,
            carrier=body.carrier,
            tracking_number=body.tracking_number,
        )
        events = await order_store.events_of(session, order.id or 0)
    return JSONResponse({"order": order_json(order, list(events))})
