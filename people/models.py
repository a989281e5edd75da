"""SQL tables of people. Time is epoch milliseconds."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, text
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


MAX_ADDRESSES = 10  # per account


class SavedAddress(SQLModel, table=True):
    """A shipping address an account keeps for checkout; the fields and limits of a checkout's
    ``shipping``. At most one per account is the default (the partial unique index), and
    there is one whenever the account has any (people/addresses.py)."""

    __tablename__ = "account_addresses"
    __table_args__ = (
        Index(
            "ix_account_addresses_one_default",
            "account_id",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    name: str = Field(max_length=100)
    line1: str = Field(max_length=200)
    line2: str = Field(default="", max_length=200)
    city: str = Field(max_length=100)
    postal_code: str = Field(max_length=20)
    country: str = Field(max_length=2)  # ISO 3166-1 alpha-2
    is_default: bool = Field(default=False)
    created_ms: int = Field(sa_type=BigInteger)
