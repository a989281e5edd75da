"""Who is calling: sellers by bearer API token (looked up in SQL) or by the pages' sign-in cookie
(web/cookies.py, CSRF-checked), viewers by a signed guest session token from
``POST /api/session`` (checked without any I/O)."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Sequence

from itsdangerous import BadSignature, TimestampSigner
from starlette.requests import Request

from catalog.models import Seller
from catalog.service import TOKEN_PREFIX, seller_for_token
from kernel.db import Database
from kernel.errors import CommonErrorCode, Unauthorized
from live.gateway import Identify
from live.rules import Room
from web.cookies import (
    COOKIE,
    CSRF_HEADER,
    SAFE_METHODS,
    TICKET_PREFIX,
    SellerSessions,
    key_list,
    token_tag,
)
from web.error_codes import WebErrorCode
from web.http import BadRequest

GUEST_PREFIX = "lc_gs_"


class GuestSessions:
    def __init__(self, secret: str | Sequence[str], max_age_s: int) -> None:
        """``secret``: one key, or several oldest to newest (the newest signs, all verify)."""
        self._signer = TimestampSigner(key_list(secret), salt="livecart.guest")
        self.max_age_s = max_age_s
        # Verifying a signature costs more than the rest of a reservation; a viewer sends the
        # same token on every request, so remember the ones already checked.
        self._unsign = functools.lru_cache(maxsize=65536)(self._unsign_uncached)

    def issue(self) -> tuple[str, str]:
        buyer = uuid.uuid4().hex
        return buyer, GUEST_PREFIX + self._signer.sign(buyer).decode()

    def _unsign_uncached(self, token: str) -> tuple[str, int]:
        value, signed_at = self._signer.unsign(token, return_timestamp=True)
        return value.decode(), int(signed_at.timestamp())

    def verify(self, token: str) -> str:
        if not token.startswith(GUEST_PREFIX):
            raise Unauthorized(
                "That is not a guest session token.", code=CommonErrorCode.INVALID_TOKEN
            )
        try:
            buyer, signed_at = self._unsign(token[len(GUEST_PREFIX) :])
        except BadSignature:
            raise Unauthorized(
                "The session token is not valid.", code=CommonErrorCode.INVALID_TOKEN
            ) from None
        if time.time() - signed_at > self.max_age_s:
            raise Unauthorized(
                "The session has expired; start a new one.", code=WebErrorCode.SESSION_EXPIRED
            )
        return buyer


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(
            "Send 'Authorization: Bearer <token>'.", code=CommonErrorCode.MISSING_TOKEN
        )
    return token.strip()


def viewer(request: Request) -> str:
    sessions: GuestSessions = request.app.state.services.sessions
    return sessions.verify(bearer(request))


def by_cookie(request: Request) -> bool:
    """The request names a seller by the pages' cookie rather than by a bearer token."""
    return "authorization" not in request.headers and COOKIE in request.cookies


def as_seller(request: Request) -> bool:
    """The request speaks for a seller (token or cookie), not a viewer."""
    return by_cookie(request) or bearer(request).startswith(TOKEN_PREFIX)


async def seller(request: Request) -> Seller:
    if by_cookie(request):
        return await signed_in_seller(request)
    token = bearer(request)
    if not token.startswith(TOKEN_PREFIX):
        raise Unauthorized(
            "This needs a seller API token.", code=WebErrorCode.SELLER_TOKEN_REQUIRED
        )
    db: Database = request.app.state.services.db
    async with db.session() as session:
        return await seller_for_token(session, token)


async def signed_in_seller(request: Request, *, check_csrf: bool = True) -> Seller:
    """The seller of the request's sign-in cookie. A request that may change something must
    carry the CSRF token in the ``X-CSRF-Token`` header (forms are checked by the pages)."""
    svc = request.app.state.services
    cookies: SellerSessions = svc.seller_sessions
    signed_in = cookies.read(request.cookies.get(COOKIE, ""))
    needs_csrf = check_csrf and request.method not in SAFE_METHODS
    if needs_csrf and not cookies.csrf_ok(signed_in.raw, request.headers.get(CSRF_HEADER, "")):
        raise BadRequest(
            "This request needs the page's CSRF token; reload the page.",
            code=WebErrorCode.CSRF_FAILED,
            status=403,
        )
    return await _seller_with_tag(svc.db, signed_in.seller_id, signed_in.token_tag)


async def _seller_with_tag(db: Database, seller_id: int, tag: str) -> Seller:
    async with db.session() as session:
        found = await session.get(Seller, seller_id)
    if found is None or token_tag(found) != tag:
        # The token was rotated since: every session made with the old one ends.
        raise Unauthorized("Sign in again.", code=WebErrorCode.SESSION_EXPIRED)
    return found


def identify_for(sessions: GuestSessions, cookies: SellerSessions, db: Database) -> Identify:
    """Who a websocket's hello token names, in a given room (see live.gateway.Identify)."""

    async def identify(token: str, room: Room) -> tuple[str, str]:
        if token.startswith(GUEST_PREFIX):
            return sessions.verify(token), "viewer"
        if token.startswith(TOKEN_PREFIX) or token.startswith(TICKET_PREFIX):
            if token.startswith(TICKET_PREFIX):
                seller_id, tag, room_id = cookies.read_ticket(token)
                if room_id != room["id"]:
                    raise Unauthorized(
                        "That ticket is for another room.", code=CommonErrorCode.INVALID_TOKEN
                    )
                found = await _seller_with_tag(db, seller_id, tag)
            else:
                async with db.session() as session:
                    found = await seller_for_token(session, token)
            role = "creator" if found.id == room["seller_id"] else "seller"
            return f"seller-{found.id}", role
        raise Unauthorized(
            "Send a guest session or seller token.", code=CommonErrorCode.INVALID_TOKEN
        )

    return identify
