"""Which units of an order a refund covers, and what they are worth (decision 0028).

An order's units are its lines laid end to end (a deal's order is one line). Each line counts
the units whose money went back and the units back in stock. A refund either names lines
(``Pick``: so many units of a SKU) or takes the next units not yet refunded, in line order;
its amount is each unit's share of its line's total after discounts (``pricing.unit_share``),
so refunding every unit of a line gives back exactly what the line cost. Pure: the grant reads
the lines and writes the moves in its one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from checkout import pricing
from checkout.error_codes import CheckoutErrorCode
from checkout.models import Order, OrderLine
from kernel.errors import Invalid


@dataclass(frozen=True)
class RefundLine:
    """An order line as a refund sees it. ``id`` None: a deal's order, its own one line."""

    id: int | None
    sku_id: int
    quantity: int
    total: int  # what its units cost after every discount
    refunded_units: int
    restocked: int


@dataclass(frozen=True)
class Pick:
    """Units of one SKU of the order that a refund names."""

    sku_id: int
    units: int


@dataclass(frozen=True)
class LineMove:
    """What a refund does to one line: units whose money goes back, units back in stock."""

    index: int
    refunded: int = 0
    restocked: int = 0


def lines_of(order: Order, rows: Sequence[OrderLine]) -> list[RefundLine]:
    """The refund's view of ``order`` and its line rows (none for a deal's order)."""
    if not rows:
        # A deal's order keeps no per-unit money count: its units all cost the same, so which
        # ones are refunded does not change what they are worth.
        return [
            RefundLine(
                None,
                order.sku_id,
                order.quantity,
                order.quantity * order.unit_price,
                0,
                order.restocked_units,
            )
        ]
    return [
        RefundLine(
            row.id,
            row.sku_id,
            row.quantity,
            row.quantity * row.unit_price - row.discount,
            row.refunded_units,
            row.restocked,
        )
        for row in sorted(rows, key=lambda r: r.line)
    ]


def next_units(lines: Sequence[RefundLine], units: int) -> list[LineMove]:
    """The next ``units`` units whose money has not gone back, in line order (fewer if fewer
    are left: a buyer's request agreed earlier is honoured for what is left of it)."""
    moves = []
    for i, line in enumerate(lines):
        take = min(units, line.quantity - line.refunded_units)
        if take > 0:
            moves.append(LineMove(i, refunded=take))
            units -= take
    return moves


def named(lines: Sequence[RefundLine], picks: Sequence[Pick]) -> list[LineMove]:
    """The moves for the units ``picks`` name, or the refusal saying which line cannot take
    them (a SKU not in the order, or more units than it has left to refund)."""
    index = {line.sku_id: i for i, line in enumerate(lines)}
    wanted: dict[int, int] = {}
    for pick in picks:
        if pick.sku_id not in index:
            raise Invalid(
                f"SKU {pick.sku_id} is not in this order.",
                code=CheckoutErrorCode.INVALID_UNITS,
                sku_id=pick.sku_id,
                lines=_left(lines),
            )
        wanted[pick.sku_id] = wanted.get(pick.sku_id, 0) + pick.units
    moves = []
    for sku_id, units in wanted.items():
        line = lines[index[sku_id]]
        if not 1 <= units <= line.quantity - line.refunded_units:
            raise Invalid(
                f"SKU {sku_id} has {line.quantity - line.refunded_units} units left to refund.",
                code=CheckoutErrorCode.INVALID_UNITS,
                sku_id=sku_id,
                lines=_left(lines),
            )
        moves.append(LineMove(index[sku_id], refunded=units))
    return moves


def worth(lines: Sequence[RefundLine], moves: Sequence[LineMove]) -> int:
    """What the moves' refunded units cost the buyer, each its share of its line."""
    return sum(
        pricing.unit_share(
            lines[m.index].total, lines[m.index].quantity, lines[m.index].refunded_units, m.refunded
        )
        for m in moves
    )


def all_refunded(lines: Sequence[RefundLine], moves: Sequence[LineMove]) -> bool:
    """Whether ``moves`` refund some units and leave every unit of every line with its money
    back (only a shelf order counts units; a deal's order never says so)."""
    if lines[0].id is None or not any(m.refunded for m in moves):
        return False
    done = {m.index: m.refunded for m in moves}
    return all(
        line.refunded_units + done.get(i, 0) >= line.quantity for i, line in enumerate(lines)
    )


def amount(lines: Sequence[RefundLine], moves: Sequence[LineMove], left: int, shipping: int) -> int:
    """What refunding ``moves`` gives back: their worth, and with the order's last units its
    ``shipping`` (what the buyer paid for it) too, never more than the ``left`` to refund."""
    worth_of = worth(lines, moves)
    if all_refunded(lines, moves):
        worth_of += shipping
    return min(left, worth_of)


def restock(
    lines: Sequence[RefundLine], moves: Sequence[LineMove], units: int, named: bool
) -> list[LineMove]:
    """``moves`` with ``units`` units back in stock. A refund that named its lines restocks
    from them, in the order named, each at most the units it refunds; one that did not takes
    the units not yet back in line order. The caller has checked ``units`` against the
    order's units not yet back."""
    back: dict[int, int] = {}
    room = [line.quantity - line.restocked for line in lines]
    order = [(m.index, min(m.refunded, room[m.index])) for m in moves] if named else []
    order = order or [(i, room[i]) for i in range(len(lines))]
    for i, cap in order:
        take = min(units, cap)
        if take > 0:
            back[i] = take
            units -= take
    if units > 0:
        raise Invalid(
            "Restock at most the units the refund names that are not back in stock yet.",
            code=CheckoutErrorCode.RESTOCK_EXCEEDS_UNITS,
            restockable=sum(back.values()),
        )
    refunded = {m.index: m.refunded for m in moves}
    return [
        LineMove(i, refunded=refunded.get(i, 0), restocked=back.get(i, 0))
        for i in sorted(set(refunded) | set(back))
    ]


def _left(lines: Sequence[RefundLine]) -> list[dict[str, int]]:
    return [{"sku_id": line.sku_id, "units": line.quantity - line.refunded_units} for line in lines]
