"""Giveaways over HTTP (decision 0032): a creator opens one in a live room, viewers enter with
one tap, anyone reads it and, once drawn, its entries to recompute the draw. The draw and what
follows are the room sweep's (live/giveaways.py)."""

from __future__ import annotations

import contextlib

from starlette.requests import Request
from starlette.responses import Response

from catalog.error_codes import CatalogErrorCode
from checkout.error_codes import CheckoutErrorCode
from kernel.errors import Conflict, DomainError, NotFound
from live import service as live_service
from live.error_codes import LiveErrorCode
from live.giveaway_rules import Eligibility, GiveawayState, GiveawayTerms, entries_hash
from people.roles import Duty
from web import responses as out
from web.auth import seller, viewer, viewer_and_kind
from web.http import JSONResponse, json_body
from web.routing import Api
from web.schemas import GiveawayIn
from web.services import services

api = Api()


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/giveaways",
    "Give one unit of a SKU in the bag away",
    body=GiveawayIn,
    auth="seller",
    duty=Duty.LIVE,
    tag="giveaways",
    ok={201: out.GiveawayAnswer},
    errors=(
        LiveErrorCode.ROOM_NOT_FOUND,
        LiveErrorCode.ROOM_NOT_LIVE,
        LiveErrorCode.ROOM_ENDED,
        LiveErrorCode.SKU_NOT_IN_BAG,
        LiveErrorCode.INVALID_GIVEAWAY,
        CatalogErrorCode.SKU_NOT_FOUND,
        CatalogErrorCode.PRODUCT_ARCHIVED,
        CatalogErrorCode.STOCK_UNAVAILABLE,
    ),
)
async def open_giveaway(request: Request) -> Response:
    svc = services(request)
    me = await seller(request)
    room_id: int = request.path_params["room_id"]
    body = await json_body(request, GiveawayIn)
    terms = GiveawayTerms(
        sku_id=body.sku_id,
        duration_s=body.duration_s,
        eligibility=Eligibility(body.eligibility),
        min_watch_min=body.min_watch_min,
        accounts_only=body.accounts_only,
    )
    async with svc.db.session() as session:
        await live_service.owned_room(session, me, room_id)
        giveaway = await svc.giveaways.open(session, me, room_id, terms)
    return JSONResponse({"giveaway": giveaway}, status_code=201)


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/giveaways/{giveaway_id:id}/close",
    "End the entries now and draw",
    auth="seller",
    duty=Duty.LIVE,
    tag="giveaways",
    ok={200: out.GiveawayAnswer},
    errors=(LiveErrorCode.ROOM_NOT_FOUND, LiveErrorCode.GIVEAWAY_NOT_FOUND),
)
async def close_giveaway(request: Request) -> Response:
    svc = services(request)
    me = await seller(request)
    room_id, giveaway_id = request.path_params["room_id"], request.path_params["giveaway_id"]
    async with svc.db.session() as session:
        await live_service.owned_room(session, me, room_id)
    await svc.giveaways.close(room_id, giveaway_id)
    found = await svc.giveaways.view(room_id, giveaway_id)
    assert found is not None
    return JSONResponse({"giveaway": found})


@api.route(
    "GET",
    "/api/rooms/{room_id:id}/giveaways/{giveaway_id:id}",
    "A giveaway (its winner also sees the prize's hold)",
    tag="giveaways",
    ok={200: out.GiveawayAnswer},
    errors=(LiveErrorCode.GIVEAWAY_NOT_FOUND,),
)
async def get_giveaway(request: Request) -> Response:
    svc = services(request)
    user = ""
    if "authorization" in request.headers:
        with contextlib.suppress(DomainError):
            user = viewer(request)
    found = await svc.giveaways.view(
        request.path_params["room_id"], request.path_params["giveaway_id"], user
    )
    if found is None:
        raise NotFound("No such giveaway.", code=LiveErrorCode.GIVEAWAY_NOT_FOUND)
    return JSONResponse({"giveaway": found})


@api.route(
    "GET",
    "/api/rooms/{room_id:id}/giveaways/{giveaway_id:id}/entries",
    "A drawn giveaway's entries, to recompute the draw",
    tag="giveaways",
    ok={200: out.Entries},
    errors=(LiveErrorCode.GIVEAWAY_NOT_FOUND, LiveErrorCode.GIVEAWAY_OPEN),
)
async def giveaway_entries(request: Request) -> Response:
    svc = services(request)
    room_id, giveaway_id = request.path_params["room_id"], request.path_params["giveaway_id"]
    found = await svc.giveaways.view(room_id, giveaway_id)
    if found is None:
        raise NotFound("No such giveaway.", code=LiveErrorCode.GIVEAWAY_NOT_FOUND)
    if found["state"] == GiveawayState.OPEN:
        raise Conflict("The entries are published with the draw.", code=LiveErrorCode.GIVEAWAY_OPEN)
    entries = await svc.giveaways.entries(room_id, giveaway_id)
    return JSONResponse({"entries": entries, "entries_hash": entries_hash(entries)})


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/giveaways/{giveaway_id:id}/entries",
    "Enter a giveaway (once; entering again changes nothing)",
    auth="viewer",
    tag="giveaways",
    ok={200: out.Entered},
    errors=(
        LiveErrorCode.GIVEAWAY_NOT_FOUND,
        LiveErrorCode.GIVEAWAY_CLOSED,
        LiveErrorCode.NOT_ELIGIBLE,
        LiveErrorCode.BANNED,
        CheckoutErrorCode.ACCOUNT_REQUIRED,
    ),
)
async def enter(request: Request) -> Response:
    svc = services(request)
    user, account = viewer_and_kind(request)
    count = await svc.giveaways.enter(
        request.path_params["room_id"], request.path_params["giveaway_id"], user, account
    )
    return JSONResponse({"entries": count})
