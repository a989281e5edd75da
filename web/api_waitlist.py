"""Waitlists over HTTP: join, see your place, leave. A sold-out flash deal's: a unit that comes
back (a hold lapsed or released, an order cancelled or refunded) goes to the first waiting as a
hold of their own, inside the deal's Redis Function that returned it (checkout/lua/holds.lua).
A sold-out list-price SKU's: a unit that comes back (or a restock) is kept for the first waiting
until they check it out (checkout/lua/shelf.lua, decision 0036)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from catalog.error_codes import CatalogErrorCode
from checkout.error_codes import CheckoutErrorCode
from checkout.shelf_waitlist import ShelfWaitlist
from kernel.clock import now_ms
from web import responses as out
from web.auth import viewer, viewer_and_kind
from web.http import JSONResponse, json_body
from web.routing import Answer, Api
from web.schemas import SkuWaitIn
from web.services import Services, services

api = Api()


@api.route(
    "POST",
    "/api/deals/{deal_id:id}/waitlist",
    "Wait for a unit of a sold-out deal",
    auth="viewer",
    tag="checkout",
    ok={201: out.WaitlistAnswer},
    errors=(
        CatalogErrorCode.DEAL_NOT_LIVE,
        CatalogErrorCode.DEAL_ENDED,
        CheckoutErrorCode.NOT_SOLD_OUT,
        CheckoutErrorCode.LIMIT_EXCEEDED,
        CheckoutErrorCode.ACCOUNT_REQUIRED,
        CheckoutErrorCode.AUCTION_LOT,
    ),
)
async def join(request: Request) -> Response:
    svc = services(request)
    buyer, account = viewer_and_kind(request)
    deal_id: int = request.path_params["deal_id"]
    await svc.holds.join_waitlist(deal_id, buyer, account=account)
    place, waiting = await svc.holds.waitlist_place(deal_id, buyer)
    return JSONResponse({"waitlist": {"place": place, "waiting": waiting}}, status_code=201)


@api.route(
    "GET",
    "/api/deals/{deal_id:id}/waitlist",
    "Your place on a deal's waitlist (0: not waiting)",
    auth="viewer",
    tag="checkout",
    ok={200: out.WaitlistAnswer},
)
async def place(request: Request) -> Response:
    svc = services(request)
    buyer, deal_id = viewer(request), request.path_params["deal_id"]
    place, waiting = await svc.holds.waitlist_place(deal_id, buyer)
    holds = await svc.holds.live_holds_of(deal_id, buyer, now_ms())
    body = {"place": place, "waiting": waiting, "holds": [h.json() for h in holds]}
    return JSONResponse({"waitlist": body})


@api.route(
    "DELETE",
    "/api/deals/{deal_id:id}/waitlist",
    "Leave a deal's waitlist",
    auth="viewer",
    tag="checkout",
    ok={204: Answer(description="Not waiting any more")},
)
async def leave(request: Request) -> Response:
    svc = services(request)
    await svc.holds.leave_waitlist(request.path_params["deal_id"], viewer(request))
    return Response(status_code=204)


def shelf_waitlist(svc: Services) -> ShelfWaitlist:
    return ShelfWaitlist(svc.carts.shelving)


@api.route(
    "POST",
    "/api/skus/{sku_id:id}/waitlist",
    "Wait for a unit of a sold-out SKU at list price",
    body=SkuWaitIn,
    auth="viewer",
    tag="cart",
    ok={201: out.WaitlistAnswer},
    errors=(CatalogErrorCode.SKU_NOT_FOUND, CheckoutErrorCode.NOT_SOLD_OUT),
)
async def join_sku(request: Request) -> Response:
    svc = services(request)
    buyer = viewer(request)
    body = await json_body(request, SkuWaitIn)
    channel = "" if body.room_id is None else svc.rooms.channel_of(body.room_id)
    found = await shelf_waitlist(svc).join(svc.db, request.path_params["sku_id"], buyer, channel)
    return JSONResponse({"waitlist": found.json()}, status_code=201)


@api.route(
    "GET",
    "/api/skus/{sku_id:id}/waitlist",
    "Your place on a SKU's waitlist (0: not waiting) and a unit kept for you",
    auth="viewer",
    tag="cart",
    ok={200: out.WaitlistAnswer},
    errors=(CatalogErrorCode.SKU_NOT_FOUND,),
)
async def sku_place(request: Request) -> Response:
    svc = services(request)
    found = await shelf_waitlist(svc).place(svc.db, request.path_params["sku_id"], viewer(request))
    return JSONResponse({"waitlist": found.json()})


@api.route(
    "DELETE",
    "/api/skus/{sku_id:id}/waitlist",
    "Leave a SKU's waitlist",
    auth="viewer",
    tag="cart",
    ok={204: Answer(description="Not waiting any more")},
)
async def leave_sku(request: Request) -> Response:
    svc = services(request)
    await shelf_waitlist(svc).leave(svc.db, request.path_params["sku_id"], viewer(request))
    return Response(status_code=204)
