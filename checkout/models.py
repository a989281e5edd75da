"""SQL tables of orders and their event log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Text
from sqlmodel import Field, SQLModel


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    id: int | None = Field(default=None, primary_key=True)
    # One order per hold: the unique key that makes redelivery from the stream harmless.
    hold_id: str = Field(max_length=40, unique=True)
    deal_id: int = Field(foreign_key="deals.id", index=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    sku_id: int = Field(foreign_key="skus.id")
    buyer_id: str = Field(max_length=64, index=True)
    quantity: int
    unit_price: int = Field(sa_type=BigInteger)
    total: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    status: str = Field(max_length=24)
    payment_ref: str = Field(max_length=64)
    paid_ms: int = Field(sa_type=BigInteger)
    # Where to send it, as the buyer gave it at checkout (None: given no address, as over the
    # API for goods that need none).
    shipping: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    carrier: str = Field(default="", max_length=60, sa_column_kwargs={"server_default": ""})
    tracking_number: str = Field(
        default="", max_length=100, sa_column_kwargs={"server_default": ""}
    )
    created_ms: int = Field(sa_type=BigInteger)
    updated_ms: int = Field(sa_type=BigInteger)


class OrderEvent(SQLModel, table=True):
    __tablename__ = "order_events"
    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    from_status: str | None = Field(default=None, max_length=24)
    to_status: str = Field(max_length=24)
    at_ms: int = Field(sa_type=BigInteger)
    actor: str = Field(default="", max_length=64)
    note: str = Field(default="", max_length=500)


class PaymentAttempt(SQLModel, table=True):
    """One try at paying for a hold, written before the provider is called (decision 0017):
    whatever happens to the process next, the reconciler can find the charge by ``charge_key``
    and settle it."""

    __tablename__ = "payment_attempts"
    id: int | None = Field(default=None, primary_key=True)
    # The provider's idempotency key: "<hold id>:<Idempotency-Key>".
    charge_key: str = Field(max_length=200, unique=True)
    # The Redis key prefix whose holds and provider ledger the attempt belongs to: nodes that
    # share a database under different prefixes never settle each other's attempts.
    keyspace: str = Field(max_length=40)
    hold_id: str = Field(max_length=40, index=True)
    buyer_id: str = Field(max_length=64)
    attempt: str = Field(max_length=24)  # the attempt's name in the hold record
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    shipping: str = Field(default="", sa_type=Text)  # JSON text as committed with the sale
    status: str = Field(max_length=16, index=True)
    payment_ref: str = Field(default="", max_length=64)
    created_ms: int = Field(sa_type=BigInteger)
    updated_ms: int = Field(sa_type=BigInteger)
