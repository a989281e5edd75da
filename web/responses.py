"""What successful answers carry, for the OpenAPI document. The handlers build their JSON by
hand (the hot path pays for no model); these models describe it, and the schemathesis run
(tests/test_openapi_fuzz.py) checks every answer it gets against them.

A field that may be left out is declared ``X | None = None`` and documented as never null; a
field that may be null is declared without a default."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The states are the enums the code moves (each is one schema in the document).
from catalog.deal_status import DealStatus
from checkout.deal_phase import DealPhase
from checkout.hold_states import HoldState
from checkout.ledger import Account
from checkout.orders import OrderStatus
from checkout.payments import PayoutStatus, RefundStatus
from checkout.return_states import RequestKind, ReturnStatus
from live.auction_rules import AuctionMode, AuctionState
from live.giveaway_rules import GiveawayState
from live.room_states import FlashDealStatus, RoomStatus
from web.schemas import omitted_not_null


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=omitted_not_null)


# -- identity, holds, checkout ------------------------------------------------------------------


class GuestSession(Out):
    token: str
    buyer_id: str


class AccountOut(Out):
    id: int
    email: str
    display_name: str
    buyer_id: str


class AccountSession(Out):
    token: str = Field(description="An account session token: send it as a Bearer token")
    buyer_id: str
    account: AccountOut
    moved_orders: int = Field(
        0, description="Orders of the guest session that signed in, now the account's"
    )


StaffRole = Literal["owner", "admin", "host", "fulfilment", "finance"]


class StaffMe(Out):
    seller_id: int
    seller_name: str
    role: StaffRole
    duties: list[str] = Field(description="What this role may do (people/roles.py)")


class MemberOut(Out):
    id: int
    account_id: int
    email: str
    display_name: str
    role: StaffRole
    created_ms: int


class InvitationOut(Out):
    id: int
    email: str
    role: StaffRole
    expires_ms: int


class NewInvitation(InvitationOut):
    mailed: bool = Field(
        description="Whether the mail went out; if not, withdraw it and invite again later"
    )


class StaffList(Out):
    members: list[MemberOut]
    invitations: list[InvitationOut] = Field(description="Sent, not used yet, not expired")


class ApiTokenOut(Out):
    id: int
    name: str
    role: StaffRole
    created_ms: int
    revoked_ms: int | None


class NewApiToken(ApiTokenOut):
    token: str = Field(description="Shown this once: only a hash of it is kept")


class ApiTokenList(Out):
    tokens: list[ApiTokenOut]


class Joined(Out):
    seller_id: int
    member_id: int
    role: StaffRole


class SavedAddress(Out):
    id: int
    name: str
    line1: str
    line2: str
    city: str
    postal_code: str
    country: str
    is_default: bool = Field(description="Checkout is prefilled from it; exactly one has it")
    created_ms: int


class SavedAddressAnswer(Out):
    address: SavedAddress


class SavedAddressList(Out):
    addresses: list[SavedAddress] = Field(description="The default first, then newest first")


class FollowAnswer(Out):
    seller_id: int
    following: bool
    followers: int = Field(description="The seller's followers now")


class FollowedSeller(Out):
    seller_id: int
    name: str
    since_ms: int


class FollowingList(Out):
    following: list[FollowedSeller] = Field(description="The latest followed first")
    reminders: list[int] = Field(description="The scheduled rooms you asked to be reminded of")


class ReminderAnswer(Out):
    room_id: int
    reminded: bool


class NotificationOut(Out):
    id: int
    kind: Literal["live"]
    room_id: int
    seller_name: str
    title: str
    created_ms: int
    read_ms: int | None


class NotificationList(Out):
    notifications: list[NotificationOut] = Field(description="The newest 50, newest first")
    unread: int = Field(description="How many of all your notifications are unread")


class MarkedRead(Out):
    marked: int = Field(description="How many were unread until now")
    unread: int


class PasskeyOptions(Out):
    challenge_id: str = Field(
        description="Send it back with the authenticator's answer within 5 minutes; it works once"
    )
    options: dict[str, Any] = Field(
        description="WebAuthn's `PublicKeyCredentialCreationOptionsJSON` (adding a passkey) or "
        "`PublicKeyCredentialRequestOptionsJSON` (signing in); binary fields in base64url"
    )


class Passkey(Out):
    id: int
    name: str
    transports: list[str] = Field(description="How the authenticator is reached: internal, usb…")
    created_ms: int
    last_used_ms: int | None = Field(description="Its last sign-in; null if never used")


class PasskeyList(Out):
    passkeys: list[Passkey]


class ResetAsked(Out):
    sent: bool = Field(description="Always true: whether the e-mail has an account is not told")


class HoldLine(Out):
    sku_id: int
    qty: int
    unit_price: int
    discount: int  # the line's share of the discounts
    total: int  # qty x unit_price - discount


class Hold(Out):
    id: str
    deal_id: int | None = None  # a cart's checkout of a deal item: the deal
    qty: int
    state: HoldState
    expires_ms: int
    lines: list[HoldLine] | None = None  # a cart's hold: what it holds, at what price
    # A cart's hold: what the buyer pays (subtotal - discount + shipping_fee; the discount
    # includes shipping_discount), and the voucher it redeems.
    subtotal: int | None = None
    discount: int | None = None
    shipping_fee: int | None = None
    shipping_discount: int | None = None
    voucher: str | None = None  # the code it redeems; absent for none
    voucher_discount: int | None = None  # the voucher's part of discount on the goods
    total: int | None = None
    currency: str | None = None


class HoldAnswer(Out):
    hold: Hold


class PaidOrder(Out):
    hold_id: str
    status: Literal["paid"]
    qty: int
    unit_price: int  # a cart's hold of several lines: 0 (each line has its own)
    amount: int
    currency: str
    payment_ref: str
    lines: list[HoldLine] | None = None


class CartLine(Out):
    sku_id: int
    product_id: int
    shop_id: int
    title: str
    variant: str
    image_url: str
    qty: int
    unit_price: int
    currency: str
    total: int


class CartShop(Out):
    """A shop's part of the cart as its checkout would charge it: total = subtotal - discount
    + shipping_fee (the discount includes shipping_discount), with the best voucher you can
    use applied (name it in the checkout to redeem it)."""

    shop_id: int
    currency: str
    subtotal: int
    discount: int
    shipping_fee: int
    shipping_discount: int
    voucher: str | None
    voucher_discount: int  # the voucher's part of discount on the goods (the rest: promotions)
    total: int


class CartDeal(Out):
    """A flash deal's item in the cart: held by the deal's reserve, an order of its own."""

    deal_id: int
    sku_id: int
    shop_id: int
    title: str
    variant: str
    image_url: str
    qty: int
    unit_price: int  # the deal's price
    currency: str
    total: int
    per_buyer_limit: int
    status: DealStatus
    ends_ms: int


class Cart(Out):
    lines: list[CartLine]
    shops: list[CartShop]
    deals: list[CartDeal]


class CartAnswer(Out):
    cart: Cart


class Voucher(Out):
    id: int
    shop_id: int
    code: str
    kind: Literal["percent", "fixed", "shipping"]
    value: int
    currency: str
    min_spend: int
    max_discount: int | None
    budget: int
    per_buyer: int
    starts_ms: int
    ends_ms: int
    room_id: int | None
    products: list[int] | None
    left: int  # uses of the budget not yet claimed


class Promotion(Out):
    id: int
    shop_id: int
    kind: Literal["discount", "bundle"]
    products: list[int]
    bps: int | None  # a discount's
    size: int | None  # a bundle's
    price: int | None  # a bundle's
    currency: str | None  # a bundle's price's
    starts_ms: int
    ends_ms: int


class PromotionAnswer(Out):
    promotion: Promotion


class PromotionList(Out):
    promotions: list[Promotion]


class VoucherAnswer(Out):
    voucher: Voucher


class VoucherList(Out):
    vouchers: list[Voucher]


class Claim(Out):
    code: str
    left: int
    claimed: int  # claims you have made of it


class ClaimAnswer(Out):
    claim: Claim


class StockAnswer(Out):
    stock: dict[str, int]  # SKU id -> units buyable at list price now


class CartHoldAnswer(Out):
    hold: Hold | None = None  # the one hold, when the cart's items are one shop's
    holds: list[Hold]  # one per shop, in shop id order (decision 0030)
    total: int  # what paying for every hold charges in all
    currency: str


class CartPayAnswer(Out):
    orders: list[PaidOrder]  # one per hold, in the order paid


class CheckoutAnswer(Out):
    order: PaidOrder


# -- catalog ------------------------------------------------------------------------------------


class Shop(Out):
    id: int
    name: str
    handle: str


class ShopAnswer(Out):
    shop: Shop


class ShopList(Out):
    shops: list[Shop]


class Option(Out):
    name: str
    values: list[str]


class Sku(Out):
    id: int
    product_id: int
    variant: str
    options: dict[str, str]  # its value of each of the product's options ({} without options)
    image_url: str  # "" for none: show the product's pictures
    list_price: int
    currency: str
    stock: int
    allocated: int


class SkuAnswer(Out):
    sku: Sku


class Product(Out):
    id: int
    shop_id: int
    title: str
    description: str
    category: str
    image_urls: list[str]
    options: list[Option]
    archived: bool
    archived_ms: int | None
    skus: list[Sku] | None = None  # on a product read alone, and a new one


class ProductAnswer(Out):
    product: Product


class ProductList(Out):
    products: list[Product]


class DealStock(Out):
    available: int
    held: int
    sold: int


class Deal(Out):
    id: int
    shop_id: int
    sku_id: int
    deal_price: int
    currency: str
    quantity: int
    per_buyer_limit: int
    starts_ms: int
    ends_ms: int
    accounts_only: bool
    status: DealStatus
    kind: Literal["flash", "lot"]  # lot: an auction's unit (decision 0031)
    phase: DealPhase
    # Once started: the live counts, on the server's clock.
    stock: DealStock | None = None
    server_ms: int | None = None


class DealAnswer(Out):
    deal: Deal


class DealList(Out):
    deals: list[Deal]
    server_ms: int


# -- orders -------------------------------------------------------------------------------------


class Shipping(Out):
    name: str
    line1: str
    line2: str
    city: str
    postal_code: str
    country: str


class OrderItem(Out):
    title: str
    variant: str
    image: str | None


class OrderEvent(Out):
    from_: OrderStatus | None = Field(alias="from")  # None on the order's first event
    to: OrderStatus
    at_ms: int
    actor: str
    note: str


class ReturnEvent(Out):
    from_: ReturnStatus | None = Field(alias="from")  # None on the request's first event
    to: ReturnStatus
    at_ms: int
    actor: str
    note: str


class ReturnRequest(Out):
    """A buyer's request to cancel, be refunded or return goods (docs/money.md)."""

    id: int
    order_id: int
    kind: RequestKind
    reason: str
    note: str
    photos: list[str]
    units: int
    amount: int  # minor units asked for (an accepted offer's amount once accepted)
    offer_amount: int | None  # the seller's smaller offer while the request is offered
    currency: str
    status: ReturnStatus
    answer: str  # the seller's reason to reject, or note to an offer
    carrier: str  # a return shipped back: with whom, and its tracking number
    tracking_number: str
    refund_id: int | None
    created_ms: int
    updated_ms: int
    events: list[ReturnEvent] | None = None  # on one request


class RequestList(Out):
    requests: list[ReturnRequest]


class OrderLine(Out):
    sku_id: int
    qty: int
    unit_price: int
    discount: int
    total: int
    # In a buyer's list, what it is (as ``item`` says of a one-SKU order).
    title: str | None = None
    variant: str | None = None
    image: str | None = None


class Order(Out):
    id: int
    hold_id: str
    deal_id: int | None  # None: bought at list price from a cart (its lines say what)
    shop_id: int
    sku_id: int
    buyer_id: str
    quantity: int
    unit_price: int
    total: int
    currency: str
    status: OrderStatus
    payment_ref: str
    paid_ms: int
    updated_ms: int
    shipping: Shipping | None
    carrier: str
    tracking_number: str
    refunded: int  # minor units given back so far (a partial refund leaves the status)
    restocked_units: int
    # total = the lines' prices - discount + shipping_fee - shipping_discount (a cart's order)
    discount: int
    shipping_fee: int
    shipping_discount: int
    voucher: str | None  # the code redeemed
    voucher_discount: int  # the voucher's part of discount (the rest: promotions)
    # Deadlines (docs/money.md), null until they start, and when the order shipped and arrived.
    ship_by_ms: int | None
    ship_limit_ms: int | None
    shipped_ms: int | None
    deliver_by_ms: int | None
    delivered_ms: int | None
    late: bool  # shipped after ship_by_ms, or still unshipped past it (checkout/deadlines.py)
    item: OrderItem | None = None  # in a buyer's list
    lines: list[OrderLine] | None = None  # a cart's order: each SKU, its units and price
    events: list[OrderEvent] | None = None  # on one order
    # A buyer's views (their list, by hold): the order's open or newest request, if any.
    request: ReturnRequest | None = None


class OrderAnswer(Out):
    order: Order


class Refund(Out):
    id: int
    order_id: int
    amount: int
    fee_returned: int
    currency: str
    units_restocked: int
    reason: str
    actor: str
    status: RefundStatus
    provider_ref: str
    created_ms: int
    updated_ms: int


class RefundAnswer(Out):
    order: Order
    refund: Refund


class OrderList(Out):
    orders: list[Order]


class RequestAnswer(Out):
    request: ReturnRequest
    order: Order


class RowError(Out):
    code: str  # the code shipping that order alone would answer
    message: str
    details: dict[str, Any]


class ShipmentResult(Out):
    index: int  # the shipment's place in the request, from 0
    order_id: int
    shipped: bool
    order: Order | None = None  # when shipped
    error: RowError | None = None  # when not


class ShipmentsAnswer(Out):
    shipped: int
    failed: int
    results: list[ShipmentResult]


# -- rooms --------------------------------------------------------------------------------------


class BagSku(Out):
    sku_id: int
    variant: str
    options: dict[str, str] = {}  # a card added before variants has none
    image: str = ""  # the SKU's own picture; "" for none
    list_price: int
    currency: str


class BagProduct(Out):
    product_id: int
    # Its shop (a cart's buy-now names it); absent from cards added before it was carried.
    shop_id: int | None = None
    title: str
    image: str | None
    options: list[Option] = []
    skus: list[BagSku]


class FlashDeal(Out):
    deal_id: int
    product_id: int
    sku_id: int
    title: str
    image: str | None
    variant: str
    list_price: int
    deal_price: int
    currency: str
    quantity: int
    per_buyer_limit: int
    starts_ms: int
    ends_ms: int
    accounts_only: bool
    status: FlashDealStatus
    sold_out: bool


class AuctionHold(Out):
    id: str
    pay_by_ms: int


class Auction(Out):
    """An auction as anyone sees it (never a bidder's maximum); the winner also sees the hold
    to pay (your_hold)."""

    auction_id: int  # the lot's deal id
    deal_id: int
    sku_id: int
    state: AuctionState
    mode: AuctionMode
    start_price: int
    price: int  # 0 before the first bid
    bids: int
    min_bid: int  # the least the next bid may be
    ends_ms: int  # on the server's clock
    snipe_s: int
    reserve_met: bool
    has_reserve: bool
    buy_now_price: int  # 0: none
    leader: str  # "" before the first bid
    leader_name: str
    round: int  # 1 once closed with a winner; +1 per offer to the next bidder
    card_required: bool  # bidders keep a card on file; the win is charged to it
    accounts_only: bool  # bids and places from signed-in accounts only
    relists_left: int  # times it may still go up again without a sale
    relisted: int  # times it went up again so far
    winner: str | None = None
    winner_name: str | None = None
    hammer_price: int | None = None
    your_hold: AuctionHold | None = None
    waiting: int | None = None  # users on the lot's waitlist (a read's, not an event's)
    place: int | None = None  # the reader's place on the lot's waitlist, from 1


class Giveaway(Out):
    """A giveaway as anyone sees it. Once drawn: the revealed seed, the entries' hash and the
    winner; recompute the draw with ``GET .../entries`` (decision 0032)."""

    giveaway_id: int  # the prize lot's deal id
    deal_id: int
    sku_id: int
    state: GiveawayState
    ends_ms: int
    commitment: str  # SHA-256 of the seed, hex, public from the start
    min_watch_s: int
    buyers_only: bool
    accounts_only: bool  # entries from signed-in accounts only
    entries: int
    seed: str | None = None
    entries_hash: str | None = None
    winner: str | None = None
    your_hold: AuctionHold | None = None


class GiveawayAnswer(Out):
    giveaway: Giveaway


class Entered(Out):
    entries: int


class Entries(Out):
    entries: list[str]  # sorted, as the draw takes them
    entries_hash: str


class PaymentMethod(Out):
    id: str
    last4: str


class PaymentMethodAnswer(Out):
    payment_method: PaymentMethod


class Waitlist(Out):
    place: int  # from 1; 0: not waiting
    waiting: int
    # GET: your live holds of the deal (a unit handed to you from the list is one of them)
    holds: list[Hold] | None = None


class WaitlistAnswer(Out):
    waitlist: Waitlist


class AuctionAnswer(Out):
    auction: Auction


class Bid(Out):
    auction_id: int
    outcome: Literal["leading", "raised", "outbid", "bought"]
    price: int
    ends_ms: int
    seq: int  # the auction.bid (or auction.closed) event's number in the room
    min_bid: int


class BidAnswer(Out):
    bid: Bid


class Stream(Out):
    started_ms: int


class DroppedVoucher(Out):
    shop_id: int
    code: str
    kind: Literal["percent", "fixed", "shipping"]
    value: int  # basis points (percent) or minor units
    currency: str
    min_spend: int
    max_discount: int | None
    budget: int
    ends_ms: int
    live_only: bool  # claimable only here, while the room is live


class CommentBuy(Out):
    keywords: list[str]


class Room(Out):
    id: int
    shop_id: int
    seller_id: int
    title: str
    status: RoomStatus
    created_ms: int
    started_ms: int | None
    ended_ms: int | None
    bag: list[BagProduct]
    pinned: int | None
    deals: list[FlashDeal]
    stream: Stream | None
    voucher: DroppedVoucher | None  # the voucher the creator dropped last, to claim here
    # Comment-to-buy while on (decision 0033): a chat line starting with a keyword claims
    comment_buy: CommentBuy | None = None


class RoomAnswer(Out):
    room: Room
    seq: int


class RoomRead(Out):
    room: Room
    seq: int
    followers: int = Field(description="The room's seller's followers (decision 0045)")


class FlashDealAnswer(Out):
    deal: FlashDeal
    room: Room
    seq: int


class RoomRow(Out):
    id: int
    shop_id: int
    title: str
    status: RoomStatus
    created_ms: int
    started_ms: int | None
    ended_ms: int | None


class RoomList(Out):
    rooms: list[RoomRow]


class CurrencySales(Out):
    """What the orders paid in one currency came to; money never adds up across currencies."""

    currency: str
    orders: int
    units: int
    gmv: int  # gross, minor units: the orders' totals, refunded or not
    net_gmv: int  # less what was given back of them since


class Figures(Out):
    viewers: int
    peak_viewers: int
    held: int
    orders: int
    units_sold: int
    gmv: int  # gross, in ``currency``: the orders' totals, refunded or not
    net_gmv: int  # net: the totals less what was refunded of them
    currency: str  # the leading one: most orders were paid in it (decision 0053)
    sales: list[CurrencySales]  # every currency's, by its code
    buyers: int
    conversion: float


class FiguresAnswer(Out):
    figures: Figures
    server_ms: int


# -- analytics (decision 0044) ------------------------------------------------------------------


class Rates(Out):
    click_through: float  # clicks / impressions, 0..1 (0 without impressions)
    conversion: float  # orders / viewers (a minute's most at once; a room's unique viewers)


class AnalyticsMinute(Rates):
    minute_ms: int  # the minute's first millisecond (UTC)
    viewers: int  # most at once
    unique_viewers: int  # who joined in this minute
    followers: int
    likes: int
    chat: int
    impressions: int
    clicks: int
    carts: int
    orders: int  # paid in this minute, in any currency
    units: int
    gmv: int  # minor units of the totals' ``currency``: those orders' totals in it
    net_gmv: int  # less what was refunded of them since


class AnalyticsTotals(Rates):
    peak_viewers: int
    unique_viewers: int
    followers: int
    likes: int
    chat: int
    impressions: int
    clicks: int
    carts: int
    orders: int
    units: int
    gmv: int
    net_gmv: int
    currency: str  # the leading one (decision 0053): the minutes' and totals' money is in it
    sales: list[CurrencySales]


class RoomAnalytics(Out):
    room_id: int
    status: str
    source: str  # "redis" while the room is live (and just after), "sql" once written there
    minutes: list[AnalyticsMinute]
    totals: AnalyticsTotals


class RoomAnalyticsAnswer(Out):
    analytics: RoomAnalytics
    server_ms: int


class AnalyticsDay(Out):
    day_ms: int  # the UTC day's first millisecond
    viewers: int  # most at once in any minute that day
    unique_viewers: int  # summed over the day's minutes
    followers: int
    likes: int
    chat: int
    impressions: int
    clicks: int
    carts: int
    orders: int
    units: int
    gmv: int
    net_gmv: int


class DailyAnalyticsAnswer(Out):
    shop_id: int
    currency: str  # the period's leading one (decision 0053): the days' money is in it
    sales: list[CurrencySales]  # the period's, every currency's
    days: list[AnalyticsDay]


# -- finance ------------------------------------------------------------------------------------


class Earnings(Out):
    currency: str
    pending: int  # earned, not yet withdrawable
    available: int  # withdrawable; below zero after a refund of settled money
    paid_out: int  # withdrawn so far
    withdrawable: int  # what a withdrawal takes now: the available balance, 0 below zero


class Finance(Out):
    shop_id: int
    payout_method: str  # "" for none
    earnings: list[Earnings]


class FinanceAnswer(Out):
    finance: Finance


# The shop's own accounts (checkout.ledger.SHOP_ACCOUNTS).
ShopAccount = Literal[Account.PENDING, Account.AVAILABLE, Account.PAID_OUT]


class StatementBalance(Out):
    account: ShopAccount
    currency: str
    opening: int
    closing: int


class StatementEntry(Out):
    id: int
    created_ms: int
    txn: str
    account: ShopAccount
    amount: int  # the change in what is owed to the shop (the ledger entry negated)
    currency: str
    reference: str


class Statement(Out):
    shop_id: int
    from_ms: int
    to_ms: int
    balances: list[StatementBalance]
    entries: list[StatementEntry]


class StatementAnswer(Out):
    statement: Statement


class Payout(Out):
    id: int
    shop_id: int
    amount: int
    currency: str
    status: PayoutStatus
    destination: str
    provider_ref: str
    utc_day: str
    created_ms: int
    updated_ms: int


class PayoutAnswer(Out):
    payout: Payout


class PayoutList(Out):
    payouts: list[Payout]


class ShippingRule(Out):
    kind: Literal["flat", "free_over", "per_item"]
    fee: int
    free_over: int


class ShippingRuleAnswer(Out):
    shop_id: int
    shipping: ShippingRule


class PayoutMethodAnswer(Out):
    shop_id: int
    payout_method: str


# -- payments -----------------------------------------------------------------------------------


class WebhookAnswer(Out):
    received: Literal[True]
    replayed: Literal[True] | None = Field(
        default=None, description="Present when the event id was received before: nothing changed"
    )


# -- operations ---------------------------------------------------------------------------------


class Health(Out):
    status: Literal["ok"]


class Checks(Out):
    redis: Literal["ok"]
    database: Literal["ok"]


class Ready(Out):
    status: Literal["ready"]
    checks: Checks


# -- affiliates (decision 0046) -----------------------------------------------------------------


class PlanProductOut(Out):
    product_id: int
    rate_bp: int
    max_discount_bp: int


class Plan(Out):
    id: int
    shop_id: int
    name: str
    open_to_all: bool
    creator_ids: list[int]
    products: list[PlanProductOut]
    created_ms: int
    ended_ms: int | None


class PlanAnswer(Out):
    plan: Plan


class PlanList(Out):
    plans: list[Plan]


class OfferOut(Out):
    plan_id: int
    shop_id: int
    shop_name: str
    product_id: int
    title: str
    rate_bp: int
    max_discount_bp: int


class OfferList(Out):
    offers: list[OfferOut]


class CommissionTotals(Out):
    currency: str
    orders: int
    sales: int
    pending: int
    earned: int
    given_back: int
    paid: int  # of earned, what reached the creator's shop with the orders' settlement


class RoomSales(Out):
    currency: str
    orders: int
    gmv: int


class CreatorRoom(Out):
    room_id: int
    title: str
    status: RoomStatus
    sales: list[RoomSales]


class MyCommissions(Out):
    commissions: list[CommissionTotals]
    rooms: list[CreatorRoom]


class ShopCreator(Out):
    creator_id: int
    name: str
    commissions: list[CommissionTotals]


class ShopCreators(Out):
    creators: list[ShopCreator]


class MarketCreator(Out):
    creator_id: int
    name: str
    rooms: int
    followers: int = Field(description="0 until rooms can be followed")
    sales: list[RoomSales]


class Marketplace(Out):
    creators: list[MarketCreator]
