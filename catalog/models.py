"""SQL tables of the catalog. Money is integer minor units; time is epoch milliseconds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Column, Index, false, text
from sqlmodel import Field, SQLModel

from catalog.deal_status import DealStatus


class Seller(SQLModel, table=True):
    __tablename__ = "sellers"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    email: str = Field(max_length=320, unique=True)
    # Only a SHA-256 of the bearer token is kept; the token itself is shown once.
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_ms: int = Field(sa_type=BigInteger)


class Shop(SQLModel, table=True):
    __tablename__ = "shops"
    id: int | None = Field(default=None, primary_key=True)
    seller_id: int = Field(foreign_key="sellers.id", index=True)
    name: str = Field(max_length=200)
    # The storefront's address, /shop/{handle}: made from the name once, unique.
    handle: str = Field(max_length=60, unique=True, index=True)
    created_ms: int = Field(sa_type=BigInteger)
    # Where withdrawals go (an account reference the payment provider understands); "" for none.
    payout_method: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    # The shipping rule (checkout.pricing.ShippingKind): a flat fee, free over an amount of
    # merchandise, or per item; in the currency of the order's lines. Fee 0: free shipping.
    shipping_kind: str = Field(
        default="flat", max_length=16, sa_column_kwargs={"server_default": "flat"}
    )
    shipping_fee: int = Field(
        default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"}
    )
    shipping_free_over: int = Field(
        default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"}
    )


class Product(SQLModel, table=True):
    __tablename__ = "products"
    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    title: str = Field(max_length=300)
    description: str = Field(default="", max_length=10_000)
    category: str = Field(default="", max_length=100)
    image_urls: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Variants (decision 0028): [{"name": "Size", "values": ["S", "M"]}, ...], in order.
    options: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default=text("'[]'")),
    )
    created_ms: int = Field(sa_type=BigInteger)
    # When the seller archived it (a soft delete): off the storefront, out of new bags and
    # deals, kept because its orders and deals point at it. None while it is on sale.
    archived_ms: int | None = Field(default=None, sa_type=BigInteger)

    @property
    def archived(self) -> bool:
        return self.archived_ms is not None


class Sku(SQLModel, table=True):
    __tablename__ = "skus"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="sku_stock_non_negative"),
        CheckConstraint("list_price > 0", name="sku_price_positive"),
        CheckConstraint("allocated >= 0 AND allocated <= stock", name="sku_allocation_in_stock"),
        # Two SKUs of a product never have the same values (NULL, a product without options,
        # is never equal to another NULL).
        Index("sku_combination_unique", "product_id", "combination", unique=True),
    )
    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="products.id", index=True)
    # Denormalised from the product so ownership checks and stock updates need no join.
    shop_id: int = Field(foreign_key="shops.id", index=True)
    # The name shown everywhere: free text, or its option values ("M / Red") when the product
    # has options (catalog/variants.py).
    variant: str = Field(default="", max_length=200)
    # Its value of each of the product's options, and the same values as one comparable string
    # (casefolded, in the options' order) for the unique constraint; None without options.
    options: dict[str, str] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False, server_default=text("'{}'")),
    )
    # At most 3 x 40 characters, each casefolding to at most 3 ("ﬃ" is "ffi"), and separators.
    combination: str | None = Field(default=None, max_length=400)
    image_url: str = Field(default="", max_length=2000, sa_column_kwargs={"server_default": ""})
    list_price: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    stock: int
    # Units promised to started deals and not yet sold or given back. A deal may only promise
    # stock - allocated, so two deals can never sell the same unit. See decision 0007.
    allocated: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Units put on the shop's shelf for list-price sales (decision 0028) and not yet sold
    # there: free stock is stock - allocated - shelved. Moved only with a shelf_moves row.
    shelved: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Deal(SQLModel, table=True):
    __tablename__ = "deals"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="deal_quantity_positive"),
        CheckConstraint("per_buyer_limit > 0", name="deal_limit_positive"),
        CheckConstraint("ends_ms > starts_ms", name="deal_window_ordered"),
    )
    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    sku_id: int = Field(foreign_key="skus.id", index=True)
    deal_price: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    quantity: int
    per_buyer_limit: int
    starts_ms: int = Field(sa_type=BigInteger)
    ends_ms: int = Field(sa_type=BigInteger)
    # A DealStatus (catalog/deal_status.py), moved only by catalog.service's one function per
    # transition. A plain string column: new states need no schema change.
    status: str = Field(default=DealStatus.SCHEDULED, max_length=16)
    created_ms: int = Field(sa_type=BigInteger)
    # The live room that runs this deal, if any (a plain id: the catalog knows nothing of rooms).
    room_id: int | None = Field(default=None, index=True)
    # "flash" (a flash deal) or "lot" (an auction's one unit, decision 0031: sold only by the
    # auction, at the hammer price, which may be above the list price).
    kind: str = Field(default="flash", max_length=8, sa_column_kwargs={"server_default": "flash"})
    # Sold to signed-in accounts only (decision 0041): guests, however many sessions they
    # mint, cannot buy it.
    accounts_only: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class AffiliatePlan(SQLModel, table=True):
    """A shop's offer to creators (decision 0046): its products, each at a commission rate, for
    every creator (``open_to_all``) or only those listed in ``affiliate_plan_creators``."""

    __tablename__ = "affiliate_plans"
    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    name: str = Field(max_length=120)
    open_to_all: bool
    created_ms: int = Field(sa_type=BigInteger)
    # When the shop ended it: no new bag entries or deals under it. Deals already made under it
    # keep selling at the rate they were made with.
    ended_ms: int | None = Field(default=None, sa_type=BigInteger)


class AffiliatePlanProduct(SQLModel, table=True):
    __tablename__ = "affiliate_plan_products"
    __table_args__ = (
        CheckConstraint("rate_bp BETWEEN 1 AND 8000", name="affiliate_rate_in_range"),
        CheckConstraint("max_discount_bp BETWEEN 0 AND 9000", name="affiliate_discount_in_range"),
    )
    plan_id: int = Field(foreign_key="affiliate_plans.id", primary_key=True)
    product_id: int = Field(foreign_key="products.id", primary_key=True, index=True)
    rate_bp: int
    # How far below the list price a creator's flash deal may go: prices stay the shop's.
    max_discount_bp: int


class AffiliatePlanCreator(SQLModel, table=True):
    __tablename__ = "affiliate_plan_creators"
    plan_id: int = Field(foreign_key="affiliate_plans.id", primary_key=True)
    creator_id: int = Field(foreign_key="sellers.id", primary_key=True, index=True)


class AffiliateDeal(SQLModel, table=True):
    """A deal a creator runs on another shop's product: written with the deal, from the room and
    the plan the server found open to the creator, never from the request."""

    __tablename__ = "affiliate_deals"
    deal_id: int = Field(foreign_key="deals.id", primary_key=True)
    room_id: int = Field(index=True)  # a plain id: the catalog knows nothing of rooms
    creator_id: int = Field(foreign_key="sellers.id", index=True)
    # The room's shop: where the deal's commissions go at settlement (decision 0054).
    creator_shop_id: int = Field(sa_column_kwargs={"server_default": "0"})
    plan_id: int = Field(foreign_key="affiliate_plans.id", index=True)
    rate_bp: int
