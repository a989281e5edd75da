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
