"""Passkeys (WebAuthn) for buyer accounts (decision 0041): the relying party a request speaks
for, single-use challenges (people/challenges.py), registering a credential and signing in with one.

py_webauthn checks what the authenticator signed; this module keeps each challenge usable once
(GETDEL) and each credential's sign counter rising (a guarded UPDATE)."""

from __future__ import annotations

import binascii
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from kernel.clock import now_ms
from kernel.errors import Conflict, Invalid, NotFound, Unauthorized
from people.error_codes import PeopleErrorCode
from people.keys import CHALLENGE_TTL_S
from people.models import Account, Passkey

RP_NAME = "livecart"
# WebAuthn's cap on a credential id; the column holds its base64url. py_webauthn does not
# check it, and a longer one would make PostgreSQL refuse the row (a 500, not a 422).
MAX_CREDENTIAL_ID = 1023
# A passkey stands in for the password, so the authenticator must check who holds it (PIN,
# fingerprint, face), not only that someone touched it.
USER_VERIFICATION = UserVerificationRequirement.REQUIRED
# What a malformed response makes py_webauthn or its base64 and CBOR decoders raise: each is
# the caller's bad input, never a server fault (cbor2's decode error is a ValueError).
BAD_RESPONSE = (
    WebAuthnException,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    binascii.Error,
)


@dataclass(frozen=True)
class RelyingParty:
    """The site a ceremony is for: ``id`` is its host name, ``origin`` what the browser puts in
    clientDataJSON (``http://localhost:8000``)."""

    id: str
    origin: str


def relying_party(base_url: str) -> RelyingParty:
    """The relying party of the site at ``base_url``. WebAuthn takes no IP address as an RP ID,
    so a site opened at one has no passkeys."""
    try:
        parts = urlsplit(base_url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, a broken IPv6 address
        raise _unavailable() from None
    if not host or parts.scheme not in ("http", "https") or _is_address(host):
        raise _unavailable()
    default = {"http": 80, "https": 443}[parts.scheme]
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")
    return RelyingParty(host, origin)


def _unavailable() -> Conflict:
    return Conflict(
        "Passkeys need the site to be opened by name (http://localhost:8000, say), "
        "not by an IP address.",
        code=PeopleErrorCode.PASSKEYS_UNAVAILABLE,
    )


def passkeys_possible(base_url: str) -> bool:
    try:
        relying_party(base_url)
    except Conflict:
        return False
    return True


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def user_handle(account: Account) -> bytes:
    """The account as the authenticator stores it: no e-mail or name in it (WebAuthn's advice),
    and the same for every passkey of the account, so one authenticator keeps one per account."""
    return str(account.id).encode()


def registration_options(
    rp: RelyingParty, account: Account, existing: Sequence[Passkey]
) -> tuple[bytes, dict[str, Any]]:
    """The challenge, and the options for ``navigator.credentials.create`` as JSON."""
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_name=account.email,
        user_id=user_handle(account),
        user_display_name=account.display_name,
        timeout=CHALLENGE_TTL_S * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            # Discoverable, so signing in needs no e-mail first.
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=USER_VERIFICATION,
        ),
        exclude_credentials=[_descriptor(p) for p in existing],
    )
    return options.challenge, json.loads(options_to_json(options))


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(passkey.credential_id),
        transports=[AuthenticatorTransport(t) for t in _transports(passkey.transports)],
    )


def _transports(joined: str) -> list[str]:
    known = {t.value for t in AuthenticatorTransport}
    return [t for t in joined.split(",") if t in known]


async def register(
    session: AsyncSession,
    rp: RelyingParty,
    account: Account,
    challenge: bytes,
    credential: dict[str, Any],
    name: str,
) -> Passkey:
    """Verify ``navigator.credentials.create``'s answer and keep the credential."""
    try:
        parsed = parse_registration_credential_json(credential)
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except BAD_RESPONSE as exc:
        raise Invalid(
            f"The passkey could not be verified: {exc}",
            code=PeopleErrorCode.PASSKEY_NOT_VERIFIED,
        ) from None
    if len(verified.credential_id) > MAX_CREDENTIAL_ID:
        raise Invalid(
            f"A passkey's id has at most {MAX_CREDENTIAL_ID} bytes.",
            code=PeopleErrorCode.PASSKEY_NOT_VERIFIED,
        )
    assert account.id is not None
    passkey = Passkey(
        account_id=account.id,
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        # Each known transport once: a repeated one would only lengthen the column.
        transports=",".join(sorted({t.value for t in parsed.response.transports or []})),
        name=name.strip() or "Passkey",
        created_ms=now_ms(),
    )
    session.add(passkey)
    try:
        await session.commit()
    except IntegrityError:  # the credential's id is unique: registered already, here or elsewhere
        await session.rollback()
        raise Conflict(
            "This passkey is registered already.", code=PeopleErrorCode.PASSKEY_EXISTS
        ) from None
    await session.refresh(passkey)
    return passkey


def authentication_options(rp: RelyingParty) -> tuple[bytes, dict[str, Any]]:
    """The challenge, and the options for ``navigator.credentials.get`` as JSON. No credentials
    are listed: the authenticator offers the ones it keeps for this site (discoverable)."""
    options = generate_authentication_options(
        rp_id=rp.id,
        timeout=CHALLENGE_TTL_S * 1000,
        user_verification=USER_VERIFICATION,
    )
    return options.challenge, json.loads(options_to_json(options))


async def authenticate(
    session: AsyncSession, rp: RelyingParty, challenge: bytes, credential: dict[str, Any]
) -> Account:
    """The account whose passkey signed ``navigator.credentials.get``'s answer."""
    try:
        parsed = parse_authentication_credential_json(credential)
    except BAD_RESPONSE:
        raise _rejected("That is not a passkey's answer.") from None
    passkey = await passkey_by_credential(session, bytes_to_base64url(parsed.raw_id))
    if passkey is None:
        raise Unauthorized(
            "This passkey is not registered here; it may have been deleted.",
            code=PeopleErrorCode.PASSKEY_UNKNOWN,
        )
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=passkey.public_key,
            # The counter is checked by the UPDATE below, where two sign-ins cannot both win.
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except BAD_RESPONSE as exc:
        raise _rejected(f"The passkey's answer did not verify: {exc}") from None
    handle = parsed.response.user_handle
    if handle is not None and handle != str(passkey.account_id).encode():
        raise _rejected("The passkey's answer names another account.")
    assert passkey.id is not None
    await _count_use(session, passkey.id, verified.new_sign_count)
    account = await session.get(Account, passkey.account_id)
    assert account is not None  # the foreign key
    return account


async def _count_use(session: AsyncSession, passkey_id: int, sign_count: int) -> None:
    """Record a use whose counter went up; one that did not may come from a copy of the
    authenticator, or replays an answer already used. An authenticator that keeps no counter
    sends 0 every time, and that stays allowed for as long as it stays 0."""
    rising = (
        col(Passkey.sign_count) == 0 if sign_count == 0 else col(Passkey.sign_count) < sign_count
    )
    counted = await session.exec(
        update(Passkey)
        .where(col(Passkey.id) == passkey_id, rising)
        .values(sign_count=sign_count, last_used_ms=now_ms())
    )
    await session.commit()
    if not counted.rowcount:
        raise Unauthorized(
            "This passkey's use counter went backwards; it may have been copied. "
            "Sign in another way.",
            code=PeopleErrorCode.PASSKEY_SIGN_COUNT,
        )


def _rejected(message: str) -> Unauthorized:
    return Unauthorized(message, code=PeopleErrorCode.PASSKEY_REJECTED)


async def passkey_by_credential(session: AsyncSession, credential_id: str) -> Passkey | None:
    query = select(Passkey).where(col(Passkey.credential_id) == credential_id)
    return (await session.exec(query)).first()


async def passkeys_of(session: AsyncSession, account_id: int) -> Sequence[Passkey]:
    query = select(Passkey).where(col(Passkey.account_id) == account_id)
    return (await session.exec(query.order_by(col(Passkey.id)))).all()


async def remove(session: AsyncSession, account_id: int, passkey_id: int) -> None:
    """Delete one of the account's passkeys; another account's is as unknown as a missing one."""
    deleted = await session.exec(
        delete(Passkey).where(col(Passkey.id) == passkey_id, col(Passkey.account_id) == account_id)
    )
    await session.commit()
    if not deleted.rowcount:
        raise NotFound("You have no passkey with that id.", code=PeopleErrorCode.PASSKEY_NOT_FOUND)
