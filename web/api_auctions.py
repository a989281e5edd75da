"""Auctions over HTTP (decision 0031): a creator opens one in a live room; viewers bid (the
websocket's ``bid`` does the same); anyone reads it. The close, the award and what follows are
the room sweep's (live/auctions.py)."""

from __future__ import annotations

import contextlib

from starlette.requests import Request
from starlette.responses import Response

from catalog.error_codes import CatalogErrorCode
from checkout.error_codes import CheckoutErrorCode
from kernel.errors import DomainError, NotFound
from live import service as live_service
from live.auction_rules import DEFAULT_INCREMENTS, AuctionMode, AuctionTerms
from live.error_codes import LiveErrorCode
from people.roles import Duty
from web import responses as out
from web.auth import public_name, seller, viewer, viewer_and_kind
from web.http import JSONResponse, json_body
from web.routing import Answer, Api
from web.schemas import AuctionIn, BidIn, WaitIn
from web.services import services

api = Api()


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/auctions",
    "Auction one unit of a SKU in the bag",
    body=AuctionIn,
    auth="seller",
    duty=Duty.LIVE,
    tag="auctions",
    ok={201: out.AuctionAnswer},
    errors=(
        LiveErrorCode.ROOM_NOT_FOUND,
        LiveErrorCode.ROOM_NOT_LIVE,
        LiveErrorCode.ROOM_ENDED,
        LiveErrorCode.SKU_NOT_IN_BAG,
        LiveErrorCode.INVALID_AUCTION,
        CatalogErrorCode.SKU_NOT_FOUND,
        CatalogErrorCode.PRODUCT_ARCHIVED,
        CatalogErrorCode.STOCK_UNAVAILABLE,
    ),
)
async def open_auction(request: Request) -> Response:
    svc = services(request)
    me = await seller(request)
    room_id: int = request.path_params["room_id"]
    body = await json_body(request, AuctionIn)
    terms = AuctionTerms(
        sku_id=body.sku_id,
        start_price=body.start_price,
        duration_s=body.duration_s,
        mode=AuctionMode(body.mode),
        snipe_s=body.snipe_s,
        reserve_price=body.reserve_price,
        buy_now_price=body.buy_now_price,
        increments=tuple(body.increments) if body.increments else DEFAULT_INCREMENTS,
        second_chance=body.second_chance,
        card_required=body.card_required,
        accounts_only=body.accounts_only,
        relists=body.relists,
    )
    async with svc.db.session() as session:
        await live_service.owned_room(session, me, room_id)
        auction = await svc.auctions.open(session, me, room_id, terms)
    return JSONResponse({"auction": auction}, status_code=201)


@api.route(
    "GET",
    "/api/rooms/{room_id:id}/auctions/{auction_id:id}",
    "An auction (its winner also sees the hold to pay)",
    tag="auctions",
    ok={200: out.AuctionAnswer},
    errors=(LiveErrorCode.AUCTION_NOT_FOUND,),
)
async def get_auction(request: Request) -> Response:
    svc = services(request)
    user = ""
    if "authorization" in request.headers:  # a viewer's session: the winner sees their hold
        with contextlib.suppress(DomainError):
            user = viewer(request)
    found = await svc.auctions.view(
        request.path_params["room_id"], request.path_params["auction_id"], user
    )
    if found is None:
        raise NotFound("No such auction.", code=LiveErrorCode.AUCTION_NOT_FOUND)
    return JSONResponse({"auction": found})


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/auctions/{auction_id:id}/bids",
    "Bid: the most you will pay (or buy it now)",
    body=BidIn,
    auth="viewer",
    tag="auctions",
    ok={201: out.BidAnswer},
    errors=(
        LiveErrorCode.AUCTION_NOT_FOUND,
        LiveErrorCode.AUCTION_CLOSED,
        LiveErrorCode.ROOM_NOT_FOUND,
        LiveErrorCode.ROOM_NOT_LIVE,
        LiveErrorCode.BID_TOO_LOW,
        LiveErrorCode.BID_NOT_HIGHER,
        LiveErrorCode.SHILL_BID,
        LiveErrorCode.MUTED,
        LiveErrorCode.BANNED,
        LiveErrorCode.PAYMENT_METHOD_REQUIRED,
        CheckoutErrorCode.ACCOUNT_REQUIRED,
        LiveErrorCode.NO_BUY_NOW,
        LiveErrorCode.BUY_NOW_GONE,
    ),
)
async def bid(request: Request) -> Response:
    svc = services(request)
    user, account = viewer_and_kind(request)
    body = await json_body(request, BidIn)
    accepted = await svc.auctions.bid(
        request.path_params["room_id"],
        request.path_params["auction_id"],
        user,
        await public_name(request, request.path_params["room_id"]),
        body.amount,
        body.buy_now,
        account,
    )
    return JSONResponse({"bid": accepted.json()}, status_code=201)


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/auctions/{auction_id:id}/waitlist",
    "Wait for the lot: offered at the hammer price if the winner does not pay",
    body=WaitIn,
    auth="viewer",
    tag="auctions",
    ok={200: out.WaitlistAnswer},
    errors=(
        LiveErrorCode.AUCTION_NOT_FOUND,
        LiveErrorCode.AUCTION_CLOSED,
        LiveErrorCode.ROOM_NOT_LIVE,
        LiveErrorCode.SHILL_BID,
        LiveErrorCode.MUTED,
        LiveErrorCode.BANNED,
        LiveErrorCode.PAYMENT_METHOD_REQUIRED,
        CheckoutErrorCode.ACCOUNT_REQUIRED,
        LiveErrorCode.UNPAID_WIN,
        CheckoutErrorCode.NOT_SOLD_OUT,
    ),
)
async def wait_for_lot(request: Request) -> Response:
    svc = services(request)
    user, account = viewer_and_kind(request)
    await json_body(request, WaitIn)  # checked as before; the name shown is public_name's
    place = await svc.auctions.wait(
        request.path_params["room_id"],
        request.path_params["auction_id"],
        user,
        await public_name(request, request.path_params["room_id"]),
        account,
    )
    return JSONResponse({"waitlist": place})


@api.route(
    "DELETE",
    "/api/rooms/{room_id:id}/auctions/{auction_id:id}/waitlist",
    "Leave the lot's waitlist",
    auth="viewer",
    tag="auctions",
    ok={204: Answer(description="Off the waitlist (or never on it)")},
)
async def leave_lot_waitlist(request: Request) -> Response:
    svc = services(request)
    await svc.auctions.unwait(
        request.path_params["room_id"], request.path_params["auction_id"], viewer(request)
    )
    return Response(status_code=204)
