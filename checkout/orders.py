"""Order states and the transitions allowed between them. Pure: no I/O.

    paid -> awaiting_shipment -> shipped -> delivered -> completed
    unpaid -> paid | cancelled;   paid, awaiting_shipment -> cancelled (before it ships)
    paid, awaiting_shipment, shipped, delivered -> refunded

Shipping needs a carrier and a tracking number, kept on the order.

Orders from a flash deal are born ``paid`` (the hold was paid before the order existed), with a
``None -> paid`` event row recording it.
"""

from __future__ import annotations

import enum

from checkout.error_codes import CheckoutErrorCode
from kernel.errors import Conflict, Invalid, NotFound


class OrderStatus(enum.StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"
    AWAITING_SHIPMENT = "awaiting_shipment"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


S = OrderStatus

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.UNPAID: frozenset({S.PAID, S.CANCELLED}),
    S.PAID: frozenset({S.AWAITING_SHIPMENT, S.CANCELLED, S.REFUNDED}),
    S.AWAITING_SHIPMENT: frozenset({S.SHIPPED, S.CANCELLED, S.REFUNDED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.REFUNDED}),
    S.DELIVERED: frozenset({S.COMPLETED, S.REFUNDED}),
    S.COMPLETED: frozenset({S.REFUNDED}),  # a late return, or a lost dispute
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}

# The seller-facing verbs, each naming the one state it leads to.
ACTIONS: dict[str, OrderStatus] = {
    "pay": S.PAID,
    "confirm": S.AWAITING_SHIPMENT,
    "ship": S.SHIPPED,
    "deliver": S.DELIVERED,
    "complete": S.COMPLETED,
    "cancel": S.CANCELLED,
    "refund": S.REFUNDED,
}


def next_status(current: OrderStatus, action: str) -> OrderStatus:
    """The state ``action`` leads to from ``current``, or an error naming what is allowed."""
    target = ACTIONS.get(action)
    if target is None:
        raise NotFound(
            f"No order action {action!r}.",
            code=CheckoutErrorCode.UNKNOWN_ACTION,
            allowed=sorted(ACTIONS),
        )
    if target not in TRANSITIONS[current]:
        raise Conflict(
            f"An order that is {current} cannot be moved to {target}.",
            code=CheckoutErrorCode.INVALID_TRANSITION,
            status=str(current),
            allowed=sorted(a for a, t in ACTIONS.items() if t in TRANSITIONS[current]),
        )
    return target


def shipment_fields(target: OrderStatus, carrier: str, tracking_number: str) -> dict[str, str]:
    """The columns a move to ``target`` sets besides the status: a shipment names its carrier
    and tracking number (both required), and nothing else takes them."""
    if target is not S.SHIPPED:
        if carrier or tracking_number:
            raise Invalid(
                "Only shipping takes a carrier and tracking number.",
                code=CheckoutErrorCode.UNEXPECTED_TRACKING,
            )
        return {}
    missing = [n for n, v in (("carrier", carrier), ("tracking_number", tracking_number)) if not v]
    if missing:
        raise Invalid(
            "Shipping needs the carrier and the tracking number.",
            code=CheckoutErrorCode.TRACKING_REQUIRED,
            missing=missing,
        )
    return {"carrier": carrier, "tracking_number": tracking_number}
