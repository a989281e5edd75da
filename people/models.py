"""SQL tables of people. Time is epoch milliseconds."""

from __future__ import annotations

from sqlalchemy import BigInteger, LargeBinary
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


class Passkey(SQLModel, table=True):
    """A WebAuthn credential that signs its account in (decision 0041). ``sign_count`` only
    goes up, by a guarded UPDATE (people/passkeys.py); an authenticator that keeps no counter
    sends 0 every time."""

    __tablename__ = "account_passkeys"
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    # base64url, as the browser names it; WebAuthn caps the raw id at 1,023 bytes.
    credential_id: str = Field(max_length=1400, unique=True)
    public_key: bytes = Field(sa_type=LargeBinary)  # COSE_Key, as the authenticator gave it
    sign_count: int = Field(default=0, sa_type=BigInteger)  # a 32-bit unsigned counter
    transports: str = Field(default="", max_length=200)  # comma-separated hints: "internal,usb"
    name: str = Field(max_length=60)
    created_ms: int = Field(sa_type=BigInteger)
    last_used_ms: int | None = Field(default=None, sa_type=BigInteger)
