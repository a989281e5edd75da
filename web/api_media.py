"""WHIP (RFC 9725) to publish a room's video and WHEP to watch it: an SDP offer in, ``201`` with
the SDP answer and the session's ``Location`` out, ``DELETE`` on that location to hang up.

Answers carry every ICE candidate (aiortc gathers them all first), so there is no trickle ICE or
ICE restart: ``PATCH`` gets ``405``. Media lives on the node that took the creator's WHIP; a
deployment routes a room's ``/whip`` and ``/whep`` to one node (docs/decisions/0010).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from catalog.errors import Conflict, Invalid, NotFound, Unauthorized
from catalog.models import Seller
from catalog.service import TOKEN_PREFIX
from live import rules
from live.media.broadcasts import Broadcasts, Session
from web.auth import GUEST_PREFIX, bearer, by_cookie, seller
from web.http import BadRequest, read_limited
from web.routing import Api
from web.services import Services, services

api = Api()
SDP = "application/sdp"


def media(request: Request) -> Broadcasts:
    found: Broadcasts = request.app.state.broadcasts
    return found


async def _offer(request: Request) -> str:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != SDP:
        raise BadRequest(
            f"Send the SDP offer with 'Content-Type: {SDP}'.",
            code="unsupported_media_type",
            status=415,
        )
    body = await read_limited(request, "offer")
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise BadRequest("The offer is not UTF-8 text.", code="invalid_sdp", status=400) from None


async def _room(svc: Services, room_id: int) -> rules.Room:
    snap = await svc.rooms.read(room_id)
    if snap is None:
        raise NotFound("No such room.", code="room_not_found", room_id=room_id)
    if snap.room["status"] == "ended":
        raise Conflict("The room has ended.", code="room_ended", room_id=room_id)
    return snap.room


async def _creator(request: Request, room: rules.Room) -> Seller:
    me = await seller(request)
    if me.id != room["seller_id"]:
        raise NotFound("No such room.", code="room_not_found", room_id=room["id"])
    return me


async def _watcher(request: Request) -> str:
    """Viewers watch with their guest session; sellers (a creator checking the feed) too."""
    if by_cookie(request):
        return f"seller-{(await seller(request)).id}"
    token = bearer(request)
    if token.startswith(GUEST_PREFIX):
        return services(request).sessions.verify(token)
    if token.startswith(TOKEN_PREFIX):
        return f"seller-{(await seller(request)).id}"
    raise Unauthorized("Send a guest session or seller token.", code="invalid_token")


def _answered(session: Session, kind: str) -> Response:
    location = f"/{kind}/{session.room_id}/{session.id}"
    return Response(session.answer, status_code=201, media_type=SDP, headers={"Location": location})


def _as_bad_request(err: Invalid) -> BadRequest:
    # WHIP and WHEP answer a bad offer with 400 (RFC 9725 section 4.2), not our usual 422.
    return BadRequest(err.message, code=err.code, status=400, **err.details)


@api.route(
    "POST",
    "/whip/{room_id:id}",
    "Publish the room's video (WHIP, SDP offer)",
    auth="seller",
    tag="media",
)
async def whip(request: Request) -> Response:
    svc = services(request)
    room_id: int = request.path_params["room_id"]
    me = await _creator(request, await _room(svc, room_id))
    offer = await _offer(request)
    try:
        session = await media(request).publish(room_id, f"seller-{me.id}", offer)
    except Invalid as err:
        raise _as_bad_request(err) from None
    return _answered(session, "whip")


@api.route(
    "POST",
    "/whep/{room_id:id}",
    "Watch the room's video (WHEP, SDP offer)",
    auth="viewer",
    tag="media",
)
async def whep(request: Request) -> Response:
    svc = services(request)
    room_id: int = request.path_params["room_id"]
    who = await _watcher(request)
    await _room(svc, room_id)
    offer = await _offer(request)
    try:
        session = await media(request).watch(room_id, who, offer)
    except Invalid as err:
        raise _as_bad_request(err) from None
    return _answered(session, "whep")


async def _hang_up(request: Request, role: str, who: str) -> Response:
    room_id: int = request.path_params["room_id"]
    found = media(request).find(room_id, request.path_params["session_id"], role, who)
    await media(request).hang_up(found)
    return Response(status_code=200)


@api.route(
    "DELETE", "/whip/{room_id:id}/{session_id:str}", "Stop publishing", auth="seller", tag="media"
)
async def whip_delete(request: Request) -> Response:
    me = await seller(request)
    return await _hang_up(request, "publisher", f"seller-{me.id}")


@api.route(
    "DELETE", "/whep/{room_id:id}/{session_id:str}", "Stop watching", auth="viewer", tag="media"
)
async def whep_delete(request: Request) -> Response:
    return await _hang_up(request, "viewer", await _watcher(request))


async def _no_patch(request: Request) -> Response:
    raise BadRequest(
        "This server sends every ICE candidate in its answer: no trickle ICE or ICE restart.",
        code="method_not_allowed",
        status=405,
    )


for _kind in ("whip", "whep"):
    api.route(
        "PATCH",
        f"/{_kind}/{{room_id:id}}/{{session_id:str}}",
        f"{_kind.upper()} PATCH: not supported",
        tag="media",
    )(_no_patch)
