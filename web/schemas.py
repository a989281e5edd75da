"""Request bodies. Strict: a quantity of 1.5, "1" or true is refused, not coerced, and fields an
endpoint does not take (a client-sent price, say) are refused by name, never used."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from checkout.bulk_ship import MAX_SHIPMENTS
from checkout.return_states import RequestKind
from checkout.returns import MAX_ANSWER, MAX_NOTE, MAX_PHOTOS, ReturnReason

MAX_MONEY = 10**12  # minor units: ten billion in a two-decimal currency
MAX_ID = 2**31 - 1  # ids are SQL INTEGER columns; PostgreSQL refuses a larger parameter
# Lengths match the SQL columns, and NUL is refused (PostgreSQL cannot store it), so the
# database never refuses (with a 500) what passed here.
NO_NUL = r"^[^\x00]*$"


def _text(max_length: int, min_length: int = 0) -> StringConstraints:
    return StringConstraints(
        strip_whitespace=True, min_length=min_length, max_length=max_length, pattern=NO_NUL
    )


Text = Annotated[str, _text(300)]
Title = Annotated[str, _text(300, min_length=1)]
Name = Annotated[str, _text(200, min_length=1)]
Category = Annotated[str, _text(100)]
Variant = Annotated[str, _text(200)]
Description = Annotated[str, _text(10_000)]
# An image is an http(s) URL or a path on this server ("/static/img/jacket.svg"), never a
# protocol-relative "//host" or a "javascript:" URL.
Url = Annotated[
    str,
    StringConstraints(
        pattern=r"^(https?://[^\s\x00]{1,2000}|/([^/\s\x00\\][^\s\x00\\]{0,1999})?)$"
    ),
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
VoucherCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def omitted_not_null(schema: dict[str, Any]) -> None:
    """JSON schema for fields that may be left out but are never null: pydantic writes an
    optional ``X | None = None`` field as ``anyOf: [X, null]``; drop the ``null``."""
    required = set(schema.get("required", ()))
    for name, field in schema.get("properties", {}).items():
        if name in required:
            continue
        if field.get("default", ...) is None:
            del field["default"]
        branches = [b for b in field.pop("anyOf", ()) if b != {"type": "null"}]
        if len(branches) == 1:
            field.update(branches[0])
        elif branches:
            field["anyOf"] = branches


class Patch(Strict):
    """A partial update: leave a field out to keep it; null is refused, never stored."""

    model_config = ConfigDict(json_schema_extra=omitted_not_null)

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"null is not a value for {', '.join(nulls)}; leave it out instead")
        return self


class ShopIn(Strict):
    name: Name


# Variants (decision 0028): catalog/variants.py checks the rest (uniqueness, "/").
OptionText = Annotated[str, _text(40, min_length=1)]


class OptionIn(Strict):
    """One of a product's options: its name ("Size") and values (["S", "M", "L"])."""

    name: OptionText
    values: list[OptionText] = Field(min_length=1, max_length=20)


Options = Annotated[list[OptionIn], Field(max_length=3)]
# A SKU's value of each of its product's options: {"Size": "M", "Colour": "Red"}.
OptionValues = Annotated[dict[OptionText, OptionText], Field(max_length=3)]
ImageUrl = Annotated[str, StringConstraints(pattern=r"^$")] | Url  # "" for none


class ProductIn(Strict):
    title: Title
    description: Description = ""
    category: Category = ""
    image_urls: list[Url] = Field(default_factory=list, max_length=20)
    options: Options = Field(default_factory=list)


class ProductPatch(Patch):
    title: Title | None = None
    description: Description | None = None
    category: Category | None = None
    image_urls: list[Url] | None = Field(default=None, max_length=20)
    options: Options | None = Field(
        default=None, description="Once SKUs have values, only new values may be added"
    )


class SkuIn(Strict):
    variant: Variant = Field(default="", description="Its name, for a product without options")
    options: OptionValues | None = Field(
        default=None, description="A value of every option, for a product with options"
    )
    image_url: ImageUrl = ""
    list_price: int = Field(ge=1, le=MAX_MONEY)
    currency: Currency
    stock: int = Field(ge=0, le=10**9)


class SkuPatch(Patch):
    variant: Variant | None = None
    options: OptionValues | None = None
    image_url: ImageUrl | None = None
    list_price: int | None = Field(default=None, ge=1, le=MAX_MONEY)
    stock: int | None = Field(default=None, ge=0, le=10**9)


class DealIn(Strict):
    sku_id: int = Field(ge=1, le=MAX_ID)
    deal_price: int = Field(ge=1, le=MAX_MONEY)
    quantity: int = Field(ge=1, le=10**7)
    per_buyer_limit: int = Field(ge=1, le=1000)
    starts_ms: int | None = Field(
        default=None, ge=0, le=2**53, description="Epoch ms; default: now"
    )
    duration_s: int = Field(ge=1, le=7 * 24 * 3600)
    accounts_only: bool = Field(
        default=False,
        description="Sell to signed-in accounts only: guests are refused `account_required`",
    )


Email = Annotated[str, _text(254, min_length=3)]
# Not stripped: a password's spaces are its own. Lengths are checked by people/passwords.py,
# which says why; this only keeps a megabyte out of the hasher.
Password = Annotated[str, StringConstraints(max_length=1024, pattern=NO_NUL)]
DisplayName = Annotated[str, _text(40, min_length=1)]


class SignUpIn(Strict):
    email: Email
    password: Password
    display_name: DisplayName = Field(description="What chat and the pages show for you")


class SignInIn(Strict):
    email: Email
    password: Password


# The roles a seller gives its staff (people/roles.py): the owner is made with the seller.
StaffRole = Literal["admin", "host", "fulfilment", "finance"]


class InviteIn(Strict):
    email: Email = Field(description="Where the invitation's link goes; they join with it")
    role: StaffRole


class RoleIn(Strict):
    role: StaffRole


class ApiTokenIn(Strict):
    name: Annotated[str, _text(60, min_length=1)] = Field(description="What the token is for")
    role: StaffRole


class JoinIn(Strict):
    invitation: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{20,100}$")] = Field(
        description="The code at the end of the invitation mail's link"
    )


class ResetAskIn(Strict):
    email: Email


class ResetIn(Strict):
    reset: str = Field(max_length=400, description="The code from the reset mail's link")
    password: Password


ChallengeId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    Field(description="The `challenge_id` of the options this answers (5 minutes, used once)"),
]
Credential = Annotated[
    dict[str, Any],
    Field(
        description="The `PublicKeyCredential` the browser gave, as JSON (its `toJSON()`): "
        "`id`, `rawId`, `type` and `response`, binary fields in base64url"
    ),
]


class PasskeyIn(Strict):
    challenge_id: ChallengeId
    credential: Credential
    name: Annotated[str, _text(60)] = Field(
        "", description='What the list calls it ("Phone"); "Passkey" if left out'
    )


class PasskeySignInIn(Strict):
    challenge_id: ChallengeId
    credential: Credential


class ReserveIn(Strict):
    qty: int = Field(default=1, ge=1, le=1000)
    request_id: RequestId | None = Field(
        default=None, description="Retrying with the same id returns the same hold"
    )


class CartItemIn(Strict):
    qty: int = Field(ge=0, le=99, description="Units in the cart; 0 takes the item out")


class VoucherIn(Strict):
    code: VoucherCode = Field(description="What buyers type or see: 2-32 of A-Z, 0-9 and -")
    kind: Literal["percent", "fixed", "shipping"]
    value: int = Field(ge=1, description="percent: basis points (1500 = 15 %); else minor units")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    budget: int = Field(ge=1, le=1_000_000, description="Uses in all: claims stop there")
    per_buyer: int = Field(default=1, ge=1, le=100, description="Claims one buyer may make")
    min_spend: int = Field(default=0, ge=0)
    max_discount: int | None = Field(default=None, ge=1)
    starts_ms: int | None = Field(default=None, ge=0, description="Default: now")
    ends_ms: int = Field(ge=0)
    room_id: int | None = Field(
        default=None, ge=1, description="Live-only: claimable from this room while it is live"
    )
    products: list[int] | None = Field(
        default=None, max_length=200, description="Only these products; default: all"
    )


class PromotionIn(Strict):
    kind: Literal["discount", "bundle"]
    products: list[int] = Field(
        min_length=1, max_length=200, description="The products it applies to (the shop's)"
    )
    bps: int | None = Field(
        default=None, ge=1, le=9999, description="discount: basis points off (1500 = 15 %)"
    )
    size: int | None = Field(default=None, ge=2, le=10, description="bundle: units in one")
    price: int | None = Field(
        default=None, ge=1, description="bundle: what its units cost together (minor units)"
    )
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = Field(
        default=None, description="bundle: the price's currency"
    )
    starts_ms: int | None = Field(default=None, ge=0, description="Default: now")
    ends_ms: int = Field(ge=0)


class CartItem(Strict):
    sku_id: int = Field(ge=1)
    qty: int = Field(ge=1, le=99)


class ShopVoucherIn(Strict):
    shop_id: int = Field(ge=1, le=MAX_ID)
    code: VoucherCode


class CartCheckoutIn(Strict):
    items: list[CartItem] | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="Buy now: hold these items (one shop's) instead of the cart's",
    )
    request_id: RequestId | None = Field(
        default=None, description="Retrying with the same id returns the same hold"
    )
    shop_id: int | None = Field(
        default=None, ge=1, description="Whose items to check out, when the cart has several"
    )
    expected_total: int | None = Field(
        default=None,
        ge=0,
        description="The total the buyer was shown: a different total now is refused "
        "(quote_changed) instead of charged",
    )
    voucher: VoucherCode | None = Field(
        default=None,
        description="A voucher of the shop to redeem: one you claimed, or (one not bound to a "
        "live room) claimed now; across shops, in each shop that has the code",
    )
    vouchers: list[ShopVoucherIn] | None = Field(
        default=None,
        max_length=20,
        description="Across shops: the voucher to redeem in each shop named (instead of voucher)",
    )


class ShippingIn(Strict):
    name: Annotated[str, _text(100, min_length=1)]
    line1: Annotated[str, _text(200, min_length=1)]
    line2: Annotated[str, _text(200)] = ""
    city: Annotated[str, _text(100, min_length=1)]
    postal_code: Annotated[str, _text(20, min_length=1)]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        description="ISO 3166-1 alpha-2 code, e.g. US"
    )


class AddressIn(ShippingIn):
    """An address to keep on the account (at most ten)."""

    default: bool = Field(
        default=False,
        description="Make it the default (checkout is prefilled from it); an account's first "
        "address is the default whatever this says",
    )


class PaymentMethodIn(Strict):
    """A card to keep on file (bidding needs one: it is charged when you win), and where to
    ship what it pays for."""

    card: Annotated[str, StringConstraints(pattern=r"^[0-9]{12,19}$")]
    shipping: ShippingIn | None = None


class CheckoutIn(Strict):
    card: Annotated[str, StringConstraints(pattern=r"^[0-9]{12,19}$")]
    shipping: ShippingIn | None = Field(
        default=None, description="Where to send the goods; kept on the order"
    )


class CartPayIn(CheckoutIn):
    """Pay for several holds at once (a cart across shops): each is charged and sold as
    ``POST /api/holds/{hold_id}/checkout`` would, in the order given (decision 0030)."""

    holds: list[Annotated[str, StringConstraints(pattern=r"^s?[0-9]{1,10}-[0-9]{1,18}$")]] = Field(
        min_length=1, max_length=10, description="The hold ids, as the cart's checkout gave them"
    )


class OrderActionIn(Strict):
    note: Text = ""
    carrier: Annotated[str, _text(60)] = Field(default="", description="ship: required")
    tracking_number: Annotated[str, _text(100)] = Field(default="", description="ship: required")


class ShipmentIn(Strict):
    """One order of a bulk shipment. A missing carrier or tracking number is that row's
    ``tracking_required``, not the request's refusal."""

    order_id: int = Field(ge=1, le=MAX_ID)
    carrier: Annotated[str, _text(60)] = Field(default="", description="required")
    tracking_number: Annotated[str, _text(100)] = Field(default="", description="required")


class ShipmentsIn(Strict):
    shipments: list[ShipmentIn] = Field(
        description=f"Applied each on its own, in order; more than {MAX_SHIPMENTS} is 422 "
        "too_many_shipments",
        json_schema_extra={"maxItems": MAX_SHIPMENTS},
    )


# A refund's or cancel's reason; "note", as the other order moves call it, is taken too.
REASON = AliasChoices("reason", "note")


class RefundLineIn(Strict):
    sku_id: int = Field(ge=1, le=MAX_ID)
    units: int = Field(ge=1, le=10_000)


class RefundIn(Strict):
    """A refund: by ``amount`` (minor units), by ``units`` (the next units not yet refunded,
    in line order) or by ``lines`` (so many units of each SKU named); units are refunded at
    their share of their line's price after discounts, and the order's last units take its
    shipping fee with them. None of the three refunds everything left. ``restock``: units
    going back into stock (none if damaged), from the lines named if any."""

    amount: int | None = Field(default=None, ge=1, le=MAX_MONEY, description="minor units")
    units: int | None = Field(default=None, ge=1, le=10_000)
    lines: list[RefundLineIn] | None = Field(default=None, min_length=1, max_length=100)
    restock: int = Field(default=0, ge=0, le=10_000)
    reason: Text = Field(default="", validation_alias=REASON)


class CancelIn(Strict):
    reason: Text = Field(default="", validation_alias=REASON)


# A buyer's request and the seller's answers (docs/money.md). What the buyer asks for is checked
# by checkout/returns.py, with its own codes (invalid_reason, invalid_photos, invalid_units); the
# schema only keeps text within its columns.
PhotoUrl = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]


class ReturnRequestIn(Strict):
    """``kind``: ``cancel`` before the order ships; ``refund_only`` (keep the goods) or
    ``return`` (send them back) once delivered, within the return window. ``units`` and
    ``amount`` left out: everything the order has left (a return of some units: their price)."""

    kind: RequestKind
    reason: Annotated[str, _text(40)] = Field(
        description="422 invalid_reason otherwise",
        json_schema_extra={"enum": [r.value for r in ReturnReason]},
    )
    note: Annotated[str, _text(MAX_NOTE)] = ""
    photos: list[PhotoUrl] = Field(
        default_factory=list,
        description=f"http(s) URLs, at most {MAX_PHOTOS} (422 invalid_photos otherwise)",
    )
    units: int | None = Field(default=None, ge=1, le=10_000)
    amount: int | None = Field(default=None, ge=1, le=MAX_MONEY, description="minor units")


class RejectIn(Strict):
    reason: Annotated[str, _text(MAX_ANSWER, min_length=1)] = Field(validation_alias=REASON)


class OfferIn(Strict):
    amount: int = Field(ge=1, le=MAX_MONEY, description="minor units, less than asked for")
    note: Annotated[str, _text(MAX_ANSWER)] = ""


class ReceiveIn(Strict):
    restock: int | None = Field(
        default=None, ge=0, le=10_000, description="units back into stock; all returned if left out"
    )


class ShipBackIn(Strict):
    carrier: Annotated[str, _text(60)] = Field(default="", description="required")
    tracking_number: Annotated[str, _text(100)] = Field(default="", description="required")


class WebhookData(BaseModel):
    model_config = ConfigDict(strict=True)
    object: dict[str, Any] = Field(description="The object whole, with its `id` and `version`")


class WebhookEventIn(BaseModel):
    """A payment provider's event. Not strict about fields it does not know: providers add
    fields to their events without notice, and a refused webhook is sent again forever."""

    model_config = ConfigDict(strict=True, extra="ignore")
    id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
    type: Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=NO_NUL)]
    created_ms: int = Field(ge=0, le=2**53)
    data: WebhookData


class RoomIn(Strict):
    shop_id: int = Field(ge=1, le=MAX_ID)
    title: Annotated[str, _text(120, min_length=1)]


class ProductRef(Strict):
    product_id: int = Field(ge=1, le=MAX_ID)


class VoucherRef(Strict):
    code: VoucherCode = Field(description="One of the room's shop's vouchers")


class FlashDealIn(Strict):
    sku_id: int = Field(ge=1, le=MAX_ID)
    deal_price: int = Field(ge=1, le=MAX_MONEY)
    quantity: int = Field(ge=1, le=10**7)
    per_buyer_limit: int = Field(ge=1, le=1000)
    # The ranges are checked by live.rules (invalid_countdown, invalid_duration); documented here.
    countdown_s: int = Field(
        description="10-300 seconds before the deal opens",
        json_schema_extra={"minimum": 10, "maximum": 300},
    )
    duration_s: int = Field(
        description="60-1200 seconds the deal runs",
        json_schema_extra={"minimum": 60, "maximum": 1200},
    )
    accounts_only: bool = Field(
        default=False,
        description="Sell to signed-in accounts only: guests are refused `account_required`",
    )


class AuctionIn(Strict):
    """An auction of one unit of a SKU in the room's bag (decision 0031). Ranges are checked
    by live.auction_rules (invalid_auction, details.field)."""

    sku_id: int = Field(ge=1, le=MAX_ID)
    start_price: int = Field(ge=1, le=MAX_MONEY, description="the first bid's least amount")
    duration_s: int = Field(
        description="10-3600 seconds before the close (anti-snipe may move it)",
        json_schema_extra={"minimum": 10, "maximum": 3600},
    )
    mode: Literal["standard", "sudden_death"] = Field(
        default="standard",
        description="standard: a bid in the last snipe_s seconds moves the close to snipe_s "
        "from it; sudden_death: the close never moves",
    )
    snipe_s: int = Field(default=15, json_schema_extra={"minimum": 5, "maximum": 120})
    reserve_price: int = Field(default=0, ge=0, le=MAX_MONEY, description="0: no reserve")
    buy_now_price: int = Field(default=0, ge=0, le=MAX_MONEY, description="0: no buy-it-now")
    increments: list[tuple[int, int]] | None = Field(
        default=None,
        max_length=20,
        description="[from price, increment] bands, the first from 0; omitted: the default table",
    )
    second_chance: bool = Field(
        default=True, description="an unpaid win is offered to the next bidder"
    )
    card_required: bool = Field(
        default=True,
        description="bidders keep a card on file (PUT /api/payment-method); the win is charged "
        "to it at once",
    )
    accounts_only: bool = Field(
        default=False,
        description="bids and waitlist places from signed-in accounts only (guests: 403 "
        "account_required)",
    )
    relists: int = Field(
        default=0,
        description="0-3: times the lot goes up again at once when a close brings no sale (no "
        "bid, the reserve not met, nobody paid), while the room is live",
        json_schema_extra={"minimum": 0, "maximum": 3},
    )


class GiveawayIn(Strict):
    """A giveaway of one unit of a SKU in the room's bag (decision 0032)."""

    sku_id: int = Field(ge=1, le=MAX_ID)
    duration_s: int = Field(
        description="10-3600 seconds of entries", json_schema_extra={"minimum": 10, "maximum": 3600}
    )
    eligibility: Literal["everyone", "watchers", "buyers"] = Field(
        default="everyone",
        description="watchers: in the room at least min_watch_min minutes; buyers: a paid order "
        "of this room",
    )
    min_watch_min: int = Field(default=0, json_schema_extra={"minimum": 0, "maximum": 120})
    accounts_only: bool = Field(
        default=False,
        description="entries from signed-in accounts only (guests: 403 account_required); one "
        "person cannot enter many times with fresh guest sessions",
    )


class CommentBuyIn(Strict):
    keywords: list[str] = Field(
        min_length=1,
        max_length=6,
        description="1-6 words (1-20 characters each), any case: SOLD, buy, comprar...",
    )


class BidIn(Strict):
    amount: int = Field(
        default=0,
        ge=0,
        le=MAX_MONEY,
        description="the most you will pay (proxy bid): the price moves only as far as needed",
    )
    buy_now: bool = Field(default=False, description="take the buy-it-now price instead")
    name: str | None = Field(
        default=None,
        max_length=40,
        description="ignored: a bid shows a guest's alias for the room or an account's name",
    )


class SkuWaitIn(Strict):
    room_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="the live room you wait in: an offer is told to you there at once",
    )


class WaitIn(Strict):
    name: str | None = Field(
        default=None,
        max_length=40,
        description="ignored: the place shows a guest's alias for the room or an account's name",
    )


# -- finance (decision 0027) --------------------------------------------------------------------


class WithdrawalIn(Strict):
    """Withdraw the whole available balance of a currency to the shop's payout method."""

    shop_id: int = Field(ge=1, le=MAX_ID)
    currency: Currency


# Where payouts go: an account reference the payment provider understands. Printable text (no
# control characters), at most the column's 200; empty removes it.
PayoutMethod = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$"),
]


class ShippingRuleIn(Strict):
    kind: Literal["flat", "free_over", "per_item"] = Field(
        description="flat: the fee per order; free_over: the fee, or nothing once the "
        "merchandise (after discounts) reaches free_over; per_item: the fee per unit"
    )
    fee: int = Field(ge=0, le=100_000_000, description="Minor units; 0 is free shipping")
    free_over: int = Field(
        default=0, ge=0, le=1_000_000_000, description="free_over only: minor units, 1 or more"
    )


class PayoutMethodIn(Strict):
    payout_method: PayoutMethod = Field(
        description="1-200 printable characters; empty removes the payout method"
    )


class PlanProductIn(Strict):
    product_id: int = Field(ge=1, le=MAX_ID)
    rate_bp: int = Field(ge=1, le=8000, description="The creator's commission, basis points")
    max_discount_bp: int = Field(
        default=0, ge=0, le=9000, description="How far below list a creator's deal may go"
    )


class PlanIn(Strict):
    """An affiliate plan (decision 0046): open to every creator, or to those listed."""

    shop_id: int = Field(ge=1, le=MAX_ID)
    name: Annotated[str, _text(120, min_length=1)]
    open_to_all: bool
    creator_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=100
    )
    products: list[PlanProductIn] = Field(min_length=1, max_length=100)
