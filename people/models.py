"""SQL tables of people. Time is epoch milliseconds."""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel


class Account(SQLModel, table=True):
    """A buyer's account. ``buyer_id`` is the id every per-buyer rule keys on (holds, carts,
    deal limits, mutes, orders): the guest id that signed up, for life (decision 0041)."""

    __tablename__ = "accounts"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)  # lower-cased
    display_name: str = Field(max_length=40)
    password_hash: str = Field(max_length=200)
    buyer_id: str = Field(max_length=64, unique=True)
    # Signed into every account token: bumped when the password changes, so tokens made before
    # stop working wherever the account is read.
    session_epoch: int = Field(default=0)
    created_ms: int = Field(sa_type=BigInteger)
