"""SQL tables of people. Time is epoch milliseconds."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, LargeBinary, UniqueConstraint, text
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
    # The language of the pages it last signed up or in from: mail it did not ask for at that
    # moment (a followed creator going live) is written in it.
    lang: str = Field(default="en", max_length=8, sa_column_kwargs={"server_default": "en"})


class Member(SQLModel, table=True):
    """An account on a seller's staff, with a role (people/roles.py). A seller has exactly one
    owner; an account is at most one member of a seller (decision 0043)."""

    __tablename__ = "seller_members"
    __table_args__ = (
        UniqueConstraint("seller_id", "account_id", name="one_membership"),
        # One owner a seller: a second one is refused by the database, not by a check first.
        Index(
            "one_owner",
            "seller_id",
            unique=True,
            sqlite_where=text("role = 'owner'"),
            postgresql_where=text("role = 'owner'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    seller_id: int = Field(foreign_key="sellers.id", index=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    role: str = Field(max_length=16)
    created_ms: int = Field(sa_type=BigInteger)


class Invitation(SQLModel, table=True):
    """An e-mailed link to join a seller's staff: used once, before it expires. Only a hash of
    its token is kept; the link itself is in the mail."""

    __tablename__ = "seller_invitations"
    id: int | None = Field(default=None, primary_key=True)
    seller_id: int = Field(foreign_key="sellers.id", index=True)
    email: str = Field(max_length=320)  # lower-cased
    role: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    created_ms: int = Field(sa_type=BigInteger)
    expires_ms: int = Field(sa_type=BigInteger)
    accepted_ms: int | None = Field(default=None, sa_type=BigInteger)
    accepted_by: int | None = Field(default=None, foreign_key="accounts.id")


class ApiToken(SQLModel, table=True):
    """A seller API token for scripts, scoped to a role and revocable; a seller has several.
    (The owner's token from ``livecart create-seller`` stays on the seller's row.)"""

    __tablename__ = "seller_tokens"
    id: int | None = Field(default=None, primary_key=True)
    seller_id: int = Field(foreign_key="sellers.id", index=True)
    name: str = Field(max_length=60)
    role: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_ms: int = Field(sa_type=BigInteger)
    revoked_ms: int | None = Field(default=None, sa_type=BigInteger)


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
