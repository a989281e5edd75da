"""Who is calling: sellers by bearer API token or by the pages' sign-in cookie (web/cookies.py,
CSRF-checked), read from SQL and remembered per node while the seller's sign-in stamp holds
(decision 0049); viewers by a signed guest session token from ``POST /api/session`` (checked
without any I/O)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from itsdangerous import BadSignature, TimestampSigner
from prometheus_client import Counter
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request

from catalog.models import Seller
from catalog.service import seller_for_token
from kernel.db import Database
from kernel.errors import CommonErrorCode, Forbidden, Unauthorized
from live.gateway import Identify, Who
from live.rules import Room
from people import staff
from people.auth_stamps import AuthStamps
from people.error_codes import PeopleErrorCode
from people.models import Account
from people.roles import Duty, Role, may
from people.staff import TOKEN_PREFIX
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
ACCOUNT_PREFIX = "lc_as_"


@dataclass(frozen=True)
class AccountToken:
    """What an account session token signs (decision 0041)."""

    buyer: str
    account_id: int
    epoch: int


ALIAS_FIRST, ALIAS_SPAN = 1000, 9000  # "Viewer 1000" to "Viewer 9999"


class GuestSessions:
    """Buyers' session tokens: a guest's (``lc_gs_``: a fresh buyer id) or an account's
    (``lc_as_``: the account's buyer id, its id and session epoch). Both are checked without
    I/O; ``verify`` gives the buyer id either names."""

    def __init__(self, secret: str | Sequence[str], max_age_s: int) -> None:
        """``secret``: one key, or several oldest to newest (the newest signs, all verify)."""
        self._signer = TimestampSigner(key_list(secret), salt="livecart.guest")
        self._accounts = TimestampSigner(key_list(secret), salt="livecart.account")
        # The oldest key: a rotation renames nobody until that key is retired.
        self._alias_key = hashlib.sha256(b"livecart.alias:" + key_list(secret)[0].encode()).digest()
        self.max_age_s = max_age_s
        # Verifying a signature costs more than the rest of a reservation; a viewer sends the
        # same token on every request, so remember the ones already checked.
        self._unsign = functools.lru_cache(maxsize=65536)(self._unsign_uncached)

    def alias(self, room_id: int, buyer: str) -> str:
        """A guest's name in one room (chat, bids): the same on every visit to the room, another
        in each room, and nothing of the buyer id in it, so a public name tells nobody who
        bought what. Guests do not choose one: a chosen name could pass for the creator's."""
        digest = hmac.new(self._alias_key, f"{room_id}:{buyer}".encode(), hashlib.sha256).digest()
        return f"Viewer {ALIAS_FIRST + int.from_bytes(digest[:4], 'big') % ALIAS_SPAN}"

    def issue(self) -> tuple[str, str]:
        buyer = uuid.uuid4().hex
        return buyer, GUEST_PREFIX + self._signer.sign(buyer).decode()

    def issue_account(self, buyer: str, account_id: int, epoch: int) -> str:
        # A nonce: two sign-ins in one second still get two tokens (no session is reused).
        nonce = secrets.token_hex(4)
        signed = self._accounts.sign(f"{buyer}.{account_id}.{epoch}.{nonce}").decode()
        return ACCOUNT_PREFIX + signed

    def _unsign_uncached(self, token: str) -> tuple[str, int]:
        signer = self._accounts if token.startswith(ACCOUNT_PREFIX) else self._signer
        value, signed_at = signer.unsign(token[len(GUEST_PREFIX) :], return_timestamp=True)
        return value.decode(), int(signed_at.timestamp())

    def _checked(self, token: str) -> str:
        try:
            value, signed_at = self._unsign(token)
        except BadSignature:
            raise Unauthorized(
                "The session token is not valid.", code=CommonErrorCode.INVALID_TOKEN
            ) from None
        if time.time() - signed_at > self.max_age_s:
            raise Unauthorized(
                "The session has expired; start a new one.", code=WebErrorCode.SESSION_EXPIRED
            )
        return value

    def verify(self, token: str) -> str:
        """The buyer id of a guest or account token."""
        if token.startswith(ACCOUNT_PREFIX):
            return self.verify_account(token).buyer
        if not token.startswith(GUEST_PREFIX):
            raise Unauthorized(
                "That is not a guest session token.", code=CommonErrorCode.INVALID_TOKEN
            )
        return self._checked(token)

    def is_account(self, token: str) -> bool:
        """Whether a token ``verify`` accepted is an account's (the accounts-only check)."""
        return token.startswith(ACCOUNT_PREFIX)

    def verify_account(self, token: str) -> AccountToken:
        if not token.startswith(ACCOUNT_PREFIX):
            raise Unauthorized(
                "This needs a signed-in account.", code=WebErrorCode.ACCOUNT_TOKEN_REQUIRED
            )
        buyer, account_id, epoch, _ = self._checked(token).rsplit(".", 3)
        return AccountToken(buyer, int(account_id), int(epoch))


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


def viewer_and_kind(request: Request) -> tuple[str, bool]:
    """The buyer id, and whether the token is an account's (accounts-only deals)."""
    sessions: GuestSessions = request.app.state.services.sessions
    token = bearer(request)
    return sessions.verify(token), sessions.is_account(token)


async def public_name(request: Request, room_id: int) -> str:
    """The name a viewer's bid or place shows in a room, as their chat line would: a guest's
    alias for the room, an account's display name."""
    svc = request.app.state.services
    sessions: GuestSessions = svc.sessions
    token = bearer(request)
    if not sessions.is_account(token):
        return sessions.alias(room_id, sessions.verify(token))
    signed = sessions.verify_account(token)
    async with svc.db.session() as session:
        account = await session.get(Account, signed.account_id)
    return account.display_name if account is not None else sessions.alias(room_id, signed.buyer)


def by_cookie(request: Request) -> bool:
    """The request names a seller by the pages' cookie rather than by a bearer token."""
    return "authorization" not in request.headers and COOKIE in request.cookies


def as_seller(request: Request) -> bool:
    """The request speaks for a seller (token or cookie), not a viewer."""
    return by_cookie(request) or bearer(request).startswith(TOKEN_PREFIX)


@dataclass(frozen=True)
class Acting:
    """Who acts for a seller in a request, as what role, and how they signed in (``tag``: what
    a page session or studio ticket made from this one signs, see ``SellerAuth.for_tag``)."""

    seller: Seller
    role: Role
    tag: str


async def acting(request: Request) -> Acting:
    """The seller and role of a request's token or page cookie, read once a request."""
    known: Acting | None = getattr(request.state, "acting", None)
    if known is not None:
        return known
    if by_cookie(request):
        known = await _signed_in(request, check_csrf=True)
    else:
        token = bearer(request)
        if not token.startswith(TOKEN_PREFIX):
            raise Unauthorized(
                "This needs a seller API token.", code=WebErrorCode.SELLER_TOKEN_REQUIRED
            )
        known = await request.app.state.services.seller_auth.for_token(token)
    request.state.acting = known
    return known


async def authorize(request: Request, duties: tuple[Duty, ...]) -> Acting:
    """Refuse a seller request whose role may do none of ``duties`` (every seller route and
    page names its own)."""
    who = await acting(request)
    if not any(may(who.role, duty) for duty in duties):
        raise Forbidden(
            f"Your role ({who.role}) may not do this; ask the shop's owner or an admin.",
            code=PeopleErrorCode.ROLE_FORBIDDEN,
        )
    return who


async def seller(request: Request) -> Seller:
    return (await acting(request)).seller


SELLER_AUTH_CACHE = 10_000  # sign-ins one node remembers: more than its busy sellers use


class SellerAuth:
    """Who a seller's token or page session names, remembered per node (decision 0049): an
    entry serves while the seller's sign-in stamp (people/auth_stamps.py, one GET) is the one
    it was read under; any other stamp, none, or Redis not answering reads SQL."""

    def __init__(self, db: Database, stamps: AuthStamps, counter: Counter) -> None:
        self.db = db
        self.stamps = stamps
        self._known: OrderedDict[str, tuple[str, Acting]] = OrderedDict()
        self._from_cache = counter.labels(source="cache")
        self._from_sql = counter.labels(source="sql")

    async def for_token(self, token: str) -> Acting:
        """The owner's token (on the seller's row) or a scoped one (people/staff.py)."""
        key = "t" + staff.hash_token(token)
        known = self._known.get(key)
        # A token's seller never changes; the first read only learns which stamp to check.
        who = known[1] if known is not None else await self._read(_token_from_sql(self.db, token))
        assert who.seller.id is not None
        read = functools.partial(_token_from_sql, self.db, token)
        return await self._checked(key, who.seller.id, read)

    async def for_tag(self, seller_id: int, tag: str) -> Acting:
        """A page session's (or studio ticket's) seller and role: a rotated owner token, a
        revoked scoped token, a changed password or a member removed ends it at once."""
        read = functools.partial(_tag_from_sql, self.db, seller_id, tag)
        return await self._checked(f"s{seller_id}:{tag}", seller_id, read)

    async def _checked(
        self, key: str, seller_id: int, read: Callable[[], Awaitable[Acting]]
    ) -> Acting:
        stamp = await self.stamps.read(seller_id)  # before SQL: a change after it renews it
        known = self._known.pop(key, None)
        if stamp is not None and known is not None and known[0] == stamp:
            self._from_cache.inc()
            self._remember(key, stamp, known[1])
            return _copy(known[1])
        found = await self._read(read())
        if stamp is not None and found.seller.id == seller_id:
            self._remember(key, stamp, found)
        return _copy(found)

    async def _read(self, reading: Awaitable[Acting]) -> Acting:
        self._from_sql.inc()
        return await reading

    def _remember(self, key: str, stamp: str, who: Acting) -> None:
        self._known[key] = (stamp, who)
        if len(self._known) > SELLER_AUTH_CACHE:
            self._known.popitem(last=False)  # the least recently used


def _copy(who: Acting) -> Acting:
    # Each request its own Seller: a handler that changes or attaches it touches no other's.
    return Acting(Seller(**who.seller.model_dump()), who.role, who.tag)


async def _token_from_sql(db: Database, token: str) -> Acting:
    async with db.session() as session:
        try:
            owner = await seller_for_token(session, token)
        except Unauthorized:
            scoped = await staff.token_staff(session, token)
            found = await session.get(Seller, scoped.seller_id) if scoped else None
            if scoped is None or found is None:
                raise
            return Acting(found, scoped.role, f"k{scoped.token_id}")
    return Acting(owner, Role.OWNER, token_tag(owner))


async def signed_in_seller(request: Request, *, check_csrf: bool = True) -> Seller:
    return (await signed_in(request, check_csrf=check_csrf)).seller


async def signed_in(request: Request, *, check_csrf: bool = True) -> Acting:
    """Who the request's sign-in cookie names. A request that may change something must carry
    the CSRF token in the ``X-CSRF-Token`` header (forms are checked by the pages)."""
    known: Acting | None = getattr(request.state, "acting", None)
    if known is None:
        known = await _signed_in(request, check_csrf=check_csrf)
        request.state.acting = known
    return known


async def _signed_in(request: Request, *, check_csrf: bool) -> Acting:
    svc = request.app.state.services
    cookies: SellerSessions = svc.seller_sessions
    signed = cookies.read(request.cookies.get(COOKIE, ""))
    needs_csrf = check_csrf and request.method not in SAFE_METHODS
    if needs_csrf and not cookies.csrf_ok(signed.raw, request.headers.get(CSRF_HEADER, "")):
        raise BadRequest(
            "This request needs the page's CSRF token; reload the page.",
            code=WebErrorCode.CSRF_FAILED,
            status=403,
        )
    sellers: SellerAuth = svc.seller_auth
    return await sellers.for_tag(signed.seller_id, signed.token_tag)


def member_tag(account: Account) -> str:
    return f"a{account.id}:{account.session_epoch}"


def member_account(tag: str) -> int | None:
    """The account of a member's sign-in tag; None for a token's."""
    return int(tag[1:].split(":")[0]) if ":" in tag else None


async def _tag_from_sql(db: Database, seller_id: int, tag: str) -> Acting:
    async with db.session() as session:
        found = await session.get(Seller, seller_id)
        role = await _role_of_tag(session, found, tag) if found is not None else None
    if found is None or role is None:
        raise Unauthorized("Sign in again.", code=WebErrorCode.SESSION_EXPIRED)
    return Acting(found, role, tag)


async def _role_of_tag(session: AsyncSession, found: Seller, tag: str) -> Role | None:
    # An owner's tag is 16 hex digits (no "k", no ":"), as it was before staff existed.
    assert found.id is not None
    if tag.startswith("k"):  # signed in with a scoped token
        return await staff.token_role(session, found.id, int(tag[1:]))
    if ":" in tag:  # a member, with e-mail and password: "a<account id>:<epoch>"
        account_id, epoch = (int(part) for part in tag[1:].split(":"))
        account = await session.get(Account, account_id)
        if account is None or account.session_epoch != epoch:
            return None
        return await staff.member_role(session, found.id, account_id)
    return Role.OWNER if token_tag(found) == tag else None  # the owner's token


def identify_for(
    sessions: GuestSessions, cookies: SellerSessions, db: Database, sellers: SellerAuth
) -> Identify:
    """Who a websocket's hello token names, in a given room (see live.gateway.Identify)."""

    async def identify(token: str, room: Room) -> Who:
        if token.startswith(GUEST_PREFIX):
            buyer = sessions.verify(token)
            return Who(buyer, "viewer", name=sessions.alias(room["id"], buyer))
        if token.startswith(ACCOUNT_PREFIX):
            # Read once a connection: chat shows the account's name, and a token from before a
            # password change stops here.
            signed = sessions.verify_account(token)
            async with db.session() as session:
                account = await session.get(Account, signed.account_id)
            if account is None or account.session_epoch != signed.epoch:
                raise Unauthorized("Sign in again.", code=WebErrorCode.SESSION_EXPIRED)
            return Who(signed.buyer, "viewer", account=True, name=account.display_name)
        if token.startswith(TOKEN_PREFIX) or token.startswith(TICKET_PREFIX):
            if token.startswith(TICKET_PREFIX):
                seller_id, tag, room_id = cookies.read_ticket(token)
                if room_id != room["id"]:
                    raise Unauthorized(
                        "That ticket is for another room.", code=CommonErrorCode.INVALID_TOKEN
                    )
                who = await sellers.for_tag(seller_id, tag)
            else:
                who = await sellers.for_token(token)
            # Only staff who may host drive the room; the rest of its staff watch as sellers.
            hosts = who.seller.id == room["seller_id"] and may(who.role, Duty.LIVE)
            return Who(f"seller-{who.seller.id}", "creator" if hosts else "seller")
        raise Unauthorized(
            "Send a guest session or seller token.", code=CommonErrorCode.INVALID_TOKEN
        )

    return identify
