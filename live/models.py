"""The durable record of a room in SQL: who owns it and when it ran. The live state (bag, pin,
deals, chat) is in Redis (live/store.py); SQL keeps what must outlive a Redis reset."""

from __future__ import annotations

from sqlalchemy import BigInteger
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
