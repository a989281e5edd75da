"""Buyer accounts in SQL: sign-up, sign-in and password changes (decision 0041)."""

from __future__ import annotations

import re
import uuid

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from kernel.clock import now_ms
from kernel.errors import Conflict, Invalid, Unauthorized
from people.auth_stamps import AuthStamps
from people.error_codes import PeopleErrorCode
from people.models import Account, Member
from people.passwords import DECOY_HASH, check_password, check_strength, hash_password

# Enough to catch a typo or a missing @; whether mail arrives is the real test.
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
MAX_EMAIL = 254


def normal_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > MAX_EMAIL or not EMAIL.match(email):
        raise Invalid("That is not an e-mail address.", code=PeopleErrorCode.INVALID_EMAIL)
    return email


async def sign_up(
    session: AsyncSession,
    email: str,
    password: str,
    display_name: str,
    buyer_id: str | None,
    lang: str = "en",
) -> Account:
    """A new account claiming ``buyer_id`` (the guest who signs up), or a fresh buyer id."""
    email = normal_email(email)
    check_strength(password, hints=(email, email.split("@")[0], display_name))
    if buyer_id is not None and await account_of_buyer(session, buyer_id) is not None:
        raise Conflict(
            "This session already belongs to an account; sign in instead.",
            code=PeopleErrorCode.GUEST_CLAIMED,
        )
    account = Account(
        email=email,
        display_name=display_name,
        password_hash=await hash_password(password),
        buyer_id=buyer_id or uuid.uuid4().hex,
        created_ms=now_ms(),
        lang=lang,
    )
    session.add(account)
    try:
        await session.commit()
    except IntegrityError:
        # Checked above, so a clash here is the e-mail, or two sign-ups racing for one guest.
        await session.rollback()
        if await account_of_buyer(session, account.buyer_id) is not None:
            raise Conflict(
                "This session already belongs to an account; sign in instead.",
                code=PeopleErrorCode.GUEST_CLAIMED,
            ) from None
        raise Conflict(
            "An account with that e-mail exists; sign in instead.",
            code=PeopleErrorCode.EMAIL_TAKEN,
        ) from None
    await session.refresh(account)
    return account


async def sign_in(session: AsyncSession, email: str, password: str) -> Account:
    """The account whose e-mail and password these are. A wrong e-mail and a wrong password
    get the same answer after the same work."""
    try:
        email = normal_email(email)
    except Invalid:
        email = ""
    found = await account_by_email(session, email) if email else None
    ok, newer_hash = await check_password(password, found.password_hash if found else DECOY_HASH)
    if found is None or not ok:
        raise Unauthorized(
            "That e-mail and password do not match an account.",
            code=PeopleErrorCode.WRONG_PASSWORD,
        )
    if newer_hash is not None:  # hashed with parameters since raised
        found.password_hash = newer_hash
        session.add(found)
        await session.commit()
        await session.refresh(found)
    return found


async def change_password(
    session: AsyncSession, stamps: AuthStamps, account: Account, password: str
) -> Account:
    """Set a new password; every session token made before stops working (the epoch), and the
    staff pages of every seller the account works for with it (their sign-in stamps)."""
    check_strength(password, hints=(account.email, account.display_name))
    assert account.id is not None
    account_id = account.id
    async with stamps.changing(await _employers(session, account_id)):
        account.password_hash = await hash_password(password)
        account.session_epoch += 1
        session.add(account)
        await session.commit()
        await session.refresh(account)
    # A seller the account joined while this committed was not marked: renew its stamp too.
    await stamps.renew(await _employers(session, account_id))
    return account


async def _employers(session: AsyncSession, account_id: int) -> list[int]:
    """The sellers the account is on the staff of."""
    query = select(Member.seller_id).where(col(Member.account_id) == account_id)
    return list((await session.exec(query)).all())


async def account_by_email(session: AsyncSession, email: str) -> Account | None:
    query = select(Account).where(col(Account.email) == email)
    return (await session.exec(query)).first()


async def account_of_buyer(session: AsyncSession, buyer_id: str) -> Account | None:
    query = select(Account).where(col(Account.buyer_id) == buyer_id)
    return (await session.exec(query)).first()


async def remember_language(session: AsyncSession, account: Account, lang: str) -> None:
    """The language the account last signed in from (its mail's language)."""
    if account.lang != lang:
        account.lang = lang
        session.add(account)
        await session.commit()
        await session.refresh(account)
