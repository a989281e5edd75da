"""SQL tables of orders and their event log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    id: int | None = Field(default=None, primary_key=True)
    # One order per hold: the unique key that makes redelivery from the stream harmless.
    hold_id: str = Field(max_length=40, unique=True)
    # The Redis key prefix of the deployment that sold it (its sandbox charges live there):
    # the order rules of one deployment act on its own orders only. "" for orders written
    # before orders named it; every deployment's rules take those, as they did.
    keyspace: str = Field(default="", max_length=40, sa_column_kwargs={"server_default": ""})
    # The deal it was bought in; None for a list-price sale from the shelf (decision 0028),
    # whose SKUs are its order_lines. sku_id, quantity and unit_price are then its first line,
    # its units in all, and that line's price.
    deal_id: int | None = Field(default=None, foreign_key="deals.id", index=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    sku_id: int = Field(foreign_key="skus.id")
    buyer_id: str = Field(max_length=64, index=True)
    quantity: int
    unit_price: int = Field(sa_type=BigInteger)
    total: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    status: str = Field(max_length=24)
    # The provider's charge id: a dispute names the charge, and finds its order by it.
    payment_ref: str = Field(max_length=64, index=True)
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
    # Money (decision 0027). The platform's fee rate, fixed when the order was paid.
    fee_bps: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Admission guards, like skus.allocated: a guarded UPDATE keeps refunds within the total and
    # restocks within the units. The ledger holds the money; the audit proves these against it.
    refunded: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    restocked_units: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Deadlines, stamped once (a changed setting never moves a promise), and when things happened.
    ship_by_ms: int | None = Field(default=None, sa_type=BigInteger)
    ship_limit_ms: int | None = Field(default=None, sa_type=BigInteger, index=True)
    shipped_ms: int | None = Field(default=None, sa_type=BigInteger)
    deliver_by_ms: int | None = Field(default=None, sa_type=BigInteger)
    delivered_ms: int | None = Field(default=None, sa_type=BigInteger)
    settled_ms: int | None = Field(default=None, sa_type=BigInteger)
    # What the buyer saved and paid for shipping (decision 0028): ``total`` is the lines' prices
    # less ``discount`` (products, bundles, the voucher), plus ``shipping_fee`` less
    # ``shipping_discount``. ``voucher``: the code redeemed, "" for none.
    discount: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    shipping_fee: int = Field(
        default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"}
    )
    shipping_discount: int = Field(
        default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"}
    )
    voucher: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
    # The voucher's part of ``discount`` (the rest is promotions: product discounts, bundles).
    voucher_discount: int = Field(
        default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"}
    )


class OrderLine(SQLModel, table=True):
    """One SKU of a shelf order (decision 0028). A deal's order has none: it is one line, the
    order's own sku_id, quantity and unit_price."""

    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("order_id", "line"),)
    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    line: int
    sku_id: int = Field(foreign_key="skus.id")
    quantity: int
    unit_price: int = Field(sa_type=BigInteger)
    # The line's share of the order's discount (its units cost quantity x unit_price - discount).
    discount: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    # Units whose money refunds gave back, and units back in stock (checkout/refunds.py).
    refunded_units: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    restocked: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Voucher(SQLModel, table=True):
    """A shop's voucher (decision 0028): its terms here; its uses left and who claimed it live
    on the shop's shelf in Redis, where a claim storm cannot take more than ``budget``."""

    __tablename__ = "vouchers"
    __table_args__ = (UniqueConstraint("shop_id", "code"),)
    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    code: str = Field(max_length=32)
    kind: str = Field(max_length=16)  # checkout.pricing.VoucherKind
    value: int = Field(sa_type=BigInteger)  # basis points (percent) or minor units
    currency: str = Field(max_length=3)
    min_spend: int = Field(default=0, sa_type=BigInteger)
    max_discount: int | None = Field(default=None, sa_type=BigInteger)
    budget: int  # uses in all: claims stop there
    per_buyer: int  # claims one buyer may make
    starts_ms: int = Field(sa_type=BigInteger)
    ends_ms: int = Field(sa_type=BigInteger)
    # A live-only voucher: claimable from this room while it is live. None: from anywhere.
    room_id: int | None = Field(default=None, foreign_key="rooms.id")
    # The products it applies to; None: every product of the shop.
    products: list[int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_ms: int = Field(sa_type=BigInteger)


class Promotion(SQLModel, table=True):
    """A shop's promotion (decision 0028): a product discount (``bps`` off the listed products'
    list prices) or a bundle (any ``size`` units of the listed products for ``price``), running
    from ``starts_ms`` to ``ends_ms``. Pushed to the shop's shelf, where a hold checks that it
    was priced with the promotions the shelf has."""

    __tablename__ = "promotions"
    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    kind: str = Field(max_length=16)  # "discount" or "bundle"
    products: list[int] = Field(sa_column=Column(JSON, nullable=False))
    bps: int = 0  # a discount's basis points (1500 = 15 % off)
    size: int = 0  # a bundle's units
    price: int = Field(default=0, sa_type=BigInteger)  # what a bundle's units cost together
    currency: str = Field(default="", max_length=3)  # a bundle's price's ("" for a discount)
    starts_ms: int = Field(sa_type=BigInteger)
    ends_ms: int = Field(sa_type=BigInteger)
    created_ms: int = Field(sa_type=BigInteger)


class ShelfMove(SQLModel, table=True):
    """Units moved between a SKU's free stock and its shop's shelf in Redis (decision 0028).
    Written before Redis is asked and finished after, so whoever finds it pending (the sweeper,
    after a crash) finishes it; ``tag`` is the move's name in Redis, which answers a repeat as
    it answered the first time."""

    __tablename__ = "shelf_moves"
    id: int | None = Field(default=None, primary_key=True)
    tag: str = Field(max_length=80, unique=True)
    keyspace: str = Field(max_length=40)
    shop_id: int = Field(foreign_key="shops.id")
    sku_id: int = Field(foreign_key="skus.id", index=True)
    units: int  # > 0 onto the shelf, < 0 off it
    status: str = Field(max_length=16, index=True)  # pending, done, short
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


class Refund(SQLModel, table=True):
    """A granted refund (decision 0027): written with the order's guarded UPDATE and its ledger
    entries before the provider is called, then finished by whoever finds it pending."""

    __tablename__ = "refunds"
    id: int | None = Field(default=None, primary_key=True)
    # Names the decision, so every way of asking converges: "cancel:<order>",
    # "return:<request>", "refund:<order>:<Idempotency-Key>". Also the provider's key.
    key: str = Field(max_length=200, unique=True)
    body_hash: str = Field(default="", max_length=64)
    keyspace: str = Field(max_length=40)  # whose sandbox ledger the charge is in
    order_id: int = Field(foreign_key="orders.id", index=True)
    shop_id: int = Field(foreign_key="shops.id")
    amount: int = Field(sa_type=BigInteger)
    fee_returned: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    units: int  # units put back into stock
    # The shop account the grant debited ("pending" or "available"): a failure reverses it there.
    shop_account: str = Field(max_length=16)
    reason: str = Field(default="", max_length=500)
    actor: str = Field(max_length=64)
    status: str = Field(max_length=16, index=True)
    # "" (nothing for the deal), "due" (lc_restock still to run), "deal", "over".
    deal_restock: str = Field(default="", max_length=8)
    provider_ref: str = Field(default="", max_length=64)
    # The provider object's version last applied: a stale webhook changes nothing.
    version: int = Field(default=0)
    created_ms: int = Field(sa_type=BigInteger)
    updated_ms: int = Field(sa_type=BigInteger)


class LedgerEntry(SQLModel, table=True):
    """One line of a balanced ledger transaction. Positive is a debit, negative a credit;
    entries are never updated or deleted (decision 0027)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("txn", "line"),
        CheckConstraint("amount <> 0", name="ck_ledger_entries_amount_nonzero"),
        Index("ix_ledger_entries_account_currency", "account", "currency"),
        Index("ix_ledger_entries_shop_id_id", "shop_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    txn: str = Field(max_length=80)
    line: int
    account: str = Field(max_length=40)
    shop_id: int | None = Field(default=None)
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    created_ms: int = Field(sa_type=BigInteger)
    reference: str = Field(max_length=60, index=True)


class Payout(SQLModel, table=True):
    """A withdrawal of a shop's available balance: one a day per shop and currency (a UTC day;
    a failed payout does not use the day up, hence the partial unique index)."""

    __tablename__ = "payouts"
    __table_args__ = (
        Index(
            "ux_payouts_one_a_day",
            "shop_id",
            "currency",
            "utc_day",
            unique=True,
            sqlite_where=text("status <> 'failed'"),
            postgresql_where=text("status <> 'failed'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    keyspace: str = Field(max_length=40)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    utc_day: str = Field(max_length=10)
    destination: str = Field(max_length=200)
    actor: str = Field(max_length=64)
    status: str = Field(max_length=16, index=True)
    provider_ref: str = Field(default="", max_length=64)
    version: int = Field(default=0)
    created_ms: int = Field(sa_type=BigInteger)
    updated_ms: int = Field(sa_type=BigInteger)


class Dispute(SQLModel, table=True):
    """A buyer's dispute of an order's charge with their bank, as the provider's events told it
    (decision 0027): the bank took ``amount`` back when it opened; ``status`` is the provider's
    (``DisputeStatus``), and ``version`` the provider object's version last applied, so a stale
    or late event changes nothing. While one is open the order takes no refund, does not settle,
    and its amount is not withdrawable."""

    __tablename__ = "disputes"
    id: int | None = Field(default=None, primary_key=True)
    provider_id: str = Field(max_length=64, unique=True)
    keyspace: str = Field(max_length=40)  # whose sandbox the charge is in
    order_id: int = Field(foreign_key="orders.id", index=True)
    shop_id: int = Field(foreign_key="shops.id")
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    status: str = Field(max_length=16, index=True)
    version: int = Field(default=0)
    created_ms: int = Field(sa_type=BigInteger)
    updated_ms: int = Field(sa_type=BigInteger)


class PaymentEvent(SQLModel, table=True):
    """Every provider event received, by its id: a replayed webhook finds its row and changes
    nothing."""

    __tablename__ = "payment_events"
    id: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=60)
    object_id: str = Field(max_length=64)
    received_ms: int = Field(sa_type=BigInteger)


class MoneyCursor(SQLModel, table=True):
    """Where the reconciler got to in a provider's event list."""

    __tablename__ = "money_cursors"
    name: str = Field(primary_key=True, max_length=60)
    value: str = Field(max_length=60)


class ReturnRequest(SQLModel, table=True):
    """A buyer's request to cancel, be refunded or return goods: one open per order."""

    __tablename__ = "return_requests"
    __table_args__ = (
        Index(
            "ux_return_requests_one_open",
            "order_id",
            unique=True,
            sqlite_where=text(
                "status IN ('requested','offered','approved','shipped_back','received')"
            ),
            postgresql_where=text(
                "status IN ('requested','offered','approved','shipped_back','received')"
            ),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    buyer_id: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=16)
    reason: str = Field(max_length=40)
    note: str = Field(default="", max_length=1000)
    photos: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    units: int
    amount: int = Field(sa_type=BigInteger)
    # The seller's smaller offer while the request is ``offered``; accepting it makes it the
    # amount, declining clears it.
    offer_amount: int | None = Field(default=None, sa_type=BigInteger)
    status: str = Field(max_length=16, index=True)
    answer: str = Field(default="", max_length=500)  # the seller's reason to reject, or offer
    carrier: str = Field(default="", max_length=60)
    tracking_number: str = Field(default="", max_length=100)
    refund_id: int | None = Field(default=None, foreign_key="refunds.id")
    created_ms: int = Field(sa_type=BigInteger)
    updated_ms: int = Field(sa_type=BigInteger, index=True)


class ReturnEvent(SQLModel, table=True):
    __tablename__ = "return_events"
    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="return_requests.id", index=True)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    at_ms: int = Field(sa_type=BigInteger)
    actor: str = Field(max_length=64)
    note: str = Field(default="", max_length=500)


class AffiliateAttribution(SQLModel, table=True):
    """An order sold in a creator's room under an affiliate plan (decision 0046), frozen when
    the order was written: the room, the creator, the plan, its rate then, and the amount the
    commission is a share of. One per order (the key), so a redelivered batch adds none."""

    __tablename__ = "affiliate_attributions"
    __table_args__ = (CheckConstraint("rate_bp BETWEEN 1 AND 8000", name="attribution_rate"),)
    order_id: int = Field(foreign_key="orders.id", primary_key=True)
    room_id: int = Field(index=True)
    creator_id: int = Field(foreign_key="sellers.id", index=True)
    plan_id: int = Field(foreign_key="affiliate_plans.id", index=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    rate_bp: int
    base: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    created_ms: int = Field(sa_type=BigInteger)
