"""Follows of sellers, reminders of scheduled rooms, and the notifications an account is told
when a room goes live (decision 0045).

Every rule is in a statement: the unique pairs make following and reminding twice one row, a
reminder is only written while its room's row says ``scheduled``, and one guarded UPDATE of the
room (``followers_told_ms`` set where it is NULL) decides which request, on whichever node,
tells its followers: that request writes every notification in one INSERT … SELECT."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import exists, func, insert, literal, union, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import Seller
from kernel.clock import now_ms
from kernel.errors import Conflict, NotFound
from live.error_codes import LiveErrorCode
from live.models import Follow, LiveRoom, Notification, Reminder
from live.room_states import RoomStatus
from people.models import Account

LISTED = 50  # notifications an account is shown, newest first


class NotificationKind(StrEnum):
    WENT_LIVE = "went_live"  # a followed seller's room, or a room with a reminder, went live


@dataclass(frozen=True)
class Followed:
    seller_id: int
    name: str
    since_ms: int


@dataclass(frozen=True)
class Told:
    """Someone a room's going live is mailed to."""

    email: str
    display_name: str
    seller_name: str
    title: str
    lang: str  # the account's (people/models.py): its mail is written in it
    room_id: int


async def follow(session: AsyncSession, account_id: int, seller_id: int) -> bool:
    """Whether this call made the follow (False: it was there already)."""
    await _seller(session, seller_id)
    session.add(Follow(account_id=account_id, seller_id=seller_id, created_ms=now_ms()))
    try:
        await session.commit()
    except IntegrityError:  # the unique pair: followed already, maybe by a racing request
        await session.rollback()
        return False
    return True


async def unfollow(session: AsyncSession, account_id: int, seller_id: int) -> None:
    await _seller(session, seller_id)
    mine = (col(Follow.account_id) == account_id, col(Follow.seller_id) == seller_id)
    await session.exec(delete(Follow).where(*mine))
    await session.commit()


async def following(session: AsyncSession, account_id: int) -> list[Followed]:
    """The sellers the account follows, the latest followed first."""
    query = (
        select(Follow.seller_id, Seller.name, Follow.created_ms)
        .join(Seller, col(Seller.id) == col(Follow.seller_id))
        .where(col(Follow.account_id) == account_id)
        .order_by(col(Follow.created_ms).desc(), col(Follow.id).desc())
    )
    return [Followed(*row) for row in (await session.exec(query)).all()]


async def follower_count(session: AsyncSession, seller_id: int) -> int:
    query = select(func.count()).select_from(Follow).where(col(Follow.seller_id) == seller_id)
    return int((await session.exec(query)).one())


async def live_room_ids(session: AsyncSession, seller_id: int) -> list[int]:
    """The seller's rooms live now: a follow made while one runs counts in its analytics."""
    query = select(LiveRoom.id).where(
        col(LiveRoom.seller_id) == seller_id, col(LiveRoom.status) == RoomStatus.LIVE
    )
    return [room_id for room_id in (await session.exec(query)).all() if room_id is not None]


async def remind(session: AsyncSession, account_id: int, room_id: int) -> None:
    """Ask to be told when the room goes live; only a scheduled room takes a reminder. The
    insert reads the room's status itself, so a room going live meanwhile writes nothing."""
    now = now_ms()
    scheduled = core_select(literal(account_id), literal(room_id), literal(now)).where(
        exists().where(
            col(LiveRoom.id) == room_id,
            col(LiveRoom.status) == RoomStatus.SCHEDULED,
            col(LiveRoom.followers_told_ms).is_(None),
        )
    )
    columns = ["account_id", "room_id", "created_ms"]
    try:
        written = await session.exec(insert(Reminder).from_select(columns, scheduled))
    except IntegrityError:  # asked already
        await session.rollback()
        return
    if written.rowcount == 1:
        await session.commit()
        return
    await session.rollback()
    room = await session.get(LiveRoom, room_id)
    if room is None:
        raise NotFound("No such room.", code=LiveErrorCode.ROOM_NOT_FOUND, room_id=room_id)
    raise Conflict(
        "Only a room that has not started yet takes a reminder.",
        code=LiveErrorCode.ROOM_NOT_SCHEDULED,
        room_id=room_id,
        status=room.status,
    )


async def forget_reminder(session: AsyncSession, account_id: int, room_id: int) -> None:
    if await session.get(LiveRoom, room_id) is None:
        raise NotFound("No such room.", code=LiveErrorCode.ROOM_NOT_FOUND, room_id=room_id)
    mine = (col(Reminder.account_id) == account_id, col(Reminder.room_id) == room_id)
    await session.exec(delete(Reminder).where(*mine))
    await session.commit()


async def reminded_room_ids(session: AsyncSession, account_id: int) -> list[int]:
    query = select(Reminder.room_id).where(col(Reminder.account_id) == account_id)
    return list((await session.exec(query)).all())


async def notifications_of(session: AsyncSession, account_id: int) -> list[Notification]:
    query = (
        select(Notification)
        .where(col(Notification.account_id) == account_id)
        .order_by(col(Notification.created_ms).desc(), col(Notification.id).desc())
        .limit(LISTED)
    )
    return list((await session.exec(query)).all())


async def unread_count(session: AsyncSession, account_id: int) -> int:
    query = (
        select(func.count())
        .select_from(Notification)
        .where(col(Notification.account_id) == account_id, col(Notification.read_ms).is_(None))
    )
    return int((await session.exec(query)).one())


async def mark_read(session: AsyncSession, account_id: int) -> int:
    """Every unread notification of the account read now; how many were."""
    changed = await session.exec(
        update(Notification)
        .where(col(Notification.account_id) == account_id, col(Notification.read_ms).is_(None))
        .values(read_ms=now_ms())
    )
    await session.commit()
    return int(changed.rowcount)


async def tell_followers(session: AsyncSession, room_id: int) -> list[Told]:
    """Notify the followers of a room's seller and whoever asked for a reminder, once per room:
    the request whose UPDATE claims the room writes the notifications (one each, however many
    ways an account asked) and gets who to mail; every other request gets nothing."""
    now = now_ms()
    claimed = await session.exec(
        update(LiveRoom)
        .where(
            col(LiveRoom.id) == room_id,
            col(LiveRoom.status) == RoomStatus.LIVE,
            col(LiveRoom.followers_told_ms).is_(None),
        )
        .values(followers_told_ms=now)
    )
    if claimed.rowcount != 1:
        await session.rollback()
        return []
    room = await session.get(LiveRoom, room_id)
    assert room is not None  # claimed just now
    seller = await _seller(session, room.seller_id)
    audience = union(
        core_select(col(Follow.account_id)).where(col(Follow.seller_id) == room.seller_id),
        core_select(col(Reminder.account_id)).where(col(Reminder.room_id) == room_id),
    ).subquery()
    rows = core_select(
        audience.c.account_id,
        literal(NotificationKind.WENT_LIVE.value),
        literal(room_id),
        literal(seller.name),
        literal(room.title),
        literal(now),
    )
    columns = ["account_id", "kind", "room_id", "seller_name", "title", "created_ms"]
    await session.exec(insert(Notification).from_select(columns, rows))
    await session.commit()
    return await _told(session, room_id)


async def _told(session: AsyncSession, room_id: int) -> list[Told]:
    query = (
        select(Account, Notification)
        .select_from(Notification)
        .join(Account, col(Account.id) == col(Notification.account_id))
        .where(
            col(Notification.room_id) == room_id,
            col(Notification.kind) == NotificationKind.WENT_LIVE,
        )
    )
    return [
        Told(a.email, a.display_name, n.seller_name, n.title, a.lang, room_id)
        for a, n in (await session.exec(query)).all()
    ]


async def _seller(session: AsyncSession, seller_id: int) -> Seller:
    seller = await session.get(Seller, seller_id)
    if seller is None:
        raise NotFound("No such seller.", code=LiveErrorCode.SELLER_NOT_FOUND, seller_id=seller_id)
    return seller
