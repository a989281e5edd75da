"""A buyer's request to cancel, be refunded or return goods, and the moves between its states
(decision 0027, section 4; docs/money.md). Pure: no I/O.

    requested -> approved | rejected | offered | withdrawn
    offered   -> approved (buyer accepts) | requested (buyer declines) | closed (no answer)
    approved  -> refunded                        cancel, refund_only: refund granted on approval
    approved  -> shipped_back -> received -> refunded    return: granted on receipt
    approved  -> closed                          not shipped back in time

``refunded`` means the provider confirmed the refund. One request per order may be open at a
time (a partial unique index over ``OPEN_REQUESTS``).
"""

from __future__ import annotations

import enum


class RequestKind(enum.StrEnum):
    CANCEL = "cancel"  # before shipping
    REFUND_ONLY = "refund_only"  # after delivery, keep the goods
    RETURN = "return"  # after delivery, send the goods back


class ReturnStatus(enum.StrEnum):
    REQUESTED = "requested"
    OFFERED = "offered"
    APPROVED = "approved"
    SHIPPED_BACK = "shipped_back"
    RECEIVED = "received"
    REFUNDED = "refunded"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    CLOSED = "closed"


R = ReturnStatus

OPEN_REQUESTS = frozenset({R.REQUESTED, R.OFFERED, R.APPROVED, R.SHIPPED_BACK, R.RECEIVED})

TRANSITIONS: dict[ReturnStatus, frozenset[ReturnStatus]] = {
    R.REQUESTED: frozenset({R.APPROVED, R.REJECTED, R.OFFERED, R.WITHDRAWN}),
    R.OFFERED: frozenset({R.APPROVED, R.REQUESTED, R.CLOSED}),
    R.APPROVED: frozenset({R.SHIPPED_BACK, R.REFUNDED, R.CLOSED}),
    R.SHIPPED_BACK: frozenset({R.RECEIVED}),
    R.RECEIVED: frozenset({R.REFUNDED}),
    R.REFUNDED: frozenset(),
    R.REJECTED: frozenset(),
    R.WITHDRAWN: frozenset(),
    R.CLOSED: frozenset(),
}


def sources(target: ReturnStatus) -> frozenset[ReturnStatus]:
    """The states a request can reach ``target`` from: the guard of each move's UPDATE."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)
