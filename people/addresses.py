"""The shipping addresses an account keeps: at most ``MAX_ADDRESSES``, exactly one the default
whenever there is any (checkout is prefilled from it).

Every change first locks the account's row (PostgreSQL; SQLite's one writer serialises the
transactions that write), and the rules are also in the statements themselves: the insert
counts in its own ``WHERE``, and a partial unique index allows one default per account. So
two requests racing never make an eleventh address or a second default."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import ColumnElement, delete, exists, func, insert, literal, update
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from kernel.clock import now_ms
from kernel.errors import Conflict, NotFound
from people.error_codes import PeopleErrorCode
from people.models import MAX_ADDRESSES, Account, SavedAddress


@dataclass(frozen=True)
class Address:
    """Where to ship, as a checkout's ``shipping`` says it (checked by the caller)."""

    name: str
    line1: str
    line2: str
    city: str
    postal_code: str
    country: str


async def addresses_of(session: AsyncSession, account_id: int) -> list[SavedAddress]:
    """The default first, then the newest first."""
    query = (
        select(SavedAddress)
        .where(col(SavedAddress.account_id) == account_id)
        .order_by(
            col(SavedAddress.is_default).desc(),
            col(SavedAddress.created_ms).desc(),
            col(SavedAddress.id).desc(),
        )
    )
    return list((await session.exec(query)).all())


async def default_of(session: AsyncSession, account_id: int) -> SavedAddress | None:
    found = await addresses_of(session, account_id)
    return found[0] if found and found[0].is_default else None


async def add(
    session: AsyncSession, account_id: int, address: Address, *, make_default: bool
) -> SavedAddress:
    """Keep a new address; the account's first is its default whatever ``make_default`` says."""
    conn = await _locked(session, account_id)
    kept = aliased(SavedAddress)  # named apart, so no subquery is read as the row written
    mine = col(kept.account_id) == account_id
    count = core_select(func.count()).select_from(kept).where(mine).scalar_subquery()
    first = ~exists().where(mine)
    values = {**asdict(address), "account_id": account_id, "created_ms": now_ms()}
    rows = core_select(*(literal(v) for v in values.values()), first).where(count < MAX_ADDRESSES)
    columns = [*values, "is_default"]
    added = await conn.execute(
        insert(SavedAddress).from_select(columns, rows).returning(col(SavedAddress.id))
    )
    address_id = added.scalar()
    if address_id is None:
        await session.rollback()
        raise Conflict(
            f"An account keeps at most {MAX_ADDRESSES} addresses; delete one first.",
            code=PeopleErrorCode.TOO_MANY_ADDRESSES,
            max=MAX_ADDRESSES,
        )
    if make_default:
        await _make_default(conn, account_id, address_id)
    return await _committed(session, address_id)


async def replace(
    session: AsyncSession, account_id: int, address_id: int, address: Address, *, make_default: bool
) -> SavedAddress:
    """Change every field of one of the account's addresses. ``make_default`` false leaves
    which one is the default as it is (a default changes by choosing another)."""
    conn = await _locked(session, account_id)
    changed = await conn.execute(
        update(SavedAddress).where(*_owned(account_id, address_id)).values(**asdict(address))
    )
    if changed.rowcount != 1:
        await session.rollback()
        raise _not_found(address_id)
    if make_default:
        await _make_default(conn, account_id, address_id)
    return await _committed(session, address_id)


async def choose_default(session: AsyncSession, account_id: int, address_id: int) -> None:
    conn = await _locked(session, account_id)
    if not await _make_default(conn, account_id, address_id):
        await session.rollback()
        raise _not_found(address_id)
    await session.commit()


async def remove(session: AsyncSession, account_id: int, address_id: int) -> None:
    """Forget an address; when it was the default, the newest left becomes the default."""
    conn = await _locked(session, account_id)
    gone = await conn.execute(
        delete(SavedAddress)
        .where(*_owned(account_id, address_id))
        .returning(col(SavedAddress.is_default))
    )
    was_default = gone.scalar()
    if was_default is None:
        await session.rollback()
        raise _not_found(address_id)
    if was_default:
        left = aliased(SavedAddress)
        newest = (
            core_select(col(left.id))
            .where(col(left.account_id) == account_id)
            .order_by(col(left.created_ms).desc(), col(left.id).desc())
            .limit(1)
            .scalar_subquery()
        )
        await conn.execute(
            update(SavedAddress).where(col(SavedAddress.id) == newest).values(is_default=True)
        )
    await session.commit()


async def _locked(session: AsyncSession, account_id: int) -> AsyncConnection:
    """The session's connection, holding the account's row until commit or rollback."""
    conn = await session.connection()
    await conn.execute(
        core_select(col(Account.id)).where(col(Account.id) == account_id).with_for_update()
    )
    return conn


async def _make_default(conn: AsyncConnection, account_id: int, address_id: int) -> bool:
    """Whether the account has that address (now its default). Two statements, the old default
    cleared first: the unique index is checked row by row, so one statement that moved the
    flag could meet two defaults halfway through."""
    chosen = aliased(SavedAddress)
    has_it = exists().where(col(chosen.id) == address_id, col(chosen.account_id) == account_id)
    await conn.execute(
        update(SavedAddress)
        .where(
            col(SavedAddress.account_id) == account_id,
            col(SavedAddress.is_default),
            col(SavedAddress.id) != address_id,
            has_it,
        )
        .values(is_default=False)
    )
    made = await conn.execute(
        update(SavedAddress).where(*_owned(account_id, address_id)).values(is_default=True)
    )
    return bool(made.rowcount == 1)


def _owned(account_id: int, address_id: int) -> tuple[ColumnElement[bool], ...]:
    # Another account's id is refused as one that does not exist: nobody learns it does.
    return (col(SavedAddress.id) == address_id, col(SavedAddress.account_id) == account_id)


async def _committed(session: AsyncSession, address_id: int) -> SavedAddress:
    """The address as written, read before the commit lets go of the account's row."""
    query = select(SavedAddress).where(col(SavedAddress.id) == address_id)
    found = (await session.exec(query.execution_options(populate_existing=True))).one()
    await session.commit()
    return found


def _not_found(address_id: int) -> NotFound:
    return NotFound(
        "You have no saved address with that id.",
        code=PeopleErrorCode.ADDRESS_NOT_FOUND,
        address_id=address_id,
    )
