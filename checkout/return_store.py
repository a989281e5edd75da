"""Buyers' requests in SQL (decision 0027, section 4): made by the order's buyer, answered by its
seller, moved on by timed rules; checkout/returns.py says what each may do.

Each move is one guarded UPDATE from its one source state plus its ``return_events`` row, in one
transaction: of two sellers approving at once, one moves the request and the other is told
``invalid_transition``. Money follows the moves through checkout/refunds.py, under keys that
name the decision, so a repeat or a crash never refunds twice:

- a cancellation or a refund only is refunded once approved (``cancel:<order>``, the key of
  every cancel; ``return:<request>``). The move commits first: the buyer may withdraw until
  then. Should the refund not be granted (the process stopped in between), the rules grant it;
- a return is refunded on receipt (``return:<request>``, restocking what the seller chose),
  granted *before* the move: the only way out of ``shipped_back`` is ``received``, so the
  refund is never wrong, and the restock chosen is durable in the refund row;
- the request becomes ``refunded`` when the provider confirmed its refund, at once or later by
  ``advance_refunded``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, func, insert, literal, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from checkout import line_refunds, order_store, returns
from checkout.error_codes import CheckoutErrorCode
from checkout.models import Order, Refund, ReturnEvent, ReturnRequest
from checkout.orders import OrderStatus
from checkout.payments import RefundStatus
from checkout.refunds import CANCELLABLE, REFUNDABLE, RefundAsk, Refunds
from checkout.return_states import OPEN_REQUESTS, RequestKind, ReturnStatus
from checkout.returns import Move, RequestAsk, RequestWindows
from kernel.clock import now_ms
from kernel.db import Database
from kernel.errors import CommonErrorCode, Conflict, DomainError, Invalid, NotFound

log = logging.getLogger("livecart.returns")

K = RequestKind
R = ReturnStatus
RULES = "sweeper"  # the actor of the timed rules' moves, as for the order sweeper's cancels
RULE_BATCH = 200  # requests one rule moves per pass; the next pass takes the rest


def return_key(request_id: int) -> str:
    """The refund of a request (other than a cancellation, which is the order's cancel)."""
    return f"return:{request_id}"


# -- making one ---------------------------------------------------------------------------------


async def create(
    db: Database,
    hold_id: str,
    buyer_id: str,
    ask: RequestAsk,
    window_ms: int,
    now: int | None = None,
) -> ReturnRequest:
    """The buyer's request on their order (found by its hold id: ``order_not_found`` for
    another buyer's), checked by ``returns.check_ask``; ``return_open`` if one is open."""
    at = now_ms() if now is None else now
    async with db.session() as session:
        order = await order_store.order_for_buyer(session, hold_id, buyer_id)
        lines = line_refunds.lines_of(order, await order_store.line_rows(session, order.id or 0))
    terms = returns.check_ask(order, lines, ask, at, window_ms)
    async with db.session() as session:
        conn = await session.connection()
        # Take the order's row, still as checked (a write that changes nothing): a seller
        # shipping at the same moment either waits for this request, and sees it, or went
        # first, and then the status below no longer matches (order_store.transition).
        held = await conn.execute(
            update(Order)
            .where(
                col(Order.id) == order.id,
                col(Order.status) == order.status,
                col(Order.refunded) == order.refunded,
                col(Order.restocked_units) == order.restocked_units,
            )
            .values(status=col(Order.status))
        )
        if held.rowcount != 1:
            await session.rollback()
            raise Conflict(
                "The order changed while you asked; look again and retry.",
                code=CheckoutErrorCode.ORDER_CHANGED,
            )
        statement: Any = (
            postgresql.insert(ReturnRequest)
            if db.dialect == "postgresql"
            else sqlite.insert(ReturnRequest)
        )
        inserted = await conn.execute(
            statement.values(
                order_id=order.id,
                buyer_id=buyer_id,
                kind=terms.kind.value,
                reason=ask.reason,
                note=ask.note,
                photos=list(ask.photos),
                units=terms.units,
                amount=terms.amount,
                offer_amount=None,
                status=R.REQUESTED.value,
                answer="",
                carrier="",
                tracking_number="",
                created_ms=at,
                updated_ms=at,
            )
            # The partial unique index: one open request per order.
            .on_conflict_do_nothing()
            .returning(col(ReturnRequest.id))
        )
        request_id = inserted.scalar_one_or_none()
        if request_id is None:
            await session.rollback()
            raise Conflict(
                "This order has an open request already: see where it stands.",
                code=CheckoutErrorCode.RETURN_OPEN,
            )
        await _event(conn, int(request_id), None, R.REQUESTED, at, f"buyer:{buyer_id}", "")
        await session.commit()
    return await get(db, int(request_id))


# -- reads --------------------------------------------------------------------------------------


async def get(db: Database, request_id: int) -> ReturnRequest:
    async with db.session() as session:
        found = await _row(await session.connection(), request_id)
    if found is None:
        raise NotFound(
            "No such request.", code=CheckoutErrorCode.REQUEST_NOT_FOUND, request_id=request_id
        )
    return found


async def of_buyer(db: Database, request_id: int, buyer_id: str) -> ReturnRequest:
    """The request, if ``buyer_id`` made it (another buyer's is as missing as none)."""
    found = await _maybe(db, request_id)
    if found is None or found.buyer_id != buyer_id:
        raise NotFound(
            "No such request among yours.",
            code=CheckoutErrorCode.REQUEST_NOT_FOUND,
            request_id=request_id,
        )
    return found


async def of_shops(db: Database, request_id: int, shop_ids: Sequence[int]) -> ReturnRequest:
    """The request, if it is on an order of one of ``shop_ids``."""
    async with db.session() as session:
        conn = await session.connection()
        row = (
            await conn.execute(
                core_select(ReturnRequest)
                .join(Order, col(Order.id) == col(ReturnRequest.order_id))
                .where(col(ReturnRequest.id) == request_id, col(Order.shop_id).in_(shop_ids))
            )
        ).first()
    if row is None:
        raise NotFound(
            "No such request in your shops.",
            code=CheckoutErrorCode.REQUEST_NOT_FOUND,
            request_id=request_id,
        )
    return ReturnRequest.model_validate(row._mapping)


async def of_shops_in(
    db: Database,
    shop_ids: Sequence[int],
    statuses: Sequence[str] = (),
    limit: int = 200,
    *,
    newest_first: bool = False,
) -> list[tuple[ReturnRequest, Order]]:
    """The shops' first ``limit`` requests in any of ``statuses`` (all when empty), each with
    its order: the oldest first (open ones: the most urgent to answer), or the newest."""
    query = (
        core_select(ReturnRequest)
        .join(Order, col(Order.id) == col(ReturnRequest.order_id))
        .where(col(Order.shop_id).in_(shop_ids))
    )
    if statuses:
        query = query.where(col(ReturnRequest.status).in_(statuses))
    async with db.session() as session:
        conn = await session.connection()
        sort = col(ReturnRequest.id).desc() if newest_first else col(ReturnRequest.id)
        rows = (await conn.execute(query.order_by(sort).limit(limit))).all()
        found = [ReturnRequest.model_validate(r._mapping) for r in rows]
        order_rows = await conn.execute(
            core_select(Order).where(col(Order.id).in_({r.order_id for r in found}))
        )
        orders = {o.id: o for o in (Order.model_validate(r._mapping) for r in order_rows.all())}
    return [(r, orders[r.order_id]) for r in found]


async def count_open(db: Database, shop_ids: Sequence[int]) -> int:
    """The shops' open requests: "Returns pending"."""
    query = (
        core_select(func.count())
        .select_from(ReturnRequest)
        .join(Order, col(Order.id) == col(ReturnRequest.order_id))
        .where(
            col(Order.shop_id).in_(shop_ids),
            col(ReturnRequest.status).in_([s.value for s in OPEN_REQUESTS]),
        )
    )
    async with db.session() as session:
        return int((await (await session.connection()).execute(query)).scalar_one())


async def latest_of_orders(db: Database, order_ids: Sequence[int]) -> dict[int, ReturnRequest]:
    """Each order's newest request: its open one when it has one (a request can only be made
    while none is open, so the open one is always the newest)."""
    if not order_ids:
        return {}
    newest = (
        core_select(func.max(col(ReturnRequest.id)))
        .where(col(ReturnRequest.order_id).in_(order_ids))
        .group_by(col(ReturnRequest.order_id))
    )
    async with db.session() as session:
        conn = await session.connection()
        rows = await conn.execute(
            core_select(ReturnRequest).where(col(ReturnRequest.id).in_(newest))
        )
        found = [ReturnRequest.model_validate(r._mapping) for r in rows.all()]
    return {r.order_id: r for r in found}


async def events_of(db: Database, request_id: int) -> list[ReturnEvent]:
    async with db.session() as session:
        conn = await session.connection()
        rows = await conn.execute(
            core_select(ReturnEvent)
            .where(col(ReturnEvent.request_id) == request_id)
            .order_by(col(ReturnEvent.id))
        )
        return [ReturnEvent.model_validate(r._mapping) for r in rows.all()]


async def order_of(db: Database, request: ReturnRequest) -> Order:
    async with db.session() as session:
        order = await session.get(Order, request.order_id)
    assert order is not None
    return order


# -- the seller's moves ----------------------------------------------------------------------------


async def approve(
    db: Database,
    refunds: Refunds,
    request: ReturnRequest,
    actor: str,
    now: int | None = None,
) -> ReturnRequest:
    """Approve: a return waits for the goods; a cancellation or refund only is refunded now.
    A refund the order cannot take is refused before anything moves."""
    _party_may(returns.APPROVE, request)
    if request.kind != K.RETURN:
        await _check_refundable(db, request)
    approved = await move(db, request, returns.APPROVE, actor, now=now)
    if approved.kind == K.RETURN:
        return approved
    return await _refund_approved(db, refunds, approved, actor)


async def reject(
    db: Database, request: ReturnRequest, actor: str, answer: str, now: int | None = None
) -> ReturnRequest:
    text = returns.check_answer(answer)
    return await move(db, request, returns.REJECT, actor, text, now=now, answer=text)


async def offer(
    db: Database,
    request: ReturnRequest,
    actor: str,
    amount: int,
    note: str = "",
    now: int | None = None,
) -> ReturnRequest:
    """Offer a smaller refund than asked; the buyer accepts or declines it."""
    _party_may(returns.OFFER, request)
    returns.check_offer(amount, request.amount)
    if len(note) > returns.MAX_ANSWER:
        raise Invalid(
            f"A note is at most {returns.MAX_ANSWER} characters.",
            code=CommonErrorCode.INVALID_REQUEST,
            field="note",
        )
    return await move(
        db,
        request,
        returns.OFFER,
        actor,
        f"offered {amount}: {note}" if note else f"offered {amount}",
        now=now,
        offer_amount=amount,
        answer=note,
    )


async def receive(
    db: Database,
    refunds: Refunds,
    request: ReturnRequest,
    actor: str,
    restock: int | None = None,
    now: int | None = None,
) -> ReturnRequest:
    """Confirm the goods came back: refund the request, putting ``restock`` units (all those
    returned when None) back into stock. The refund is granted before the move (see the
    module's docstring), and only from ``shipped_back``."""
    units = request.units if restock is None else restock
    returns.check_restock(units, request.units)
    current = await get(db, request.id or 0)
    if current.status != returns.RECEIVE.source or current.kind not in returns.RECEIVE.kinds:
        raise returns.refused(returns.RECEIVE, current.status, current.kind)
    await _check_refundable(db, current)
    refund = await _grant(refunds, current, actor, units)
    received = await move(
        db,
        current,
        returns.RECEIVE,
        actor,
        f"{units} back in stock",
        now=now,
        refund_id=refund.id,
    )
    return await _advance(db, received, refund)


# -- the buyer's moves -------------------------------------------------------------------------


async def accept(
    db: Database, refunds: Refunds, request: ReturnRequest, actor: str, now: int | None = None
) -> ReturnRequest:
    """Take the seller's offer: it becomes the request's amount, approved (a refund only is
    refunded now; a return waits for the goods)."""
    _party_may(returns.ACCEPT, request)
    offered = request.offer_amount
    if offered is None or request.status != R.OFFERED:
        raise returns.refused(returns.ACCEPT, request.status, request.kind)
    if request.kind != K.RETURN:
        await _check_refundable(db, request, offered)
    approved = await move(
        db,
        request,
        returns.ACCEPT,
        actor,
        f"accepted {offered}",
        now=now,
        guard=col(ReturnRequest.offer_amount) == offered,
        amount=offered,
        offer_amount=None,
    )
    if approved.kind == K.RETURN:
        return approved
    return await _refund_approved(db, refunds, approved, actor)


async def decline(
    db: Database, request: ReturnRequest, actor: str, now: int | None = None
) -> ReturnRequest:
    """Turn the offer down: the request is the seller's to answer again."""
    return await move(db, request, returns.DECLINE, actor, now=now, offer_amount=None)


async def withdraw(
    db: Database, request: ReturnRequest, actor: str, now: int | None = None
) -> ReturnRequest:
    return await move(db, request, returns.WITHDRAW, actor, now=now)


async def ship_back(
    db: Database,
    request: ReturnRequest,
    actor: str,
    carrier: str,
    tracking_number: str,
    now: int | None = None,
) -> ReturnRequest:
    missing = [n for n, v in (("carrier", carrier), ("tracking_number", tracking_number)) if not v]
    if missing:
        raise Invalid(
            "Say which carrier has the parcel and its tracking number.",
            code=CheckoutErrorCode.TRACKING_REQUIRED,
            missing=missing,
        )
    return await move(
        db,
        request,
        returns.SHIP_BACK,
        actor,
        f"{carrier} {tracking_number}",
        now=now,
        carrier=carrier,
        tracking_number=tracking_number,
    )


# -- one move -----------------------------------------------------------------------------------


async def move(
    db: Database,
    request: ReturnRequest,
    step: Move,
    actor: str,
    note: str = "",
    *,
    now: int | None = None,
    guard: Any = None,
    **values: Any,
) -> ReturnRequest:
    """One guarded UPDATE from ``step.source`` (and its kinds) with its event row, in one
    transaction: the request as moved, or ``invalid_transition`` with nothing changed."""
    assert request.id is not None
    _party_may(step, request)
    at = now_ms() if now is None else now
    guards = [
        col(ReturnRequest.id) == request.id,
        col(ReturnRequest.status) == step.source.value,
    ]
    if guard is not None:
        guards.append(guard)
    async with db.session() as session:
        conn = await session.connection()
        moved = await conn.execute(
            update(ReturnRequest)
            .where(*guards)
            .values(status=step.target.value, updated_ms=at, **values)
        )
        if moved.rowcount != 1:
            await session.rollback()
            current = await _row(await session.connection(), request.id)
            assert current is not None
            raise returns.refused(step, current.status, current.kind)
        await _event(conn, request.id, step.source, step.target, at, actor, note)
        await session.commit()
    return await get(db, request.id)


def _party_may(step: Move, request: ReturnRequest) -> None:
    """Refuse a move whose kind does not fit the request (an offer on a cancellation)."""
    if request.kind not in step.kinds:
        raise returns.refused(step, request.status, request.kind)


async def _event(
    conn: AsyncConnection,
    request_id: int,
    source: ReturnStatus | None,
    target: ReturnStatus,
    at: int,
    actor: str,
    note: str,
) -> None:
    await conn.execute(
        insert(ReturnEvent).values(
            request_id=request_id,
            from_status=None if source is None else source.value,
            to_status=target.value,
            at_ms=at,
            actor=actor[:64],
            note=note[:500],
        )
    )


# -- money ----------------------------------------------------------------------------------


async def _check_refundable(
    db: Database, request: ReturnRequest, amount: int | None = None
) -> None:
    """Refuse, before anything moves, a refund the order can no longer take (the seller
    refunded it another way meanwhile). A cancelled order takes its cancellation again: the
    cancel key finds the refund already made."""
    order = await order_of(db, request)
    status = OrderStatus(order.status)
    if request.kind == K.CANCEL:
        if status in CANCELLABLE or status is OrderStatus.CANCELLED:
            return
        raise Conflict(
            f"An order that is {status} cannot be cancelled any more.",
            code=CheckoutErrorCode.ORDER_NOT_REFUNDABLE,
            status=str(status),
        )
    if status not in REFUNDABLE:
        raise Conflict(
            f"An order that is {status} takes no refund.",
            code=CheckoutErrorCode.ORDER_NOT_REFUNDABLE,
            status=str(status),
        )
    returns.check_amount(request.amount if amount is None else amount, order.total - order.refunded)


async def _grant(refunds: Refunds, request: ReturnRequest, actor: str, restock: int) -> Refund:
    """The request's refund, granted (or found: its key makes every way of asking one refund)
    and finished as far as the provider lets us now."""
    assert request.id is not None
    reason = f"buyer request {request.id}: {request.reason}"
    if request.kind == K.CANCEL:
        return await refunds.cancel(request.order_id, actor, reason)
    ask = RefundAsk(
        key=return_key(request.id),
        actor=actor,
        amount=request.amount,
        units=restock,
        reason=reason,
        refund_units=request.units,  # counted as refunded, at the price agreed
    )
    return await refunds.refund(request.order_id, ask)


async def _refund_approved(
    db: Database, refunds: Refunds, request: ReturnRequest, actor: str
) -> ReturnRequest:
    """Refund an approved cancellation or refund only. Should the order refuse it (refunded
    another way since the check), the request closes, saying why."""
    try:
        refund = await _grant(refunds, request, actor, 0)
    except DomainError as err:
        log.warning("request %s approved but not refundable: %s", request.id, err.code)
        return await move(
            db, request, returns.CLOSE_UNREFUNDABLE, RULES, err.message, answer=err.message[:500]
        )
    return await _advance(db, request, refund)


async def _advance(db: Database, request: ReturnRequest, refund: Refund) -> ReturnRequest:
    """Record the refund on the request, and move it to ``refunded`` once it succeeded."""
    assert request.id is not None
    async with db.session() as session:
        await session.exec(
            update(ReturnRequest)
            .where(col(ReturnRequest.id) == request.id, col(ReturnRequest.refund_id).is_(None))
            .values(refund_id=refund.id)
        )
        await session.commit()
    if refund.status != RefundStatus.SUCCEEDED:
        return await get(db, request.id)  # pending: advance_refunded moves it later
    step = returns.REFUNDED_ON_RECEIPT if request.kind == K.RETURN else returns.REFUNDED_ON_APPROVAL
    try:
        return await move(db, request, step, RULES, f"refund {refund.id} succeeded")
    except DomainError:  # advance_refunded moved it first
        return await get(db, request.id)


# -- the timed rules --------------------------------------------------------------------------


@dataclass
class RulesReport:
    approved: int = 0
    offers_closed: int = 0
    returns_closed: int = 0
    received: int = 0
    refunds_granted: int = 0  # approved requests left without their refund (a crash) given it
    refunded: int = 0


async def apply_request_rules(
    db: Database, refunds: Refunds, now: int, windows: RequestWindows
) -> RulesReport:
    """What happens when someone does not answer in time (docs/money.md): a request the
    seller leaves unanswered is approved, an offer the buyer leaves unanswered is closed, a
    return not shipped back is closed, one shipped back and not confirmed is received with
    nothing restocked; then approved requests without a refund get it, and requests whose
    refund succeeded become ``refunded``. Each move is the one a person would make, guarded
    as theirs, so a rule racing a person (or another node's rules) moves a request once."""
    report = RulesReport()
    keyspace = refunds.keyspace
    for request in await _lapsed(db, returns.APPROVE, now - windows.response_ms, keyspace):
        try:
            await approve(db, refunds, request, RULES, now)
            report.approved += 1
        except DomainError as err:
            report.approved += await _reject_unrefundable(db, request, err, now)
    for request in await _lapsed(db, returns.CLOSE_OFFER, now - windows.response_ms, keyspace):
        report.offers_closed += await _try(move(db, request, returns.CLOSE_OFFER, RULES, now=now))
    unshipped = await _lapsed(db, returns.CLOSE_UNSHIPPED, now - windows.ship_back_ms, keyspace)
    for request in unshipped:
        note = "not shipped back in time"
        closing = move(db, request, returns.CLOSE_UNSHIPPED, RULES, note, now=now)
        report.returns_closed += await _try(closing)
    for request in await _lapsed(db, returns.RECEIVE, now - windows.receive_ms, keyspace):
        report.received += await _try(receive(db, refunds, request, RULES, 0, now))
    report.refunds_granted = await _grant_missing(db, refunds)
    report.refunded = await advance_refunded(db, keyspace=keyspace)
    return report


async def _try(moving: Any) -> int:
    """1 when the move was made; 0 when a person (or another node) moved the request first, or
    the order refused (logged: the next pass tries again)."""
    try:
        await moving
    except DomainError as err:
        log.info("request rule not applied: %s", err.code)
        return 0
    return 1


async def _reject_unrefundable(
    db: Database, request: ReturnRequest, err: DomainError, now: int
) -> int:
    """An unanswered request whose refund the order can no longer take (refunded another way)
    is answered for the seller, saying why, rather than left open forever (an open request
    holds the order's settlement)."""
    if err.code not in (
        CheckoutErrorCode.ORDER_NOT_REFUNDABLE,
        CheckoutErrorCode.REFUND_EXCEEDS_PAID,
    ):
        log.info("request %s not approved by the rules: %s", request.id, err.code)
        return 0
    answer = f"Not refundable any more: {err.message}"[: returns.MAX_ANSWER]
    await _try(move(db, request, returns.REJECT, RULES, answer, now=now, answer=answer))
    return 0


async def _lapsed(db: Database, step: Move, before_ms: int, keyspace: str) -> list[ReturnRequest]:
    """Requests where ``step`` starts, of its kinds, that have waited since ``before_ms``, on
    ``keyspace``'s orders."""
    async with db.session() as session:
        conn = await session.connection()
        rows = await conn.execute(
            core_select(ReturnRequest)
            .where(
                col(ReturnRequest.status) == step.source.value,
                col(ReturnRequest.kind).in_([k.value for k in step.kinds]),
                col(ReturnRequest.updated_ms) <= before_ms,
                _on_orders_of(keyspace),
            )
            .order_by(col(ReturnRequest.updated_ms))
            .limit(RULE_BATCH)
        )
        return [ReturnRequest.model_validate(r._mapping) for r in rows.all()]


def _on_orders_of(keyspace: str) -> Any:
    return col(ReturnRequest.order_id).in_(
        core_select(col(Order.id)).where(order_store.of_keyspace(keyspace))
    )


async def _grant_missing(db: Database, refunds: Refunds) -> int:
    """Approved cancellations and refunds only whose refund was never granted (the process
    stopped between approving and granting): grant it now. Harmless when the approving call
    is still on its way: it finds the same refund under the key."""
    async with db.session() as session:
        conn = await session.connection()
        rows = await conn.execute(
            core_select(ReturnRequest)
            .where(
                col(ReturnRequest.status) == R.APPROVED.value,
                col(ReturnRequest.kind).in_([K.CANCEL.value, K.REFUND_ONLY.value]),
                col(ReturnRequest.refund_id).is_(None),
                _on_orders_of(refunds.keyspace),
            )
            .order_by(col(ReturnRequest.id))
            .limit(RULE_BATCH)
        )
        waiting = [ReturnRequest.model_validate(r._mapping) for r in rows.all()]
    granted = 0
    for request in waiting:
        try:
            await _refund_approved(db, refunds, request, RULES)
            granted += 1
        except DomainError as err:  # moved meanwhile
            log.info("request %s: refund not granted by the rules: %s", request.id, err.code)
    return granted


async def advance_refunded(
    db: Database, now: int | None = None, keyspace: str | None = None
) -> int:
    """Move to ``refunded`` every request whose refund the provider has confirmed since
    (a pending refund finished by a webhook or the reconciler). Found by the refund's key, so
    a request that lost its ``refund_id`` to a crash is found too: ``refunds.cancel_key`` and
    ``return_key``, in SQL. With ``keyspace``, only refunds of that deployment."""
    scope = [] if keyspace is None else [col(Refund.keyspace) == keyspace]
    waiting = [
        (returns.REFUNDED_ON_APPROVAL, K.CANCEL, "cancel:", col(ReturnRequest.order_id)),
        (returns.REFUNDED_ON_APPROVAL, K.REFUND_ONLY, "return:", col(ReturnRequest.id)),
        (returns.REFUNDED_ON_RECEIPT, K.RETURN, "return:", col(ReturnRequest.id)),
    ]
    found: list[tuple[Move, ReturnRequest, int]] = []
    async with db.session() as session:
        conn = await session.connection()
        for step, kind, prefix, named_by in waiting:
            key = literal(prefix) + cast(named_by, String)
            rows: Any = await conn.execute(
                core_select(ReturnRequest, col(Refund.id).label("succeeded_refund"))
                .join(Refund, col(Refund.key) == key)
                .where(
                    col(ReturnRequest.status) == step.source.value,
                    col(ReturnRequest.kind) == kind.value,
                    col(Refund.status) == RefundStatus.SUCCEEDED.value,
                    *scope,
                )
                .order_by(col(ReturnRequest.id))
                .limit(RULE_BATCH)
            )
            for row in rows.all():
                fields = dict(row._mapping)
                refund_id = int(fields.pop("succeeded_refund"))
                found.append((step, ReturnRequest.model_validate(fields), refund_id))
    moved = 0
    for step, request, refund_id in found:
        note = f"refund {refund_id} succeeded"
        moved += await _try(move(db, request, step, RULES, note, now=now, refund_id=refund_id))
    return moved


# -- rows ---------------------------------------------------------------------------------------


async def _row(conn: AsyncConnection, request_id: int) -> ReturnRequest | None:
    row = (
        await conn.execute(core_select(ReturnRequest).where(col(ReturnRequest.id) == request_id))
    ).first()
    return None if row is None else ReturnRequest.model_validate(row._mapping)


async def _maybe(db: Database, request_id: int) -> ReturnRequest | None:
    async with db.session() as session:
        return await _row(await session.connection(), request_id)
