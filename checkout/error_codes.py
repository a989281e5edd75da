"""Checkout's error codes: reserving, holds, payments, idempotency, per-address limits, orders."""

from __future__ import annotations

from kernel.errors import ErrorCode


class CheckoutErrorCode(ErrorCode):
    """Refusals on the way from a tap to an order: the stock or a limit says no, the hold's
    state refuses, the card or the Idempotency-Key does, or the order's state does."""

    # Reserving
    SOLD_OUT = "sold_out"
    INSUFFICIENT_STOCK = "insufficient_stock"
    LIMIT_EXCEEDED = "limit_exceeded"  # the deal's per-buyer limit
    ADDRESS_HOLD_LIMIT = "address_hold_limit"  # units held at once from one client address
    DEAL_STATE_MISMATCH = "deal_state_mismatch"  # Redis holds another deal under this id
    # Holds and payments
    HOLD_NOT_FOUND = "hold_not_found"
    HOLD_EXPIRED = "hold_expired"
    HOLD_RELEASED = "hold_released"
    HOLD_ALREADY_PAID = "hold_already_paid"
    PAYMENT_IN_PROGRESS = "payment_in_progress"  # another attempt is paying for the hold
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
