"""WHIP (RFC 9725) to publish a room's video and WHEP to watch it: an SDP offer in, ``201`` with
the SDP answer, the new peer's URL (``Location``, RFC 9725's "session URL") and ``ETag`` and the
STUN/TURN servers (``Link``) out, ``DELETE`` on that URL to hang up.

Answers carry every ICE candidate (aiortc gathers them all first), so there is no trickle ICE or
ICE restart: ``PATCH`` gets ``405``, as does any other method a URL does not take. ``OPTIONS``
answers CORS preflights for the origins in ``LIVECART_ALLOWED_ORIGINS``. Media lives on the node
that took the creator's WHIP; a deployment routes a room's ``/whip`` and ``/whep`` to one node
(docs/decisions/0010).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response

from catalog.models import Seller
from kernel.errors import CommonErrorCode, Conflict, DomainError, Invalid, NotFound, Unauthorized
from live import rules
from live.error_codes import LiveErrorCode
from live.media.broadcasts import Broadcasts, Peer
from live.room_states import RoomStatus
from people.roles import Duty
from people.staff import TOKEN_PREFIX
from web.auth import ACCOUNT_PREFIX, GUEST_PREFIX, bearer, by_cookie, seller
from web.error_codes import WebErrorCode
from web.http import BadRequest, domain_error_handler, error_response, read_limited
from web.routing import ALLOW, Answer, Api, Handler, Param, Raw
from web.services import Services, services

api = Api()
SDP = "application/sdp"
ENDPOINT = "/{kind}/{{room_id:id}}"
# A peer's URL; ``session_id`` is RFC 9725's word and names the parameter in the OpenAPI document.
PEER = "/{kind}/{{room_id:id}}/{{session_id:str}}"
# What each URL takes (the ``Allow`` header); everything else is answered 405.
ENDPOINT_ALLOWS = ("POST", "OPTIONS")
PEER_ALLOWS = ("DELETE", "OPTIONS")
# A browser may try PATCH (trickle ICE) on a peer: its preflight lets it through so the page
# reads our 405 and its reason, rather than a CORS failure it cannot tell from a network error.
PEER_PREFLIGHT = ("DELETE", "PATCH", "OPTIONS")
CORS_REQUEST_HEADERS = "Authorization, Content-Type, If-Match"
CORS_EXPOSED = "Location, Link, ETag"
# Short, so an operator's change of LIVECART_ALLOWED_ORIGINS reaches browsers within minutes.
CORS_MAX_AGE_S = 600

# For the OpenAPI document.
OFFER = Raw(SDP)
LINK = Param("Link", 'One per ICE server: `<stun:host:3478>; rel="ice-server"`')
ACCEPT_POST = Param("Accept-Post", "`application/sdp`", required=True)
ANSWERED = Answer(
    {"type": "string"},
    "The SDP answer, with every ICE candidate",
    SDP,
    headers=(
        Param("Location", "The session's URL: DELETE it to hang up", required=True),
        Param("ETag", "The session's tag, fixed for its life", required=True),
        LINK,
    ),
)
OFFER_ERRORS = (
    LiveErrorCode.ROOM_NOT_FOUND,
    LiveErrorCode.ROOM_ENDED,
    WebErrorCode.UNSUPPORTED_MEDIA_TYPE,
    WebErrorCode.BODY_TOO_LARGE,
    LiveErrorCode.INVALID_SDP,
    LiveErrorCode.SDP_TOO_LARGE,
    LiveErrorCode.NO_VIDEO,
    LiveErrorCode.UNSUPPORTED_CODEC,
    LiveErrorCode.SHUTTING_DOWN,
    LiveErrorCode.SESSION_CLOSED,
)
PEER_ERRORS = (LiveErrorCode.SESSION_NOT_FOUND, LiveErrorCode.SESSION_ENDED)


def media(request: Request) -> Broadcasts:
    found: Broadcasts = request.app.state.broadcasts
    return found


# -- headers: STUN/TURN links, the peer's tag, CORS --------------------------------------------


def ice_links(urls: Sequence[str], username: str | None, credential: str | None) -> list[str]:
    """One ``Link`` value per ICE server (RFC 9725 section 4.6); TURN ones with the
    credentials when both are set."""
    return [_ice_link(url, username, credential) for url in urls]


def _ice_link(url: str, username: str | None, credential: str | None) -> str:
    link = f'<{url}>; rel="ice-server"'
    if url.startswith(("turn:", "turns:")) and username is not None and credential is not None:
        link += (
            f"; username={quoted(username)}; credential={quoted(credential)}"
            '; credential-type="password"'
        )
    return link


def quoted(value: str) -> str:
    """An HTTP quoted-string (RFC 9110 section 5.6.4): backslash and double quote escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def peer_etag(peer_id: str) -> str:
    """A peer's entity tag: opaque, and stable for its life (there is no ICE restart to
    change it). Derived from the id, so any node can tell it without storing anything."""
    return '"' + hashlib.sha256(peer_id.encode()).hexdigest()[:32] + '"'


def _add_links(request: Request, headers: MutableHeaders) -> None:
    settings = services(request).settings
    for link in ice_links(settings.ice_servers, settings.turn_username, settings.turn_credential):
        headers.append("Link", link)


def _allowed_origin(request: Request) -> str | None:
    """The request's Origin when it is on the allow-list. Same-origin pages need no grant, and
    clients that are not browsers (OBS, GStreamer) send no Origin at all."""
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/") in services(request).settings.allowed_origins:
        return origin
    return None


def _grant(request: Request, headers: MutableHeaders) -> None:
    headers.add_vary_header("Origin")
    origin = _allowed_origin(request)
    if origin is not None:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = CORS_EXPOSED


def cross_origin(handler: Handler) -> Handler:
    """Let a page on an allowed origin read the answer, errors included: a browser publisher
    should show why it was refused (``already_publishing``), not a bare network failure."""

    async def answer(request: Request) -> Response:
        try:
            response = await handler(request)
        except DomainError as err:
            response = await domain_error_handler(request, err)
        _grant(request, response.headers)
        return response

    return answer


def _preflight(allows: Sequence[str], methods: Sequence[str], links: bool) -> Handler:
    """``OPTIONS``: what the URL allows (and the ICE servers, for an endpoint), plus the CORS
    grant when the Origin is allowed. No token needed: browsers send none on a preflight."""

    async def options(request: Request) -> Response:
        response = Response(status_code=204, headers={"Allow": ", ".join(allows)})
        response.headers.add_vary_header("Origin")
        if links:
            response.headers["Accept-Post"] = SDP
            _add_links(request, response.headers)
        origin = _allowed_origin(request)
        if origin is not None:
            response.headers.update(
                {
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ", ".join(methods),
                    "Access-Control-Allow-Headers": CORS_REQUEST_HEADERS,
                    "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
                }
            )
        return response

    return options


def _not_allowed(allows: Sequence[str], message: str) -> Handler:
    @cross_origin
    async def refuse(request: Request) -> Response:
        response = error_response(405, WebErrorCode.METHOD_NOT_ALLOWED, message)
        response.headers["Allow"] = ", ".join(allows)
        return response

    return refuse


# -- WHIP and WHEP -----------------------------------------------------------------------------


async def _offer(request: Request) -> str:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != SDP:
        raise BadRequest(
            f"Send the SDP offer with 'Content-Type: {SDP}'.",
            code=WebErrorCode.UNSUPPORTED_MEDIA_TYPE,
            status=415,
        )
    body = await read_limited(request, "offer")
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise BadRequest(
            "The offer is not UTF-8 text.", code=LiveErrorCode.INVALID_SDP, status=400
        ) from None


async def _room(svc: Services, room_id: int) -> rules.Room:
    snap = await svc.rooms.read(room_id)
    if snap is None:
        raise NotFound("No such room.", code=LiveErrorCode.ROOM_NOT_FOUND, room_id=room_id)
    if snap.room["status"] == RoomStatus.ENDED:
        raise Conflict("The room has ended.", code=LiveErrorCode.ROOM_ENDED, room_id=room_id)
    return snap.room


def _creator(me: Seller, room: rules.Room) -> Seller:
    if me.id != room["seller_id"]:
        raise NotFound("No such room.", code=LiveErrorCode.ROOM_NOT_FOUND, room_id=room["id"])
    return me


async def _watcher(request: Request) -> str:
    """Viewers watch with their guest session; sellers (a creator checking the feed) too."""
    if by_cookie(request):
        return f"seller-{(await seller(request)).id}"
    token = bearer(request)
    if token.startswith((GUEST_PREFIX, ACCOUNT_PREFIX)):
        return services(request).sessions.verify(token)
    if token.startswith(TOKEN_PREFIX):
        return f"seller-{(await seller(request)).id}"
    raise Unauthorized("Send a guest session or seller token.", code=CommonErrorCode.INVALID_TOKEN)


def _answered(request: Request, peer: Peer, kind: str) -> Response:
    location = f"/{kind}/{peer.room_id}/{peer.id}"
    response = Response(
        peer.answer,
        status_code=201,
        media_type=SDP,
        headers={"Location": location, "ETag": peer_etag(peer.id)},
    )
    _add_links(request, response.headers)
    return response


def _as_bad_request(err: Invalid) -> BadRequest:
    # WHIP and WHEP answer a bad offer with 400 (RFC 9725 section 4.2), not our usual 422.
    return BadRequest(err.message, code=err.code, status=400, **err.details)


@api.route(
    "POST",
    "/whip/{room_id:id}",
    "Publish the room's video (WHIP, SDP offer)",
    auth="seller",
    duty=Duty.LIVE,
    tag="media",
    body=OFFER,
    ok={201: ANSWERED},
    errors=(*OFFER_ERRORS, LiveErrorCode.ALREADY_PUBLISHING),
)
@cross_origin
async def whip(request: Request) -> Response:
    svc = services(request)
    room_id: int = request.path_params["room_id"]
    # Who asks first: a request without a token learns nothing about the room.
    me = _creator(await seller(request), await _room(svc, room_id))
    offer = await _offer(request)
    try:
        peer = await media(request).publish(room_id, f"seller-{me.id}", offer)
    except Invalid as err:
        raise _as_bad_request(err) from None
    return _answered(request, peer, "whip")


@api.route(
    "POST",
    "/whep/{room_id:id}",
    "Watch the room's video (WHEP, SDP offer)",
    auth=("viewer", "seller"),
    duty=Duty.READ,
    tag="media",
    body=OFFER,
    ok={201: ANSWERED},
    errors=(*OFFER_ERRORS, LiveErrorCode.STREAM_NOT_LIVE, LiveErrorCode.TOO_MANY_VIEWERS),
)
@cross_origin
async def whep(request: Request) -> Response:
    svc = services(request)
    room_id: int = request.path_params["room_id"]
    who = await _watcher(request)
    await _room(svc, room_id)
    offer = await _offer(request)
    try:
        peer = await media(request).watch(room_id, who, offer)
    except Invalid as err:
        raise _as_bad_request(err) from None
    return _answered(request, peer, "whep")


async def _hang_up(request: Request, role: str, who: str) -> Response:
    room_id: int = request.path_params["room_id"]
    found = media(request).find(room_id, request.path_params["session_id"], role, who)
    await media(request).hang_up(found)
    return Response(status_code=200)


@api.route(
    "DELETE",
    "/whip/{room_id:id}/{session_id:str}",
    "Stop publishing",
    auth="seller",
    duty=Duty.LIVE,
    tag="media",
    ok={200: Answer(description="Hung up")},
    errors=PEER_ERRORS,
)
@cross_origin
async def whip_delete(request: Request) -> Response:
    me = await seller(request)
    return await _hang_up(request, "publisher", f"seller-{me.id}")


@api.route(
    "DELETE",
    "/whep/{room_id:id}/{session_id:str}",
    "Stop watching",
    auth=("viewer", "seller"),
    duty=Duty.READ,
    tag="media",
    ok={200: Answer(description="Hung up")},
    errors=PEER_ERRORS,
)
@cross_origin
async def whep_delete(request: Request) -> Response:
    return await _hang_up(request, "viewer", await _watcher(request))


NO_TRICKLE = (
    "This server takes no trickle ICE or ICE restart: put every candidate in the offer (wait "
    "for ICE gathering to complete before the POST); to reconnect, start a new session."
)
for _kind in ("whip", "whep"):
    _endpoint, _peer = ENDPOINT.format(kind=_kind), PEER.format(kind=_kind)
    _name = _kind.upper()
    api.route(
        "OPTIONS",
        _endpoint,
        f"{_name}: allowed methods, ICE servers, CORS",
        tag="media",
        ok={204: Answer(description="What the URL takes", headers=(ALLOW, ACCEPT_POST, LINK))},
        storage=False,
    )(_preflight(ENDPOINT_ALLOWS, ENDPOINT_ALLOWS, links=True))
    api.route(
        "OPTIONS",
        _peer,
        f"{_name} session: allowed methods, CORS",
        tag="media",
        ok={204: Answer(description="What the URL takes", headers=(ALLOW,))},
        storage=False,
    )(_preflight(PEER_ALLOWS, PEER_PREFLIGHT, links=False))
    api.route("PATCH", _peer, "", hidden=True)(_not_allowed(PEER_ALLOWS, NO_TRICKLE))
    for _method in ("GET", "HEAD", "PUT", "POST"):
        api.route(_method, _peer, "", hidden=True)(
            _not_allowed(PEER_ALLOWS, "A session takes DELETE (hang up) and OPTIONS only.")
        )
    for _method in ("GET", "HEAD", "PUT", "PATCH", "DELETE"):
        api.route(_method, _endpoint, "", hidden=True)(
            _not_allowed(ENDPOINT_ALLOWS, f"{_name} takes POST (an SDP offer) and OPTIONS only.")
        )
