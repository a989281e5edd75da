"""A sold-out flash deal's waitlist over HTTP: join, see your place, leave. A unit that comes
back (a hold lapsed or released, an order cancelled or refunded) goes to the first waiting as a
hold of their own, inside the deal's Redis Function that returned it (checkout/lua/holds.lua)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from catalog.error_codes import CatalogErrorCode
from checkout.error_codes import CheckoutErrorCode
from kernel.clock import now_ms
from web import responses as out
from web.auth import viewer
from web.http import JSONResponse
from web.routing import Answer, Api
from web.services import services

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
        CheckoutErrorCode.AUCTION_LOT,
    ),
)
async def join(request: Request) -> Response:
    svc = services(request)
    buyer = viewer(request)
    deal_id: int = request.path_params["deal_id"]
    await svc.holds.join_waitlist(deal_id, buyer)
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
