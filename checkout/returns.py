"""A buyer's request, before and between its moves (decision 0027, section 4): what a buyer may
ask of an order and when, the reasons they can give, and each move's one source state, kinds and
party. Pure: no I/O; checkout/return_store.py applies it to SQL.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from checkout import line_refunds
from checkout.error_codes import CheckoutErrorCode
from checkout.line_refunds import RefundLine
from checkout.models import Order
from checkout.orders import OrderStatus
from checkout.return_states import RequestKind, ReturnStatus, sources
from kernel.errors import CommonErrorCode, Conflict, Invalid

K = RequestKind
R = ReturnStatus
S = OrderStatus

MAX_NOTE = 1000  # the column's size
MAX_PHOTOS = 5
PHOTO_URL = re.compile(r"^https?://[^\s\x00]{1,2000}$")
MAX_ANSWER = 500  # a seller's reason to reject, or note to an offer
# Before shipping a buyer may ask to cancel; once delivered (and within the window), to be
# refunded, keeping the goods or sending them back.
CANCEL_BEFORE = frozenset({S.PAID, S.AWAITING_SHIPMENT})
RETURN_AFTER = frozenset({S.DELIVERED, S.COMPLETED})
AFTER_DELIVERY = frozenset({K.REFUND_ONLY, K.RETURN})
EVERY_KIND = frozenset(K)
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class ReturnReason(enum.StrEnum):
    """Why the buyer asks: a code, so sellers and figures can group requests by it."""

    DAMAGED = "damaged"
    NOT_AS_DESCRIBED = "not_as_described"
    WRONG_ITEM = "wrong_item"
    CHANGED_MIND = "changed_mind"
    OTHER = "other"


class Party(enum.StrEnum):
    """Who makes a move: the order's buyer, its shop's seller, or a timed rule."""

    BUYER = "buyer"
    SELLER = "seller"
    RULE = "rule"


@dataclass(frozen=True)
class RequestWindows:
    """How long each side has (docs/money.md): the return window after delivery, the seller's
    (and the buyer's, for an offer) time to answer, the time to ship goods back, and the
    seller's time to confirm their receipt."""

    return_window_ms: int = 7 * DAY_MS
    response_ms: int = 48 * HOUR_MS
    ship_back_ms: int = 7 * DAY_MS
    receive_ms: int = 10 * DAY_MS


@dataclass(frozen=True)
class RequestAsk:
    """What a buyer sends. ``units``/``amount`` None: everything the order has left (the
    amount of a partial return: its units at the unit price, at most what is left)."""

    kind: str
    reason: str
    note: str = ""
    photos: tuple[str, ...] = ()
    units: int | None = None
    amount: int | None = None


@dataclass(frozen=True)
class RequestTerms:
    kind: RequestKind
    units: int
    amount: int


@dataclass(frozen=True)
class Move:
    """One move of a request: one guarded UPDATE from ``source`` (one of
    ``return_states.sources(target)``) for requests of ``kinds``, made by ``party``."""

    name: str
    source: ReturnStatus
    target: ReturnStatus
    party: Party
    kinds: frozenset[RequestKind] = EVERY_KIND


APPROVE = Move("approve", R.REQUESTED, R.APPROVED, Party.SELLER)
REJECT = Move("reject", R.REQUESTED, R.REJECTED, Party.SELLER)
# A smaller refund makes no sense for a cancellation: it refunds everything or nothing.
OFFER = Move("offer", R.REQUESTED, R.OFFERED, Party.SELLER, AFTER_DELIVERY)
RECEIVE = Move("receive", R.SHIPPED_BACK, R.RECEIVED, Party.SELLER, frozenset({K.RETURN}))
ACCEPT = Move("accept", R.OFFERED, R.APPROVED, Party.BUYER, AFTER_DELIVERY)
DECLINE = Move("decline", R.OFFERED, R.REQUESTED, Party.BUYER, AFTER_DELIVERY)
WITHDRAW = Move("withdraw", R.REQUESTED, R.WITHDRAWN, Party.BUYER)
SHIP_BACK = Move("ship_back", R.APPROVED, R.SHIPPED_BACK, Party.BUYER, frozenset({K.RETURN}))
# The rules': the provider confirmed the refund (granted on approval, or for a return on
# receipt), and what lapses.
REFUNDED_ON_APPROVAL = Move(
    "refunded", R.APPROVED, R.REFUNDED, Party.RULE, frozenset({K.CANCEL, K.REFUND_ONLY})
)
REFUNDED_ON_RECEIPT = Move("refunded", R.RECEIVED, R.REFUNDED, Party.RULE, frozenset({K.RETURN}))
CLOSE_OFFER = Move("close", R.OFFERED, R.CLOSED, Party.RULE, AFTER_DELIVERY)
CLOSE_UNSHIPPED = Move("close", R.APPROVED, R.CLOSED, Party.RULE, frozenset({K.RETURN}))
# Approved, but the order could no longer take the refund (refunded another way meanwhile).
CLOSE_UNREFUNDABLE = Move(
    "close", R.APPROVED, R.CLOSED, Party.RULE, frozenset({K.CANCEL, K.REFUND_ONLY})
)

MOVES: tuple[Move, ...] = (
    APPROVE,
    REJECT,
    OFFER,
    RECEIVE,
    ACCEPT,
    DECLINE,
    WITHDRAW,
    SHIP_BACK,
    REFUNDED_ON_APPROVAL,
    REFUNDED_ON_RECEIPT,
    CLOSE_OFFER,
    CLOSE_UNSHIPPED,
    CLOSE_UNREFUNDABLE,
)
# The moves a party asks for by name over HTTP and in the pages.
BUYER_MOVES = {m.name: m for m in (ACCEPT, DECLINE, WITHDRAW, SHIP_BACK)}
SELLER_MOVES = {m.name: m for m in (APPROVE, REJECT, OFFER, RECEIVE)}

for _move in MOVES:  # a move the state table does not allow is a bug here, found at import
    assert _move.source in sources(_move.target), _move


def refused(move: Move, status: str, kind: str) -> Conflict:
    """``move`` cannot be made on a request that is ``status``: say what can."""
    allowed = sorted(
        m.name for m in MOVES if m.party == move.party and m.source == status and kind in m.kinds
    )
    return Conflict(
        f"A {kind} request that is {status} cannot be moved by {move.name}.",
        code=CheckoutErrorCode.INVALID_TRANSITION,
        status=status,
        allowed=allowed,
    )


def kinds_open_to(order: Order, now: int, window_ms: int) -> list[RequestKind]:
    """What the buyer of ``order`` may ask for at ``now``."""
    if order.total - order.refunded <= 0:
        return []
    status = OrderStatus(order.status)
    if status in CANCEL_BEFORE:
        return [K.CANCEL]
    delivered = order.delivered_ms
    if status in RETURN_AFTER and delivered is not None and now <= delivered + window_ms:
        return [K.REFUND_ONLY, K.RETURN]
    return []


def check_ask(
    order: Order, lines: Sequence[RefundLine], ask: RequestAsk, now: int, window_ms: int
) -> RequestTerms:
    """The terms a new request on ``order`` (its ``lines`` as ``line_refunds.lines_of`` sees
    them) asks for, or the refusal saying why it cannot be made: its content first (422), then
    the order's state (409). Units asked about are priced as a refund of the next units not
    yet refunded prices them."""
    kind = _kind(ask.kind)
    check_reason(ask.reason)
    check_note(ask.note)
    check_photos(ask.photos)
    status = OrderStatus(order.status)
    left = order.total - order.refunded
    if left <= 0 or status in (S.CANCELLED, S.REFUNDED):
        raise Conflict(
            f"An order that is {status} has nothing left to refund.",
            code=CheckoutErrorCode.ORDER_NOT_REFUNDABLE,
            status=str(status),
        )
    _check_timing(order, kind, now, window_ms)
    units_left = order.quantity - order.restocked_units
    if kind is K.CANCEL:
        # A cancellation refunds everything and restocks every unit: nothing to choose.
        if ask.units not in (None, units_left):
            raise Invalid(
                "A cancellation covers every unit: leave units out.",
                code=CheckoutErrorCode.INVALID_UNITS,
                units=units_left,
            )
        if ask.amount not in (None, left):
            raise Invalid(
                "A cancellation refunds everything left: leave amount out.",
                code=CheckoutErrorCode.INVALID_AMOUNT,
                refundable=left,
            )
        return RequestTerms(kind, units_left, left)
    units = units_left if ask.units is None else ask.units
    if not 1 <= units <= units_left:
        raise Invalid(
            f"Ask about 1 to {units_left} units.",
            code=CheckoutErrorCode.INVALID_UNITS,
            units=units_left,
        )
    if ask.amount is None:
        moves = line_refunds.next_units(lines, units)
        shipping = order.shipping_fee - order.shipping_discount
        amount = line_refunds.amount(lines, moves, left, shipping)
    else:
        amount = ask.amount
    check_amount(amount, left)
    return RequestTerms(kind, units, amount)


def check_amount(amount: int, left: int) -> None:
    if amount <= 0:
        raise Invalid(
            "An amount is a positive whole number of minor units.",
            code=CheckoutErrorCode.INVALID_AMOUNT,
        )
    if amount > left:
        raise Conflict(
            f"Only {left} can still be refunded.",
            code=CheckoutErrorCode.REFUND_EXCEEDS_PAID,
            refundable=left,
        )


def check_offer(amount: int, requested: int) -> None:
    """An offer is a smaller refund than the one asked for."""
    if not 0 < amount < requested:
        raise Invalid(
            f"An offer is more than 0 and less than the {requested} asked for.",
            code=CheckoutErrorCode.INVALID_AMOUNT,
            requested=requested,
        )


def check_reason(reason: str) -> None:
    if reason not in set(ReturnReason):
        raise Invalid(
            "Give one of the reasons.",
            code=CheckoutErrorCode.INVALID_REASON,
            allowed=[r.value for r in ReturnReason],
        )


def check_answer(answer: str) -> str:
    """A rejection's reason: some words, at most ``MAX_ANSWER`` characters."""
    text = answer.strip()
    if not text or len(text) > MAX_ANSWER:
        raise Invalid(
            f"Say why, in 1 to {MAX_ANSWER} characters.", code=CheckoutErrorCode.INVALID_REASON
        )
    return text


def check_note(note: str) -> None:
    if len(note) > MAX_NOTE:
        raise Invalid(
            f"A note is at most {MAX_NOTE} characters.",
            code=CommonErrorCode.INVALID_REQUEST,
            field="note",
        )


def check_photos(photos: tuple[str, ...]) -> None:
    if len(photos) > MAX_PHOTOS or not all(PHOTO_URL.match(p) for p in photos):
        raise Invalid(
            f"Up to {MAX_PHOTOS} photos, each an http(s) address.",
            code=CheckoutErrorCode.INVALID_PHOTOS,
            limit=MAX_PHOTOS,
        )


def check_restock(restock: int, units: int) -> None:
    if not 0 <= restock <= units:
        raise Invalid(
            f"Between 0 and the {units} units returned go back into stock.",
            code=CheckoutErrorCode.RESTOCK_EXCEEDS_UNITS,
            restockable=units,
        )


def _kind(kind: str) -> RequestKind:
    if kind not in set(RequestKind):
        raise Invalid(
            "Ask to cancel, for a refund only, or to return the goods.",
            code=CommonErrorCode.INVALID_REQUEST,
            field="kind",
            allowed=[k.value for k in RequestKind],
        )
    return RequestKind(kind)


def _check_timing(order: Order, kind: RequestKind, now: int, window_ms: int) -> None:
    status = OrderStatus(order.status)
    open_kinds = [k.value for k in kinds_open_to(order, now, window_ms)]
    if kind is K.CANCEL:
        if status not in CANCEL_BEFORE:
            raise Conflict(
                f"An order that is {status} cannot be cancelled any more.",
                code=CheckoutErrorCode.INVALID_TRANSITION,
                status=str(status),
                allowed=open_kinds,
            )
        return
    if status not in RETURN_AFTER or order.delivered_ms is None:
        raise Conflict(
            "A refund or a return can be asked for once the order is delivered.",
            code=CheckoutErrorCode.INVALID_TRANSITION,
            status=str(status),
            allowed=open_kinds,
        )
    closed_ms = order.delivered_ms + window_ms
    if now > closed_ms:
        raise Conflict(
            "The return window of this order has closed.",
            code=CheckoutErrorCode.RETURN_WINDOW_CLOSED,
            closed_ms=closed_ms,
        )
