"""Buyer accounts over HTTP (decision 0041): sign up (claiming the guest session that asks),
sign in (a fresh token; the guest's orders and cart come along), who am I, and a password reset
by mail."""

from __future__ import annotations

import functools
import logging

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from checkout.cart_store import CartStore
from checkout.limits import Rate
from checkout.order_store import move_buyer
from kernel.errors import CommonErrorCode, Conflict, Invalid, Unauthorized
from people import accounts
from people.error_codes import PeopleErrorCode
from people.mail import Mail
from people.models import Account
from web import i18n
from web import responses as out
from web.api_checkout import address_of
from web.auth import ACCOUNT_PREFIX, GUEST_PREFIX, bearer
from web.cookies import key_list
from web.error_codes import WebErrorCode
from web.http import JSONResponse, parse, read_body
from web.routing import Answer, Api
from web.schemas import ResetAskIn, ResetIn, SignInIn, SignUpIn
from web.services import Services, services
from web.templating import page_language

api = Api()
log = logging.getLogger("livecart.accounts")
RESET_MAX_AGE_S = 3600
OPTIONAL_GUEST = (
    "Send a guest session token (`Authorization: Bearer lc_gs_…`) to bring that session along; "
    "none is needed."
)


@api.route(
    "POST",
    "/api/accounts",
    "Sign up. " + OPTIONAL_GUEST + " The account takes over that guest's holds, cart and orders",
    body=SignUpIn,
    tag="identity",
    ok={201: out.AccountSession},
    errors=(
        PeopleErrorCode.INVALID_EMAIL,
        PeopleErrorCode.WEAK_PASSWORD,
        PeopleErrorCode.EMAIL_TAKEN,
        PeopleErrorCode.GUEST_CLAIMED,
        CommonErrorCode.INVALID_TOKEN,
        WebErrorCode.SESSION_EXPIRED,
        CommonErrorCode.RATE_LIMITED,
    ),
)
async def sign_up(request: Request) -> Response:
    svc = services(request)
    body = parse(SignUpIn, await read_body(request))
    guest = guest_of(request, svc)
    await throttle_sign_in(svc, request)
    async with svc.db.session() as session:
        account = await accounts.sign_up(
            session, body.email, body.password, body.display_name, guest, page_language(request)
        )
    return _signed_in(svc, account, moved=0, status=201)


@api.route(
    "POST",
    "/api/accounts/sign-in",
    "Sign in: a new account session token. " + OPTIONAL_GUEST + " Its orders and cart move "
    "into the account",
    body=SignInIn,
    tag="identity",
    ok={200: out.AccountSession},
    errors=(
        PeopleErrorCode.WRONG_PASSWORD,
        CommonErrorCode.INVALID_TOKEN,
        WebErrorCode.SESSION_EXPIRED,
        CommonErrorCode.RATE_LIMITED,
    ),
)
async def sign_in(request: Request) -> Response:
    svc = services(request)
    body = parse(SignInIn, await read_body(request))
    guest = guest_of(request, svc)
    await throttle_sign_in(svc, request, email=body.email)
    async with svc.db.session() as session:
        account = await accounts.sign_in(session, body.email, body.password)
        return await welcome(svc, session, account, guest, page_language(request))


async def welcome(
    svc: Services, session: AsyncSession, account: Account, guest: str | None, lang: str
) -> Response:
    """The answer to a sign-in, by password or passkey: a fresh token, with the orders and cart
    of the guest session that signed in moved into the account, and the page's language kept
    as the account's."""
    await accounts.remember_language(session, account, lang)
    # A guest id some account claimed is that account's: its orders and cart never move to
    # another (a token kept from before that account's sign-up, say).
    movable = (
        guest is not None
        and guest != account.buyer_id
        and await accounts.account_of_buyer(session, guest) is None
    )
    moved = await move_buyer(session, guest, account.buyer_id) if movable and guest else 0
    if movable and guest:
        await CartStore(svc.redis, svc.keys).merge(guest, account.buyer_id)
    return _signed_in(svc, account, moved=moved)


@api.route(
    "GET",
    "/api/accounts/me",
    "The signed-in account",
    auth="account",
    tag="identity",
    ok={200: out.AccountOut},
)
async def me(request: Request) -> Response:
    svc = services(request)
    account = await signed_in_account(request, svc)
    return JSONResponse(_account_json(account))


@api.route(
    "POST",
    "/api/accounts/password-reset",
    "Mail a password reset link to an account's e-mail (the answer is the same for an e-mail "
    "that has no account)",
    body=ResetAskIn,
    tag="identity",
    ok={202: Answer(out.ResetAsked, "Asked; a mail goes out if the e-mail has an account")},
    errors=(CommonErrorCode.RATE_LIMITED,),
)
async def ask_reset(request: Request) -> Response:
    svc = services(request)
    body = parse(ResetAskIn, await read_body(request))
    await throttle_sign_in(svc, request, email=body.email)
    try:
        email = accounts.normal_email(body.email)
    except Invalid:
        email = ""
    async with svc.db.session() as session:
        account = await accounts.account_by_email(session, email) if email else None
    if account is not None:
        code = _resets(svc).dumps([account.id, account.session_epoch])
        link = f"{public_url(svc, request)}/account/reset#{code}"
        # In the language of the page that asked (decision 0047: no account stores one).
        say = functools.partial(i18n.translate, page_language(request))
        text = say("mail_reset_body", name=account.display_name, link=link)
        await _send(svc, Mail(to=account.email, subject=say("mail_reset_subject"), text=text))
    return JSONResponse({"sent": True}, status_code=202)


async def _send(svc: Services, mail: Mail) -> None:
    """Send, or log why not: the answer must not differ (a failure only where an account
    exists would tell which e-mails have one)."""
    try:
        await svc.mail.send(mail)
    except Exception:
        log.exception("mail to an account could not be sent")


@api.route(
    "POST",
    "/api/accounts/password-reset/confirm",
    "Choose a new password with a reset mail's code: signs in, and every older session of the "
    "account ends",
    body=ResetIn,
    tag="identity",
    ok={200: out.AccountSession},
    errors=(
        PeopleErrorCode.RESET_INVALID,
        PeopleErrorCode.WEAK_PASSWORD,
        CommonErrorCode.RATE_LIMITED,
    ),
)
async def reset(request: Request) -> Response:
    svc = services(request)
    body = parse(ResetIn, await read_body(request))
    await throttle_sign_in(svc, request)
    try:
        account_id, epoch = _resets(svc).loads(body.reset, max_age=RESET_MAX_AGE_S)
    except SignatureExpired:
        raise _reset_invalid(
            "This reset link is more than an hour old; ask for a new one."
        ) from None
    except (BadSignature, ValueError, TypeError):
        raise _reset_invalid("This reset link is not valid.") from None
    async with svc.db.session() as session:
        account = await session.get(Account, account_id)
        if account is None or account.session_epoch != epoch:
            # Used already (the password changed since), or the account is gone.
            raise _reset_invalid("This reset link was used already; ask for a new one.")
        account = await accounts.change_password(session, svc.auth_stamps, account, body.password)
    return _signed_in(svc, account, moved=0)


async def signed_in_account(request: Request, svc: Services) -> Account:
    """The account of the request's token, read from SQL: a token from before a password change
    (an older epoch) is refused here."""
    token = svc.sessions.verify_account(bearer(request))
    async with svc.db.session() as session:
        account = await session.get(Account, token.account_id)
    if account is None or account.session_epoch != token.epoch:
        raise Unauthorized("Sign in again.", code=WebErrorCode.SESSION_EXPIRED)
    return account


def guest_of(request: Request, svc: Services) -> str | None:
    """The guest buyer id of the request's optional guest token. An account's token here is
    refused: someone signed in does not sign up or in again."""
    if "authorization" not in request.headers:
        return None
    token = bearer(request)
    if token.startswith(ACCOUNT_PREFIX):
        raise Conflict(
            "You are signed in already; sign out first.", code=PeopleErrorCode.GUEST_CLAIMED
        )
    if not token.startswith(GUEST_PREFIX):
        raise Unauthorized("Send a guest session token.", code=CommonErrorCode.INVALID_TOKEN)
    return svc.sessions.verify(token)


async def throttle_sign_in(svc: Services, request: Request, *, email: str = "") -> None:
    """Sign-in attempts per address, and per e-mail when one is named (pages' too)."""
    settings = svc.settings
    per_address = Rate(settings.sign_in_rate_per_s, settings.sign_in_burst)
    await svc.limiter.take("sign_in", address_of(request), per_address, "sign-in attempts")
    if email:
        per_account = Rate(settings.account_sign_in_rate_per_s, settings.account_sign_in_burst)
        key = email.strip().lower()[:254]
        await svc.limiter.take("sign_in_email", key, per_account, "sign-in attempts")


def _resets(svc: Services) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key_list(svc.settings.signing_keys), salt="livecart.reset")


def _reset_invalid(message: str) -> Invalid:
    return Invalid(message, code=PeopleErrorCode.RESET_INVALID)


def public_url(svc: Services, request: Request) -> str:
    # The configured address: a link built from the request's Host header could point a reset
    # mail at whatever host a caller put there.
    return (svc.settings.public_url or str(request.base_url)).rstrip("/")


def _account_json(account: Account) -> dict[str, object]:
    return {
        "id": account.id,
        "email": account.email,
        "display_name": account.display_name,
        "buyer_id": account.buyer_id,
    }


def _signed_in(svc: Services, account: Account, *, moved: int, status: int = 200) -> Response:
    assert account.id is not None
    token = svc.sessions.issue_account(account.buyer_id, account.id, account.session_epoch)
    return JSONResponse(
        {
            "token": token,
            "buyer_id": account.buyer_id,
            "account": _account_json(account),
            "moved_orders": moved,
        },
        status_code=status,
    )
