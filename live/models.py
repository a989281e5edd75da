"""The durable record of a room in SQL: who owns it and when it ran. The live state (bag, pin,
deals, chat) is in Redis (live/store.py); SQL keeps what must outlive a Redis reset."""

from __future__ import annotations

from sqlalchemy import BigInteger, UniqueConstraint
from sqlmodel import Field, SQLModel

from live.room_states import RoomStatus


class LiveRoom(SQLModel, table=True):
    __tablename__ = "rooms"
    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    seller_id: int = Field(foreign_key="sellers.id", index=True)
    title: str = Field(max_length=120)
    # A RoomStatus (live/room_states.py), mirrored from the Redis state after each change
    status: str = Field(default=RoomStatus.SCHEDULED, max_length=16)
    created_ms: int = Field(sa_type=BigInteger)
    started_ms: int | None = Field(default=None, sa_type=BigInteger)
    ended_ms: int | None = Field(default=None, sa_type=BigInteger)
    # Most viewers seen at once (across nodes), mirrored from Redis as the room runs.
    peak_viewers: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Every viewer the room had (HyperLogLog), written with its minutes when it ended; None until
    # then: the room's analytics are still read from Redis (decision 0044).
    unique_viewers: int | None = Field(default=None)
    # When its followers and reminders were told it is live (decision 0045): set once, by the
    # guarded UPDATE that decides which request (on whichever node) tells them.
    followers_told_ms: int | None = Field(default=None, sa_type=BigInteger)


class RoomMinute(SQLModel, table=True):
    """One minute of a room's analytics, written from Redis when the room ended (decision 0044).
    Written whole each time (an upsert on the key), so writing it again counts nothing twice.
    Sales are not here: they are read from the orders, which refunds keep true."""

    __tablename__ = "room_minutes"
    room_id: int = Field(foreign_key="rooms.id", primary_key=True)
    minute_ms: int = Field(sa_type=BigInteger, primary_key=True)
    viewers: int  # most at once
    unique_viewers: int  # who joined in the minute
    followers: int
    likes: int
    chat: int
    impressions: int
    clicks: int
    carts: int


class Follow(SQLModel, table=True):
    """An account follows a seller: the creator of its rooms and the owner of its shops
    (decision 0045). Following twice is one row: the unique pair."""

    __tablename__ = "follows"
    __table_args__ = (UniqueConstraint("account_id", "seller_id", name="one_follow"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    seller_id: int = Field(foreign_key="sellers.id", index=True)
    created_ms: int = Field(sa_type=BigInteger)


class Reminder(SQLModel, table=True):
    """An account asked to be told when a scheduled room goes live."""

    __tablename__ = "room_reminders"
    __table_args__ = (UniqueConstraint("account_id", "room_id", name="one_reminder"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    room_id: int = Field(foreign_key="rooms.id", index=True)
    created_ms: int = Field(sa_type=BigInteger)


class Notification(SQLModel, table=True):
    """Something an account is told in its pages' notification list. ``kind`` is a
    ``NotificationKind`` (live/follows.py); one per account, kind and room."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("account_id", "kind", "room_id", name="one_notice"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    kind: str = Field(max_length=16)
    room_id: int = Field(foreign_key="rooms.id")
    # What the text is made of, as it was when told: the seller's name and the room's title.
    seller_name: str = Field(max_length=200)
    title: str = Field(max_length=120)
    created_ms: int = Field(sa_type=BigInteger)
    read_ms: int | None = Field(default=None, sa_type=BigInteger)
