"""A seller's staff in SQL (decision 0043): members and their roles, invitations by e-mail, and
API tokens scoped to a role. Every change a race could double (two joins of one invitation,
two owners, a role set on the owner) is one guarded statement or a unique index."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from kernel.clock import now_ms
from kernel.errors import Conflict, Forbidden, NotFound
from people.accounts import normal_email
from people.auth_stamps import AuthStamps
from people.error_codes import PeopleErrorCode
from people.models import Account, ApiToken, Invitation, Member
from people.roles import Role

TOKEN_PREFIX = "lc_sk_"  # a seller API token, the owner's or a scoped one
INVITATION_TTL_MS = 7 * 24 * 3600 * 1000
MAX_LIVE_TOKENS = 50  # per seller: enough for every script, not a table anyone can flood


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str = TOKEN_PREFIX) -> str:
    """256 bits from the operating system's CSPRNG, never guessable."""
    return prefix + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Staff:
    """Who acts for a seller, and as what: a member (``account_id``) or a token (``token_id``;
    neither for the owner's own token)."""

    seller_id: int
    role: Role
    account_id: int | None = None
    token_id: int | None = None


# --- members --------------------------------------------------------------------------------


async def add_owner(session: AsyncSession, seller_id: int, account_id: int) -> Member:
    member = Member(
        seller_id=seller_id, account_id=account_id, role=Role.OWNER, created_ms=now_ms()
    )
    session.add(member)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(
            "This seller has an owner already, or the account is on its staff.",
            code=PeopleErrorCode.ALREADY_MEMBER,
        ) from None
    await session.refresh(member)
    return member


async def member_role(session: AsyncSession, seller_id: int, account_id: int) -> Role | None:
    query = select(Member.role).where(
        col(Member.seller_id) == seller_id, col(Member.account_id) == account_id
    )
    role = (await session.exec(query)).first()
    return Role(role) if role is not None else None


async def memberships(session: AsyncSession, account_id: int) -> Sequence[Member]:
    """The sellers an account is on the staff of, oldest membership first."""
    query = select(Member).where(col(Member.account_id) == account_id).order_by(col(Member.id))
    return (await session.exec(query)).all()


async def members_of(session: AsyncSession, seller_id: int) -> Sequence[tuple[Member, Account]]:
    query = (
        select(Member, Account)
        .join(Account, col(Account.id) == col(Member.account_id))
        .where(col(Member.seller_id) == seller_id)
        .order_by(col(Member.id))
    )
    return (await session.exec(query)).all()


async def set_role(
    session: AsyncSession, stamps: AuthStamps, seller_id: int, member_id: int, role: Role
) -> None:
    """Give a member another role; the owner's cannot change, and nobody becomes owner."""
    _grantable(role)
    async with stamps.changing([seller_id]):
        await _set_role(session, seller_id, member_id, role)


async def _set_role(session: AsyncSession, seller_id: int, member_id: int, role: Role) -> None:
    changed = await session.exec(
        update(Member)
        .where(
            col(Member.id) == member_id,
            col(Member.seller_id) == seller_id,
            col(Member.role) != Role.OWNER,
        )
        .values(role=role)
    )
    await _changed_one(session, changed.rowcount, seller_id, member_id)


async def remove_member(
    session: AsyncSession, stamps: AuthStamps, seller_id: int, member_id: int
) -> None:
    async with stamps.changing([seller_id]):
        await _remove_member(session, seller_id, member_id)


async def _remove_member(session: AsyncSession, seller_id: int, member_id: int) -> None:
    removed = await session.exec(
        delete(Member).where(
            col(Member.id) == member_id,
            col(Member.seller_id) == seller_id,
            col(Member.role) != Role.OWNER,
        )
    )
    await _changed_one(session, removed.rowcount, seller_id, member_id)


async def _changed_one(
    session: AsyncSession, rowcount: int, seller_id: int, member_id: int
) -> None:
    if rowcount == 1:
        await session.commit()
        return
    await session.rollback()
    found = await session.get(Member, member_id)
    if found is None or found.seller_id != seller_id:
        raise NotFound(
            "No such member on this shop's staff.", code=PeopleErrorCode.MEMBER_NOT_FOUND
        )
    raise Conflict(
        "The owner stays the owner: their role cannot change and they cannot be removed.",
        code=PeopleErrorCode.OWNER_FIXED,
    )


def _grantable(role: Role) -> None:
    if role is Role.OWNER:
        raise Conflict(
            "A seller has one owner, made with the seller; give another role.",
            code=PeopleErrorCode.OWNER_FIXED,
        )


# --- invitations ----------------------------------------------------------------------------


async def invite(
    session: AsyncSession, seller_id: int, email: str, role: Role, *, owner: bool = False
) -> tuple[Invitation, str]:
    """A new invitation and its link's token (not stored: only its hash is). ``owner``: the
    link ``livecart create-seller`` prints for the seller's own e-mail (the one owner)."""
    if not owner:
        _grantable(role)
    token = secrets.token_urlsafe(32)
    now = now_ms()
    invitation = Invitation(
        seller_id=seller_id,
        email=normal_email(email),
        role=role,
        token_hash=hash_token(token),
        created_ms=now,
        expires_ms=now + INVITATION_TTL_MS,
    )
    session.add(invitation)
    await session.commit()
    await session.refresh(invitation)
    return invitation, token


def _no_invitation() -> NotFound:
    return NotFound(
        "This invitation is not valid: it was used, withdrawn or is too old. Ask for a new one.",
        code=PeopleErrorCode.INVITATION_INVALID,
    )


async def open_invitation(session: AsyncSession, token: str) -> Invitation:
    """The unused, unexpired invitation of a link's token."""
    query = select(Invitation).where(col(Invitation.token_hash) == hash_token(token))
    found = (await session.exec(query)).first()
    if found is None or found.accepted_ms is not None or found.expires_ms <= now_ms():
        raise _no_invitation()
    return found


async def join(session: AsyncSession, token: str, account: Account) -> Member:
    """The account takes the invitation's place on the staff. The invitation is spent and the
    member made in one transaction: two joins racing get one member, the other a refusal."""
    invitation = await open_invitation(session, token)
    if invitation.email != account.email:
        raise Forbidden(
            f"This invitation is for {invitation.email}; sign in with that e-mail.",
            code=PeopleErrorCode.INVITATION_EMAIL_MISMATCH,
        )
    now = now_ms()
    spent = await session.exec(
        update(Invitation)
        .where(
            col(Invitation.id) == invitation.id,
            col(Invitation.accepted_ms).is_(None),
            col(Invitation.expires_ms) > now,
        )
        .values(accepted_ms=now, accepted_by=account.id)
    )
    if spent.rowcount != 1:
        await session.rollback()
        raise _no_invitation()
    assert account.id is not None
    member = Member(
        seller_id=invitation.seller_id, account_id=account.id, role=invitation.role, created_ms=now
    )
    session.add(member)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()  # the invitation stays unused
        raise Conflict(
            "This account is on the shop's staff already.", code=PeopleErrorCode.ALREADY_MEMBER
        ) from None
    await session.refresh(member)
    return member


async def pending_invitations(session: AsyncSession, seller_id: int) -> Sequence[Invitation]:
    query = (
        select(Invitation)
        .where(
            col(Invitation.seller_id) == seller_id,
            col(Invitation.accepted_ms).is_(None),
            col(Invitation.expires_ms) > now_ms(),
        )
        .order_by(col(Invitation.id))
    )
    return (await session.exec(query)).all()


async def withdraw_invitation(session: AsyncSession, seller_id: int, invitation_id: int) -> None:
    withdrawn = await session.exec(
        delete(Invitation).where(
            col(Invitation.id) == invitation_id,
            col(Invitation.seller_id) == seller_id,
            col(Invitation.accepted_ms).is_(None),
        )
    )
    if withdrawn.rowcount != 1:
        await session.rollback()
        raise _no_invitation()
    await session.commit()


# --- API tokens -----------------------------------------------------------------------------


async def create_token(
    session: AsyncSession, seller_id: int, name: str, role: Role
) -> tuple[ApiToken, str]:
    _grantable(role)
    live = await session.exec(
        select(ApiToken.id).where(
            col(ApiToken.seller_id) == seller_id, col(ApiToken.revoked_ms).is_(None)
        )
    )
    # A cap, not stock: two racing creations may pass it by one, which harms nobody.
    if len(live.all()) >= MAX_LIVE_TOKENS:
        raise Conflict(
            f"A seller keeps at most {MAX_LIVE_TOKENS} API tokens; revoke one first.",
            code=PeopleErrorCode.TOO_MANY_TOKENS,
        )
    token = new_token()
    row = ApiToken(
        seller_id=seller_id, name=name, role=role, token_hash=hash_token(token), created_ms=now_ms()
    )
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row, token


async def token_staff(session: AsyncSession, token: str) -> Staff | None:
    """Who a scoped token acts as, or None (not one, or revoked)."""
    query = select(ApiToken).where(col(ApiToken.token_hash) == hash_token(token))
    found = (await session.exec(query)).first()
    if found is None or found.revoked_ms is not None:
        return None
    assert found.id is not None
    return Staff(found.seller_id, Role(found.role), token_id=found.id)


async def token_role(session: AsyncSession, seller_id: int, token_id: int) -> Role | None:
    """A scoped token's role while it is not revoked (a page signed in with it)."""
    found = await session.get(ApiToken, token_id)
    if found is None or found.seller_id != seller_id or found.revoked_ms is not None:
        return None
    return Role(found.role)


async def tokens_of(session: AsyncSession, seller_id: int) -> Sequence[ApiToken]:
    query = select(ApiToken).where(col(ApiToken.seller_id) == seller_id).order_by(col(ApiToken.id))
    return (await session.exec(query)).all()


async def revoke_token(
    session: AsyncSession, stamps: AuthStamps, seller_id: int, token_id: int
) -> None:
    async with stamps.changing([seller_id]):
        await _revoke_token(session, seller_id, token_id)


async def _revoke_token(session: AsyncSession, seller_id: int, token_id: int) -> None:
    revoked = await session.exec(
        update(ApiToken)
        .where(
            col(ApiToken.id) == token_id,
            col(ApiToken.seller_id) == seller_id,
            col(ApiToken.revoked_ms).is_(None),
        )
        .values(revoked_ms=now_ms())
    )
    if revoked.rowcount != 1:
        await session.rollback()
        raise NotFound("No such API token, or it is revoked.", code=PeopleErrorCode.TOKEN_NOT_FOUND)
    await session.commit()
