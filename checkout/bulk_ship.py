"""Shipping many orders at once: ``POST /api/orders/ship`` and the seller center's CSV upload.

Each shipment is applied on its own, in its own transaction: one guarded transition of one
order, exactly as shipping it alone would be (a paid order is confirmed on the way, both moves
recorded). So a bad row changes nothing, a good row ships whatever the rows around it do, and
each row's answer is its own: shipped, or the refusal shipping that order alone would get.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from checkout import order_store
from checkout.error_codes import CheckoutErrorCode
from checkout.models import Order
from kernel.db import Database
from kernel.errors import DomainError, Invalid

# The most shipments one request takes: a day's orders of a busy shop, and few enough that the
# request ends in seconds.
MAX_SHIPMENTS = 500


@dataclass(frozen=True)
class Shipment:
    """One order to ship. ``problem``: why the row it came from could not be read (a CSV line
    with a field too many, say); it is answered instead of applied."""

    order_id: int | None
    carrier: str = ""
    tracking_number: str = ""
    problem: DomainError | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one shipment: the order, shipped, or the error that refused it."""

    shipment: Shipment
    order: Order | None = None
    error: DomainError | None = None


def check_count(count: int) -> None:
    """Refuse the whole request, before anything is applied, when it has too many rows."""
    if count > MAX_SHIPMENTS:
        raise Invalid(
            f"At most {MAX_SHIPMENTS} shipments at once; this has {count}. Split it up.",
            code=CheckoutErrorCode.TOO_MANY_SHIPMENTS,
            limit=MAX_SHIPMENTS,
            count=count,
        )


async def ship_all(
    db: Database,
    shipments: Sequence[Shipment],
    shop_ids: Sequence[int],
    actor: str,
    deliver_within_ms: int,
) -> list[Outcome]:
    """Ship each of ``shipments`` in the shops ``shop_ids``, in order, each on its own; an
    order named twice ships once (the second row finds it shipped)."""
    check_count(len(shipments))
    outcomes = []
    for shipment in shipments:
        if shipment.problem is not None:
            outcomes.append(Outcome(shipment, error=shipment.problem))
            continue
        assert shipment.order_id is not None  # a row without one has its problem
        try:
            async with db.session() as session:
                order = await order_store.order_for_shops(session, shipment.order_id, shop_ids)
                order = await order_store.transition(
                    session,
                    order,
                    "ship",
                    actor,
                    carrier=shipment.carrier,
                    tracking_number=shipment.tracking_number,
                    deliver_within_ms=deliver_within_ms,
                    confirm_first=True,
                )
        except DomainError as err:
            outcomes.append(Outcome(shipment, error=err))
        else:
            outcomes.append(Outcome(shipment, order=order))
    return outcomes
