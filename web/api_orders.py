"""Orders: buyers see their own, sellers see and move their shops' orders."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from catalog import service
from catalog.models import Seller
from checkout import bulk_ship, deadlines, order_store
from checkout.bulk_ship import Shipment
from checkout.error_codes import CheckoutErrorCode
from checkout.keys import is_hold_id
from checkout.models import Order, OrderEvent
from checkout.order_store import ItemLine, OrderSort
from checkout.orders import ACTIONS, OrderStatus
from checkout.shelf import Line
from kernel.clock import now_ms
from kernel.errors import Invalid, NotFound
from people.roles import Duty
from web import responses as out
from web.api_checkout import HOLD_ID
from web.auth import as_seller, seller, viewer
from web.error_codes import WebErrorCode
from web.http import JSONResponse, json_body
from web.return_views import with_requests
from web.routing import Api, Param
from web.schemas import OrderActionIn, ShipmentsIn
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
# The moves this module makes; cancel and refund are web/api_refunds.py's (registered first, so
# they never reach the generic route).
MONEY_MOVES = frozenset({"cancel", "refund"})
MOVES = frozenset(ACTIONS) - MONEY_MOVES
ORDER_SORTS = frozenset(s.value for s in OrderSort)


def _sort(request: Request) -> OrderSort:
    sort = request.query_params.get("sort", OrderSort.NEWEST.value)
    if sort not in ORDER_SORTS:
        raise Invalid(
            "Unknown order sort.", code=WebErrorCode.INVALID_SORT, allowed=sorted(ORDER_SORTS)
        )
    return OrderSort(sort)


def _line_json(line: Line, item: ItemLine | None) -> dict[str, Any]:
    body: dict[str, Any] = line.json()
    if item is not None:
        body.update(title=item.title, variant=item.variant)
        if item.image is not None:  # left out when the product has no picture, never null
            body["image"] = item.image
    return body


def order_json(
    order: Order,
    events: list[OrderEvent] | None = None,
    line: ItemLine | None = None,
    *,
    lines: list[Line] | None = None,
    items: dict[int, ItemLine] | None = None,
    now: int | None = None,
    closed_ms: int | None = None,
) -> dict[str, Any]:
    """The order as the API shows it. ``late`` is judged at ``now`` (the clock when not given);
    for an order cancelled or refunded before it shipped it needs when that happened:
    ``closed_ms`` (``order_store.closed_unshipped``), else read from ``events`` when given."""
    if closed_ms is None and events is not None:
        closed_ms = deadlines.closed_unshipped_ms(events)
    late = deadlines.is_late(order, now_ms() if now is None else now, closed_ms)
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
        "ship_by_ms": order.ship_by_ms,
        "ship_limit_ms": order.ship_limit_ms,
        "shipped_ms": order.shipped_ms,
        "deliver_by_ms": order.deliver_by_ms,
        "delivered_ms": order.delivered_ms,
        "late": late,
        "refunded": order.refunded,
        "restocked_units": order.restocked_units,
        "discount": order.discount,
        "shipping_fee": order.shipping_fee,
        "shipping_discount": order.shipping_discount,
        "voucher": order.voucher or None,
        "voucher_discount": order.voucher_discount,
    }
    if line is not None:
        body["item"] = {"title": line.title, "variant": line.variant, "image": line.image}
    if lines:
        body["lines"] = [
            _line_json(shelf_line, (items or {}).get(shelf_line.sku_id)) for shelf_line in lines
        ]
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
    "Your orders: a buyer's own, or a seller's shops' (?status= and ?sort= for sellers)",
    auth=("viewer", "seller"),
    duty=(Duty.ORDERS, Duty.MONEY),
    tag="orders",
    query=(
        Param(
            "status",
            "Sellers: only orders in this status (buyers: ignored)",
            {"enum": sorted(ORDER_STATUSES)},
        ),
        Param(
            "sort",
            "Sellers: newest (the default: newest first) or ship_by (the most urgent first: "
            "the earliest ship-by time; orders without one last). Buyers: ignored",
            {"enum": sorted(ORDER_SORTS)},
        ),
    ),
    ok={200: out.OrderList},
    errors=(WebErrorCode.INVALID_STATUS, WebErrorCode.INVALID_SORT),
)
async def list_orders(request: Request) -> Response:
    svc = services(request)
    if as_seller(request):
        me = await seller(request)
        status, sort = _status_filter(request), _sort(request)
        shop_ids = await _shop_ids(request, me)
        async with svc.db.session() as session:
            orders = await order_store.orders_of_shops(session, shop_ids, status, sort)
    else:
        buyer = viewer(request)
        async with svc.db.session() as session:
            orders = await order_store.orders_of_buyer(session, buyer)
    async with svc.db.session() as session:
        closed = await order_store.closed_unshipped(session, orders)
        bought = await order_store.lines_of(
            session, [o.id or 0 for o in orders if o.deal_id is None]
        )
        skus = {o.sku_id for o in orders} | {x.sku_id for found in bought.values() for x in found}
        lines = await order_store.item_lines(session, sorted(skus))
    now = now_ms()
    bodies = [
        order_json(
            o,
            line=lines.get(o.sku_id),
            lines=bought.get(o.id or 0),
            items=lines,
            now=now,
            closed_ms=closed.get(o.id or 0),
        )
        for o in orders
    ]
    if not as_seller(request):  # a buyer sees where their requests stand
        bodies = await with_requests(svc.db, orders, bodies)
    return JSONResponse({"orders": bodies})


@api.route(
    "GET",
    "/api/orders/by-hold/{hold_id}",
    "Your order for a hold, once persisted, with its open or newest request",
    auth="viewer",
    tag="orders",
    path_params=(HOLD_ID,),
    ok={200: out.OrderAnswer},
    errors=(CheckoutErrorCode.ORDER_NOT_FOUND,),
)
async def order_by_hold(request: Request) -> Response:
    svc = services(request)
    buyer = viewer(request)
    if not is_hold_id(request.path_params["hold_id"]):
        raise NotFound("No such order among yours.", code=CheckoutErrorCode.ORDER_NOT_FOUND)
    async with svc.db.session() as session:
        order = await order_store.order_for_buyer(session, request.path_params["hold_id"], buyer)
        events = await order_store.events_of(session, order.id or 0)
        bought = await order_store.lines_of(session, [order.id or 0])
    body = order_json(order, list(events), lines=bought.get(order.id or 0))
    [body] = await with_requests(svc.db, [order], [body])
    return JSONResponse({"order": body})


@api.route(
    "GET",
    "/api/orders/{order_id:id}",
    "One of your shops' orders with its events",
    auth="seller",
    duty=(Duty.ORDERS, Duty.MONEY),
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
        bought = await order_store.lines_of(session, [order.id or 0])
    return JSONResponse({"order": order_json(order, list(events), lines=bought.get(order.id or 0))})


@api.route(
    "POST",
    "/api/orders/{order_id:id}/{action}",
    "Move an order: confirm, ship, deliver or complete (cancel and refund have routes of "
    "their own, which move money and stock)",
    body=OrderActionIn,
    body_required=False,
    auth="seller",
    duty=Duty.ORDERS,
    tag="orders",
    path_params=(Param("action", "What to do", {"enum": sorted(MOVES)}),),
    ok={200: out.OrderAnswer},
    errors=(
        CheckoutErrorCode.ORDER_NOT_FOUND,
        CheckoutErrorCode.UNKNOWN_ACTION,
        CheckoutErrorCode.INVALID_TRANSITION,
        CheckoutErrorCode.ORDER_CHANGED,
        CheckoutErrorCode.TRACKING_REQUIRED,
        CheckoutErrorCode.UNEXPECTED_TRACKING,
        CheckoutErrorCode.CANCEL_REQUESTED,
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
            deliver_within_ms=services(request).money.deliver_within_ms,
        )
        events = await order_store.events_of(session, order.id or 0)
    if order.status == OrderStatus.DELIVERED:
        services(request).crash.reach("delivery.after_commit")
    return JSONResponse({"order": order_json(order, list(events))})


@api.route(
    "POST",
    "/api/orders/ship",
    "Ship several of your shops' orders at once, each on its own",
    body=ShipmentsIn,
    auth="seller",
    duty=Duty.ORDERS,
    tag="orders",
    ok={200: out.ShipmentsAnswer},
    errors=(CheckoutErrorCode.TOO_MANY_SHIPMENTS,),
)
async def ship_orders(request: Request) -> Response:
    """Each shipment is one order's ship (a paid order is confirmed on the way), applied in
    order in its own transaction: the answer says per shipment whether it shipped or what
    refused it, and the good ones ship whatever the others do."""
    me = await seller(request)
    body = await json_body(request, ShipmentsIn)
    bulk_ship.check_count(len(body.shipments))
    svc = services(request)
    shipments = [Shipment(s.order_id, s.carrier, s.tracking_number) for s in body.shipments]
    outcomes = await bulk_ship.ship_all(
        svc.db,
        shipments,
        await _shop_ids(request, me),
        f"seller:{me.id}",
        svc.money.deliver_within_ms,
    )
    now = now_ms()
    results = []
    for index, outcome in enumerate(outcomes):
        result: dict[str, Any] = {
            "index": index,
            "order_id": outcome.shipment.order_id,
            "shipped": outcome.order is not None,
        }
        if outcome.order is not None:
            result["order"] = order_json(outcome.order, now=now)
        elif outcome.error is not None:
            err = outcome.error
            result["error"] = {"code": err.code, "message": err.message, "details": err.details}
        results.append(result)
    shipped = sum(r["shipped"] for r in results)
    return JSONResponse({"shipped": shipped, "failed": len(results) - shipped, "results": results})
