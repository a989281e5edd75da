"""Passkeys over HTTP (decision 0041): a signed-in account adds, lists and deletes its passkeys;
anyone signs in with one, as with a password (the same answer, throttle and guest carry-over).

Each ceremony is two calls: options (a challenge, kept 5 minutes under a random id) and the
authenticator's answer to them, which uses the challenge up."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from kernel.errors import CommonErrorCode
from people import passkeys
from people.challenges import Purpose
from people.error_codes import PeopleErrorCode
from people.models import Account, Passkey
from people.passkeys import RelyingParty
from web import responses as out
from web.api_accounts import OPTIONAL_GUEST, guest_of, signed_in_account, throttle_sign_in, welcome
from web.error_codes import WebErrorCode
from web.http import JSONResponse, parse, read_body
from web.routing import Answer, Api
from web.schemas import PasskeyIn, PasskeySignInIn
from web.services import Services, services
from web.templating import page_language

api = Api()


def site_url(svc: Services, request: Request) -> str:
    """Where people open livecart: the configured address, else the one this request came to.
    Trusting Host here gives a caller nothing: the browser signs the origin it really used,
    and an answer signed for one site never verifies for another."""
    host = request.headers.get("host", "")
    return svc.settings.public_url or f"{request.url.scheme}://{host}"


def relying_party(svc: Services, request: Request) -> RelyingParty:
    return passkeys.relying_party(site_url(svc, request))


@api.route(
    "POST",
    "/api/accounts/me/passkeys/options",
    "Start adding a passkey: options for `navigator.credentials.create` (the account's "
    "passkeys excluded) and the challenge's id",
    auth="account",
    tag="identity",
    ok={200: out.PasskeyOptions},
    errors=(PeopleErrorCode.PASSKEYS_UNAVAILABLE,),
)
async def registration_options(request: Request) -> Response:
    svc = services(request)
    account = await signed_in_account(request, svc)
    rp = relying_party(svc, request)
    assert account.id is not None
    async with svc.db.session() as session:
        existing = await passkeys.passkeys_of(session, account.id)
    challenge, options = passkeys.registration_options(rp, account, existing)
    challenge_id = await svc.passkey_challenges.issue(Purpose.REGISTER, challenge, account.id)
    return JSONResponse({"challenge_id": challenge_id, "options": options})


@api.route(
    "POST",
    "/api/accounts/me/passkeys",
    "Add a passkey: the authenticator's answer to the options",
    body=PasskeyIn,
    auth="account",
    tag="identity",
    ok={201: out.Passkey},
    errors=(
        PeopleErrorCode.PASSKEYS_UNAVAILABLE,
        PeopleErrorCode.PASSKEY_CHALLENGE_INVALID,
        PeopleErrorCode.PASSKEY_NOT_VERIFIED,
        PeopleErrorCode.PASSKEY_EXISTS,
    ),
)
async def add_passkey(request: Request) -> Response:
    svc = services(request)
    body = parse(PasskeyIn, await read_body(request))
    account = await signed_in_account(request, svc)
    rp = relying_party(svc, request)
    challenge = await svc.passkey_challenges.take(body.challenge_id, Purpose.REGISTER, account.id)
    async with svc.db.session() as session:
        passkey = await passkeys.register(
            session, rp, account, challenge, body.credential, body.name
        )
    return JSONResponse(_passkey_json(passkey), status_code=201)


@api.route(
    "GET",
    "/api/accounts/me/passkeys",
    "Your passkeys, oldest first",
    auth="account",
    tag="identity",
    ok={200: out.PasskeyList},
)
async def list_passkeys(request: Request) -> Response:
    svc = services(request)
    account_id = await _account_id(request, svc)
    async with svc.db.session() as session:
        found = await passkeys.passkeys_of(session, account_id)
    return JSONResponse({"passkeys": [_passkey_json(p) for p in found]})


@api.route(
    "DELETE",
    "/api/accounts/me/passkeys/{passkey_id:id}",
    "Delete one of your passkeys: it signs nobody in from then on",
    auth="account",
    tag="identity",
    ok={204: Answer(description="Deleted")},
    errors=(PeopleErrorCode.PASSKEY_NOT_FOUND,),
)
async def delete_passkey(request: Request) -> Response:
    svc = services(request)
    account_id = await _account_id(request, svc)
    async with svc.db.session() as session:
        await passkeys.remove(session, account_id, request.path_params["passkey_id"])
    return Response(status_code=204)


@api.route(
    "POST",
    "/api/accounts/passkeys/sign-in/options",
    "Start signing in with a passkey: options for `navigator.credentials.get` and the "
    "challenge's id. No e-mail: the authenticator offers the passkeys it keeps for this site",
    tag="identity",
    ok={200: out.PasskeyOptions},
    errors=(PeopleErrorCode.PASSKEYS_UNAVAILABLE, CommonErrorCode.RATE_LIMITED),
)
async def sign_in_options(request: Request) -> Response:
    svc = services(request)
    await throttle_sign_in(svc, request)
    challenge, options = passkeys.authentication_options(relying_party(svc, request))
    challenge_id = await svc.passkey_challenges.issue(Purpose.SIGN_IN, challenge, None)
    return JSONResponse({"challenge_id": challenge_id, "options": options})


@api.route(
    "POST",
    "/api/accounts/passkeys/sign-in",
    "Sign in with a passkey: the same answer as a password sign-in. " + OPTIONAL_GUEST + " Its "
    "orders and cart move into the account",
    body=PasskeySignInIn,
    tag="identity",
    ok={200: out.AccountSession},
    errors=(
        PeopleErrorCode.PASSKEYS_UNAVAILABLE,
        PeopleErrorCode.PASSKEY_CHALLENGE_INVALID,
        PeopleErrorCode.PASSKEY_UNKNOWN,
        PeopleErrorCode.PASSKEY_REJECTED,
        PeopleErrorCode.PASSKEY_SIGN_COUNT,
        PeopleErrorCode.GUEST_CLAIMED,
        CommonErrorCode.INVALID_TOKEN,
        WebErrorCode.SESSION_EXPIRED,
        CommonErrorCode.RATE_LIMITED,
    ),
)
async def sign_in(request: Request) -> Response:
    svc = services(request)
    body = parse(PasskeySignInIn, await read_body(request))
    guest = guest_of(request, svc)
    await throttle_sign_in(svc, request)
    rp = relying_party(svc, request)
    challenge = await svc.passkey_challenges.take(body.challenge_id, Purpose.SIGN_IN, None)
    async with svc.db.session() as session:
        account = await passkeys.authenticate(session, rp, challenge, body.credential)
        return await welcome(svc, session, account, guest, page_language(request))


async def _account_id(request: Request, svc: Services) -> int:
    account: Account = await signed_in_account(request, svc)
    assert account.id is not None
    return account.id


def _passkey_json(passkey: Passkey) -> dict[str, object]:
    return {
        "id": passkey.id,
        "name": passkey.name,
        "transports": [t for t in passkey.transports.split(",") if t],
        "created_ms": passkey.created_ms,
        "last_used_ms": passkey.last_used_ms,
    }
