"""Fulfilment deadlines (decision 0027, section 4): how long a seller has left to ship an order,
whether it is late, and a shop's late-dispatch rate. Pure: no I/O, and every rule takes
``now_ms``, so tests fix the clock.

Deadlines are stamped on the order when they start and never recomputed, so a changed setting
never moves a promise: ``ship_by_ms`` when it is paid (``LIVECART_SHIP_BY_HOURS`` after
payment), ``deliver_by_ms`` when it ships (``LIVECART_DELIVERY_DAYS`` after; shown only). The
moments things happened sit beside them: ``shipped_ms``, ``delivered_ms``.

**Late.** An order with a ship-by time is late when it stopped waiting to be shipped after that
time: it shipped after ``ship_by_ms``; or it was cancelled or fully refunded unshipped after it
(the automatic cancel at the hard limit always is); or it still waits and ``now_ms`` is past it.
An order shipped, cancelled or refunded by its ship-by time is not late, and never becomes so.
An order without a ship-by time (none was stamped before deadlines existed) is never late.

**Late-dispatch rate.** Over a shop's orders *due* in the last 30 days, those whose
``ship_by_ms`` falls in ``[now_ms - 30 days, now_ms]`` (both ends included), the share that are
late as above: late ones / all of them. Orders not due yet do not count, shipped or not; so
every order still waiting in the window is late. No order due: no rate (``None``), not 0 %.
``order_store.dispatch_record`` counts the same in one SQL query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from checkout.orders import OrderStatus

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
LATE_DISPATCH_WINDOW_MS = 30 * DAY_MS
# Waiting to be shipped: the seller center's "to ship" tab.
TO_SHIP = frozenset({OrderStatus.PAID, OrderStatus.AWAITING_SHIPMENT})
# Where an order goes when it stops waiting without being shipped.
CLOSED_UNSHIPPED = frozenset({OrderStatus.CANCELLED, OrderStatus.REFUNDED})


class ShipClock(Protocol):
    """What the rules read of an order (``checkout.models.Order`` has it)."""

    @property
    def status(self) -> str: ...
    @property
    def ship_by_ms(self) -> int | None: ...
    @property
    def shipped_ms(self) -> int | None: ...


class StatusMove(Protocol):
    """An order's event row, as ``closed_unshipped_ms`` reads it."""

    @property
    def to_status(self) -> str: ...
    @property
    def at_ms(self) -> int: ...


def waits_to_ship(order: ShipClock) -> bool:
    return order.status in TO_SHIP and order.shipped_ms is None


def time_left_to_ship_ms(order: ShipClock, now_ms: int) -> int | None:
    """Until the ship-by time, for an order waiting to be shipped (below zero: late by that
    much); None for one that does not wait, or has no ship-by time."""
    if order.ship_by_ms is None or not waits_to_ship(order):
        return None
    return order.ship_by_ms - now_ms


def stopped_waiting_ms(order: ShipClock, now_ms: int, closed_ms: int | None = None) -> int | None:
    """When the order stopped waiting to be shipped: when it shipped; else, cancelled or refunded
    unshipped, when that happened (``closed_ms``, None if not known); else, still waiting,
    ``now_ms``."""
    if order.shipped_ms is not None:
        return order.shipped_ms
    if order.status in TO_SHIP:
        return now_ms
    return closed_ms if order.status in CLOSED_UNSHIPPED else None


def is_late(order: ShipClock, now_ms: int, closed_ms: int | None = None) -> bool:
    """See the module's docstring. ``closed_ms``: when an order cancelled or refunded before it
    shipped was (``closed_unshipped_ms``); without it such an order is not called late."""
    stopped = stopped_waiting_ms(order, now_ms, closed_ms)
    return order.ship_by_ms is not None and stopped is not None and stopped > order.ship_by_ms


def closed_unshipped_ms(events: Iterable[StatusMove]) -> int | None:
    """When the order was cancelled or refunded, from its event rows (the first such move), or
    None. Only meaningful for an order that never shipped: ``is_late`` reads ``shipped_ms``
    first."""
    return min((e.at_ms for e in events if e.to_status in CLOSED_UNSHIPPED), default=None)


def due_window(now_ms: int) -> tuple[int, int]:
    """The ship-by times of the orders the late-dispatch rate is over, both ends included."""
    return now_ms - LATE_DISPATCH_WINDOW_MS, now_ms


@dataclass(frozen=True)
class DispatchRecord:
    """A shop's orders due in the window, and how many of them are late."""

    due: int = 0
    late: int = 0

    @property
    def rate(self) -> float | None:
        """Late ones / all of them, from 0 to 1; None when no order was due."""
        return self.late / self.due if self.due else None


def dispatch_record(orders: Iterable[tuple[ShipClock, int | None]], now_ms: int) -> DispatchRecord:
    """The late-dispatch count over ``(order, closed_ms)`` pairs, as ``order_store`` counts it
    in SQL (the tests hold one against the other)."""
    start, end = due_window(now_ms)
    due = [
        (order, closed)
        for order, closed in orders
        if order.ship_by_ms is not None and start <= order.ship_by_ms <= end
    ]
    late = sum(is_late(order, now_ms, closed) for order, closed in due)
    return DispatchRecord(due=len(due), late=late)


def rough_duration(ms: int) -> str:
    """A span as the seller center says it, in its two largest units, rounded down: "2 d 5 h",
    "3 h 20 min", "45 min", "less than 1 min". The sign is ignored (say "late by" around it)."""
    ms = abs(ms)
    if ms < MINUTE_MS:
        return "less than 1 min"
    units = (("d", DAY_MS), ("h", HOUR_MS), ("min", MINUTE_MS))
    parts: list[str] = []
    for name, size in units:
        count, ms = divmod(ms, size)
        if count or parts:
            parts.append(f"{count} {name}")
        if len(parts) == 2:
            break
    return " ".join(p for p in parts if not p.startswith("0 "))


def ship_within_text(left_ms: int) -> str:
    """ "Ship within 2 d 5 h", or once the ship-by time has passed, "Late by 3 h"."""
    if left_ms < 0:
        return f"Late by {rough_duration(left_ms)}"
    return f"Ship within {rough_duration(left_ms)}"


def moment_fields(target: OrderStatus, now_ms: int, deliver_within_ms: int) -> dict[str, int]:
    """The time stamps a move to ``target`` sets besides the status: shipping records when it
    shipped and when delivery is expected; delivering records when it was delivered."""
    if target is OrderStatus.SHIPPED:
        return {"shipped_ms": now_ms, "deliver_by_ms": now_ms + deliver_within_ms}
    if target is OrderStatus.DELIVERED:
        return {"delivered_ms": now_ms}
    return {}
