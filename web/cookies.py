"""Seller sign-in for the pages: a signed session cookie, the CSRF token that goes with it, and
the short-lived ticket a studio page's websocket sends in its ``hello``.

The cookie names the seller and how they signed in: the first characters of the owner's API
token's hash (rotating the token, as ``livecart demo`` does on every run, signs those browsers
out), a scoped token's id (revoking it does), or a member's account and session epoch (a new
password or leaving the staff does). Requests authenticated by
the cookie that change anything must carry the CSRF token (form field ``csrf`` or header
``X-CSRF-Token``): another site can make a browser send the cookie, but cannot read the token.

Everything here is signed with the newest of the server's keys and accepted under any of them,
so rotating the secret key signs nobody out while the previous key stays configured.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from itsdangerous import BadSignature, TimestampSigner

from catalog.models import Seller
from kernel.errors import CommonErrorCode, Unauthorized
from web.error_codes import WebErrorCode

COOKIE = "lc_seller"
CSRF_HEADER = "x-csrf-token"
TICKET_PREFIX = "lc_st_"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TICKET_MAX_AGE_S = 12 * 3600


@dataclass(frozen=True)
class SellerSession:
    seller_id: int
    # How they signed in: the first 16 hex digits of the owner's token hash, "k<id>" for a
    # scoped token, "a<account id>:<session epoch>" for a member (web/auth.py).
    token_tag: str
    raw: str  # the cookie's value, which the CSRF token is derived from


def token_tag(seller: Seller) -> str:
    return seller.token_hash[:16]


def key_list(secret: str | Sequence[str]) -> list[str]:
    """The signing keys, oldest to newest: the last signs, every one verifies."""
    keys = [secret] if isinstance(secret, str) else list(secret)
    if not keys:
        raise ValueError("at least one secret key is needed")
    return keys


class SellerSessions:
    def __init__(self, secret: str | Sequence[str], max_age_s: int) -> None:
        keys = key_list(secret)
        self._cookie = TimestampSigner(keys, salt="livecart.seller-session")
        self._ticket = TimestampSigner(keys, salt="livecart.studio-ticket")
        # Newest first: pages rendered now carry the newest; the others match older pages.
        self._csrf_keys = [
            hashlib.sha256(b"livecart.csrf:" + key.encode()).digest() for key in reversed(keys)
        ]
        self.max_age_s = max_age_s

    def issue(self, seller_id: int, tag: str) -> str:
        """A session for a seller, signed in as ``tag`` says (web/auth.py ``Acting``)."""
        nonce = secrets.token_urlsafe(12)
        return self._cookie.sign(f"{seller_id}.{tag}.{nonce}").decode()

    def read(self, cookie: str) -> SellerSession:
        try:
            value = self._cookie.unsign(cookie, max_age=self.max_age_s).decode()
        except BadSignature:
            raise Unauthorized("Sign in again.", code=WebErrorCode.SESSION_EXPIRED) from None
        seller_id, tag, _nonce = value.split(".", 2)
        return SellerSession(int(seller_id), tag, cookie)

    def csrf_token(self, cookie: str) -> str:
        return _csrf(self._csrf_keys[0], cookie)

    def csrf_ok(self, cookie: str, sent: str) -> bool:
        # Bytes: compare_digest refuses str with non-ASCII characters (a forged header has them).
        return any(
            hmac.compare_digest(_csrf(key, cookie).encode(), sent.encode())
            for key in self._csrf_keys
        )

    def ticket(self, seller_id: int, tag: str, room_id: int) -> str:
        """What the studio of ``room_id`` sends in its websocket hello: good for that room."""
        value = f"{seller_id}.{tag}.{room_id}"
        return TICKET_PREFIX + self._ticket.sign(value).decode()

    def read_ticket(self, ticket: str) -> tuple[int, str, int]:
        """(seller id, token tag, room id) of a studio ticket."""
        try:
            value = self._ticket.unsign(
                ticket[len(TICKET_PREFIX) :], max_age=TICKET_MAX_AGE_S
            ).decode()
        except BadSignature:
            raise Unauthorized(
                "Reload the studio page.", code=CommonErrorCode.INVALID_TOKEN
            ) from None
        seller_id, tag, room_id = value.split(".", 2)
        return int(seller_id), tag, int(room_id)


def _csrf(key: bytes, cookie: str) -> str:
    return hmac.new(key, cookie.encode(), hashlib.sha256).hexdigest()[:32]
