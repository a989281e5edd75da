"""Checkout's error codes: reserving, holds, payments, idempotency, per-address limits, orders."""

from __future__ import annotations

from kernel.errors import ErrorCode


class CheckoutErrorCode(ErrorCode):
    """Refusals on the way from a tap to an order: the stock or a limit says no, the hold's
    state refuses, the card or the Idempotency-Key does, or the order's state does."""

    # Reserving
    SOLD_OUT = "sold_out"
    AUCTION_LOT = "auction_lot"  # the deal is an auction's lot: only the auction sells it
    NO_PAYMENT_METHOD = "no_payment_method"  # no card on file
    NOT_SOLD_OUT = "not_sold_out"  # joining a waitlist while units are left: tap Buy
    INSUFFICIENT_STOCK = "insufficient_stock"
    LIMIT_EXCEEDED = "limit_exceeded"  # the deal's per-buyer limit
    ACCOUNT_REQUIRED = "account_required"  # a deal for accounts only, and a guest asked
    ADDRESS_HOLD_LIMIT = "address_hold_limit"  # units held at once from one client address
    DEAL_STATE_MISMATCH = "deal_state_mismatch"  # Redis holds another deal under this id
    # Carts (decision 0028)
    CART_EMPTY = "cart_empty"  # checking out a cart (or a shop's part of it) with nothing in it
    CART_FULL = "cart_full"  # more distinct SKUs than a cart takes
    CART_SPANS_SHOPS = "cart_spans_shops"  # pick one shop: a checkout pays one shop's lines
    MIXED_CURRENCIES = "mixed_currencies"  # one payment is in one currency
    QUOTE_CHANGED = "quote_changed"  # the total the buyer saw is not the total now
    # Vouchers (decision 0028)
    VOUCHER_NOT_FOUND = "voucher_not_found"
    VOUCHER_EXISTS = "voucher_exists"  # the shop has a voucher of this code
    INVALID_VOUCHER = "invalid_voucher"  # terms that cannot be: a percentage over 100 %, ...
    VOUCHER_NOT_STARTED = "voucher_not_started"
    VOUCHER_ENDED = "voucher_ended"
    VOUCHER_EXHAUSTED = "voucher_exhausted"  # every use of its budget was claimed
    VOUCHER_CLAIMED = "voucher_claimed"  # you made every claim one buyer may
    VOUCHER_ROOM_NOT_LIVE = "voucher_room_not_live"  # a live-only voucher, its room not live
    VOUCHER_NOT_CLAIMED = "voucher_not_claimed"  # a live-only voucher is claimed in its room first
    VOUCHER_USED = "voucher_used"  # you used every claim of it one buyer may make
    VOUCHER_MIN_SPEND = "voucher_min_spend"  # the lines it applies to cost less than its minimum
    VOUCHER_NOT_APPLICABLE = "voucher_not_applicable"  # no line it applies to, or other currency
    # Promotions (decision 0028)
    INVALID_PROMOTION = "invalid_promotion"  # terms that cannot be: a bundle of one, ...
    PROMOTION_NOT_FOUND = "promotion_not_found"
    # Holds and payments
    HOLD_NOT_FOUND = "hold_not_found"
    HOLD_EXPIRED = "hold_expired"
    HOLD_RELEASED = "hold_released"
    HOLD_ALREADY_PAID = "hold_already_paid"
    PAYMENT_IN_PROGRESS = "payment_in_progress"  # another attempt is paying for the hold
    CHECKOUT_REQUIRED = "checkout_required"  # a unit kept from a waitlist: check the SKU out
    PAYMENT_REFUNDED = "payment_refunded"  # this key's charge was given back: use a new key
    INVALID_CARD = "invalid_card"
    CARD_DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    # Idempotency-Key
    IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"  # with a different body
    REQUEST_IN_PROGRESS = "request_in_progress"  # the same key's request is still running
    # Orders
    ORDER_NOT_FOUND = "order_not_found"
    UNKNOWN_ACTION = "unknown_action"
    INVALID_TRANSITION = "invalid_transition"
    ORDER_CHANGED = "order_changed"  # someone else moved the order meanwhile
    TRACKING_REQUIRED = "tracking_required"
    UNEXPECTED_TRACKING = "unexpected_tracking"
    TOO_MANY_SHIPMENTS = "too_many_shipments"  # a bulk shipment over checkout.bulk_ship's limit
    # Money (decision 0027)
    REFUND_EXCEEDS_PAID = "refund_exceeds_paid"  # more than is left to refund
    ORDER_NOT_REFUNDABLE = "order_not_refundable"  # cancelled, fully refunded, or not paid
    ORDER_DISPUTED = "order_disputed"  # an open dispute: the provider decides the money now
    INVALID_AMOUNT = "invalid_amount"  # not a positive whole number of minor units
    RESTOCK_EXCEEDS_UNITS = "restock_exceeds_units"  # more units back than the order had
    PROVIDER_REFUSED = "provider_refused"  # the payment provider said no
    # Buyers' requests: cancellations, refunds and returns
    REQUEST_NOT_FOUND = "request_not_found"  # missing, or not yours
    RETURN_OPEN = "return_open"  # the order has an open request already
    RETURN_WINDOW_CLOSED = "return_window_closed"  # too long after delivery
    CANCEL_REQUESTED = "cancel_requested"  # shipping an order whose buyer asked to cancel
    INVALID_REASON = "invalid_reason"  # not one of the reason codes; a rejection without one
    INVALID_PHOTOS = "invalid_photos"  # more than five, or not http(s) URLs
    INVALID_UNITS = "invalid_units"  # not between 1 and the units the order has left
    # Payment webhooks: a body whose Livecart-Signature does not check out is not believed
    INVALID_SIGNATURE = "invalid_signature"  # missing, malformed, or no v1 matches a secret
    SIGNATURE_EXPIRED = "signature_expired"  # its t is too far from the server's clock
    # Withdrawals
    NOTHING_TO_WITHDRAW = "nothing_to_withdraw"  # the available balance is zero or below
    NO_PAYOUT_METHOD = "no_payout_method"  # the shop has nowhere to send money
    PAYOUT_LIMIT = "payout_limit"  # one withdrawal a day per shop and currency
