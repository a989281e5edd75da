"""Refunds and cancellations that move money and stock (decision 0027, section 2).

A refund is granted in one SQL transaction (the refund row, the order's guarded UPDATE, the SKU's
units, the ledger's ``refund:<id>``) before anything outside SQL is touched. A granted refund is
a promise: whoever finds it pending (the request, its retry, the reconciler) finishes it: the
deal takes its units back if it can still sell them, the provider is asked under the refund's
key, and the outcome is written once, guarded by ``status = 'pending'``.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from catalog.deal_status import DealStatus
from catalog.models import Deal, Sku
from checkout import commissions, disputes, leases, ledger, ledger_store, line_refunds
from checkout.error_codes import CheckoutErrorCode
from checkout.faults import NO_CRASH, CrashPoints
from checkout.holds import HoldStore
from checkout.ledger import Account
from checkout.line_refunds import LineMove, Pick, RefundLine
from checkout.models import Order, OrderEvent, OrderLine, Refund
from checkout.orders import OrderStatus
from checkout.payments import PaymentProvider, RefundStatus
from checkout.shelving import Shelving
from kernel.clock import now_ms
from kernel.db import Database
from kernel.errors import Conflict, DomainError, Invalid, NotFound

log = logging.getLogger("livecart.refunds")

S = OrderStatus
# Orders money can still go back to (a cancelled or fully refunded one has nothing left).
REFUNDABLE = frozenset({S.PAID, S.AWAITING_SHIPMENT, S.SHIPPED, S.DELIVERED, S.COMPLETED})
# Closed orders whose refund the provider then failed: the money is still owed, so they take a
# refund of what is left (and keep their status).
CLOSED = frozenset({S.CANCELLED, S.REFUNDED})
CANCELLABLE = frozenset({S.PAID, S.AWAITING_SHIPMENT})  # not shipped yet
# A guarded UPDATE loses only when another refund of the same order committed first, so each
# retry follows someone's progress; this many means something else is wrong.
GRANT_TRIES = 25


class DealRestock(enum.StrEnum):
    """What happens to a refund's units in the flash deal they were sold from."""

    NONE = ""  # nothing for the deal: no units back, or the deal was not live
    DUE = "due"  # the deal was live at the grant: lc_restock still to run
    DEAL = "deal"  # the deal took them back (viewers see the stock)
    OVER = "over"  # the deal could no longer sell: they stayed with the SKU


@dataclass(frozen=True)
class RefundAsk:
    """What a seller (or a rule) asks for. ``amount`` None: everything left to refund."""

    key: str
    actor: str
    amount: int | None = None
    units: int = 0  # back into stock
    reason: str = ""
    # Whose money goes back, when ``amount`` is None: the units named, or the next
    # ``refund_units`` not yet refunded (checkout/line_refunds.py); with an ``amount`` (a
    # buyer's request agreed at its price), ``refund_units`` only counts them as refunded.
    lines: tuple[Pick, ...] = ()
    refund_units: int | None = None
    cancel: bool = False  # also move the order to cancelled, with every unit back
    body_hash: str = ""  # the request's, so another body under the same key is refused


def cancel_key(order_id: int) -> str:
    """One cancel per order, whoever asks: the seller, an approved request, the sweeper."""
    return f"cancel:{order_id}"


def refund_key(order_id: int, idempotency_key: str) -> str:
    return f"refund:{order_id}:{idempotency_key}"


class Refunds:
    def __init__(
        self,
        db: Database,
        holds: HoldStore,
        provider: PaymentProvider,
        keyspace: str,
        crash: CrashPoints = NO_CRASH,
    ) -> None:
        self.db = db
        self.holds = holds
        self.provider = provider
        self.keyspace = keyspace  # the Redis prefix: whose sandbox and deals the refunds touch
        self.crash = crash

    async def refund(self, order_id: int, ask: RefundAsk) -> Refund:
        """Grant (or find) the refund, then finish it as far as the provider lets us now."""
        granted = await self.grant(order_id, ask)
        return await self.finish(granted)

    async def cancel(self, order_id: int, actor: str, reason: str = "") -> Refund:
        ask = RefundAsk(key=cancel_key(order_id), actor=actor, reason=reason, cancel=True)
        return await self.refund(order_id, ask)

    # -- step 1: the grant, one SQL transaction ----------------------------------------------

    async def grant(self, order_id: int, ask: RefundAsk) -> Refund:
        for _ in range(GRANT_TRIES):
            granted = await self._try_grant(order_id, ask)
            if granted is not None:
                return granted
        raise Conflict(
            "The order kept changing while the refund was granted; look again and retry.",
            code=CheckoutErrorCode.ORDER_CHANGED,
        )

    async def _try_grant(self, order_id: int, ask: RefundAsk) -> Refund | None:
        async with self.db.session() as session:
            conn = await session.connection()
            existing = await _by_key(conn, ask.key)
            if existing is not None:
                return _repeat(existing, ask)
            order = await _order(conn, order_id)
            lines = line_refunds.lines_of(order, await _lines(conn, order_id))
            await _refuse_if_disputed(conn, order_id)
            try:
                plan = _plan(order, lines, ask)
            except DomainError:
                # Another caller may have granted this very key since it was looked up (an
                # approval and the rules' pass both cancelling): the order read after that
                # commit refuses, but the asker's answer is that refund.
                existing = await _by_key(conn, ask.key)
                if existing is not None:
                    return _repeat(existing, ask)
                raise
            deal_live = plan.units > 0 and await _deal_is_live(conn, order.deal_id)
            fee_held = -await ledger_store.order_sum(conn, order_id, Account.FEES)
            fee_back = ledger.fee_returned(
                fee_held, order.total, order.fee_bps, order.refunded + plan.amount
            )
            now = now_ms()
            refund_id = await _insert_refund(
                conn,
                self.db.dialect,
                {
                    "key": ask.key,
                    "body_hash": ask.body_hash,
                    "keyspace": self.keyspace,
                    "order_id": order_id,
                    "shop_id": order.shop_id,
                    "amount": plan.amount,
                    "fee_returned": fee_back,
                    "currency": order.currency,
                    "units": plan.units,
                    "shop_account": plan.shop_account.value,
                    "reason": ask.reason,
                    "actor": ask.actor,
                    "status": RefundStatus.PENDING.value,
                    "deal_restock": (DealRestock.DUE if deal_live else DealRestock.NONE).value,
                    "provider_ref": "",
                    "version": 0,
                    "created_ms": now,
                    "updated_ms": now,
                },
            )
            if refund_id is None:  # the same key committed meanwhile: read it next time
                await session.rollback()
                return None
            settled = col(Order.settled_ms)
            moved = await conn.execute(
                update(Order)
                .where(
                    col(Order.id) == order_id,
                    col(Order.status) == order.status,
                    col(Order.refunded) == order.refunded,
                    col(Order.restocked_units) == order.restocked_units,
                    settled.is_(None) if order.settled_ms is None else settled.is_not(None),
                )
                .values(
                    status=plan.status.value,
                    refunded=col(Order.refunded) + plan.amount,
                    restocked_units=col(Order.restocked_units) + plan.units,
                    updated_ms=now,
                )
            )
            if moved.rowcount != 1:  # another refund, a move or the settlement came first
                await session.rollback()
                return None
            txn = ledger.refund_granted(
                refund_id,
                order_id,
                order.shop_id,
                order.currency,
                plan.amount,
                fee_back,
                plan.shop_account,
            )
            await ledger_store.post(conn, txn, now)
            await commissions.follow(
                conn, order_id, commissions.refund_name(order_id, refund_id), now
            )
            if not await _move_lines(conn, lines, plan.moves):
                await session.rollback()  # another refund of the order moved a line first
                return None
            for move in plan.moves:
                if move.restocked:
                    # To the deal's allocation while it sells (a deal's order is one line).
                    back = move.restocked if deal_live else 0
                    await conn.execute(
                        update(Sku)
                        .where(col(Sku.id) == lines[move.index].sku_id)
                        .values(
                            stock=col(Sku.stock) + move.restocked,
                            allocated=col(Sku.allocated) + back,
                        )
                    )
            await conn.execute(
                insert(OrderEvent).values(
                    order_id=order_id,
                    from_status=order.status,
                    to_status=plan.status.value,
                    at_ms=now,
                    actor=ask.actor[:64],
                    note=_note(plan, order.currency, ask.reason),
                )
            )
            await session.commit()
        self.crash.reach("refund.after_grant")
        async with self.db.session() as session:
            row = await _by_key(await session.connection(), ask.key)
        assert row is not None
        return row

    # -- steps 2-4: finish a granted refund ----------------------------------------------------

    async def finish(self, refund: Refund) -> Refund:
        """Take the units back into the deal if due, ask the provider, write the outcome. Safe
        to run again at any point: each step repeats its first answer."""
        if refund.status != RefundStatus.PENDING:
            return refund
        assert refund.id is not None
        async with self.db.session() as session:
            order = await session.get(Order, refund.order_id)
        assert order is not None
        if refund.deal_restock == DealRestock.DUE:
            taken = await self.holds.restock(order.hold_id, refund.units, refund.key)
            self.crash.reach("refund.after_restock")
            await self._record_restock(refund, order.sku_id, taken)
        if order.deal_id is None and refund.units:
            await self._to_waiters(order)
        try:
            answer = await self.provider.refund(
                key=refund.key,
                charge_id=order.payment_ref,
                amount=refund.amount,
                reason=refund.reason,
            )
        except DomainError as refused:  # the provider said no: nothing was given back
            log.warning("refund %s refused by the provider: %s", refund.key, refused)
            await self.apply_outcome(refund.id, RefundStatus.FAILED, "", 0)
        else:
            self.crash.reach("refund.after_provider")
            await self.apply_outcome(refund.id, answer.status, answer.id, answer.version)
        self.crash.reach("refund.after_outcome")
        return await self.get(refund.id)

    async def _to_waiters(self, order: Order) -> None:
        """Units a list-price order gave back went to the SKU's free stock in SQL: for a SKU
        buyers wait for, onto the shelf now, where they are kept for the line (decision 0036).
        Idempotent: filling moves only what is free."""
        assert order.id is not None
        shelving = Shelving(self.holds.shelf)
        async with self.db.session() as session:
            lines = await _lines(await session.connection(), order.id)
            waited = [
                line.sku_id
                for line in lines
                if await self.holds.shelf.waiting_for(order.shop_id, line.sku_id)
            ]
            if waited:
                await shelving.fill(session, waited)

    async def _record_restock(self, refund: Refund, sku_id: int, taken: bool) -> None:
        async with self.db.session() as session:
            conn = await session.connection()
            marked = await conn.execute(
                update(Refund)
                .where(
                    col(Refund.id) == refund.id,
                    col(Refund.deal_restock) == DealRestock.DUE.value,
                )
                .values(deal_restock=(DealRestock.DEAL if taken else DealRestock.OVER).value)
            )
            if marked.rowcount == 1 and not taken:
                # The deal cannot sell them: the allocation given back at the grant goes too.
                await conn.execute(
                    update(Sku)
                    .where(col(Sku.id) == sku_id, col(Sku.allocated) >= refund.units)
                    .values(allocated=col(Sku.allocated) - refund.units)
                )
            await session.commit()

    async def apply_outcome(
        self, refund_id: int, status: RefundStatus, provider_ref: str, version: int
    ) -> bool:
        """Write what the provider decided, once (``write_outcome``), in a transaction of its
        own. True when this call wrote it."""
        async with self.db.session() as session:
            wrote = await write_outcome(
                await session.connection(), refund_id, status, provider_ref, version
            )
            await session.commit()
        return wrote

    # -- reads and the reconciler --------------------------------------------------------------

    async def get(self, refund_id: int) -> Refund:
        async with self.db.session() as session:
            return await _by_id(await session.connection(), refund_id)

    async def of_order(self, order_id: int) -> list[Refund]:
        async with self.db.session() as session:
            conn = await session.connection()
            rows = await conn.execute(
                core_select(Refund).where(col(Refund.order_id) == order_id).order_by(col(Refund.id))
            )
            return [Refund.model_validate(r._mapping) for r in rows.all()]

    async def finish_pending(self, lease_ms: int, now: int, limit: int = 200) -> int:
        """Finish refunds left pending for longer than one lease (their request died, or the
        provider has not decided yet). Each is claimed first (checkout.leases), so nodes do not
        all call the provider for the same one (harmless, but wasteful)."""
        finished = 0
        async for refund in leases.claim_stale(
            self.db, Refund, self.keyspace, lease_ms, now, limit
        ):
            try:
                done = await self.finish(refund)
            except Exception:  # one refund's failure must not starve the others
                log.exception("could not finish refund %s", refund.key)
                continue
            finished += done.status != RefundStatus.PENDING
        return finished


# -- step 4: the outcome, in the caller's transaction -------------------------------------------


async def write_outcome(
    conn: AsyncConnection, refund_id: int, status: RefundStatus, provider_ref: str, version: int
) -> bool:
    """Write what the provider decided into the caller's open transaction, once: guarded by
    ``pending`` (states only move forward) and by the provider object's version (a stale
    webhook changes nothing). A webhook runs it in the transaction that records the event, so
    the two commit together. True when this call wrote the outcome."""
    values: dict[str, Any] = {"updated_ms": now_ms(), "version": version}
    if provider_ref:
        values["provider_ref"] = provider_ref
    if status != RefundStatus.PENDING:
        values["status"] = status.value
    moved = await conn.execute(
        update(Refund)
        .where(
            col(Refund.id) == refund_id,
            col(Refund.status) == RefundStatus.PENDING.value,
            col(Refund.version) <= version,
        )
        .values(**values)
    )
    if moved.rowcount != 1 or status == RefundStatus.PENDING:
        return False
    row = await _by_id(conn, refund_id)
    granted = ledger.refund_granted(
        refund_id,
        row.order_id,
        row.shop_id,
        row.currency,
        row.amount,
        row.fee_returned,
        Account(row.shop_account),
    )
    if status == RefundStatus.SUCCEEDED:
        txn = ledger.refund_succeeded(
            refund_id, row.order_id, row.shop_id, row.currency, row.amount
        )
        await ledger_store.post(conn, txn)
    else:
        await ledger_store.post(conn, ledger.refund_failed(granted))
        await conn.execute(
            update(Order)
            .where(col(Order.id) == row.order_id)
            .values(refunded=col(Order.refunded) - row.amount, updated_ms=now_ms())
        )
        # Nothing was given back after all: the commission given back with it is owed again.
        name = commissions.refund_name(row.order_id, refund_id, "failed")
        await commissions.follow(conn, row.order_id, name, now_ms())
    return True


# -- the grant's parts ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    amount: int
    units: int
    status: OrderStatus
    shop_account: Account
    moves: tuple[LineMove, ...] = ()  # per line: units refunded, units back in stock


def _plan(order: Order, lines: list[RefundLine], ask: RefundAsk) -> _Plan:
    """What the grant will do to ``order``, or the refusal saying why it cannot."""
    status = OrderStatus(order.status)
    left = order.total - order.refunded
    if status not in REFUNDABLE | CLOSED or left <= 0:
        raise Conflict(
            f"An order that is {status} takes no refund.",
            code=CheckoutErrorCode.ORDER_NOT_REFUNDABLE,
            status=str(status),
        )
    if ask.cancel and status not in CANCELLABLE:
        raise Conflict(
            f"An order that is {status} cannot be cancelled; refund it instead.",
            code=CheckoutErrorCode.INVALID_TRANSITION,
            status=str(status),
        )
    if ask.cancel:
        moves = line_refunds.next_units(lines, order.quantity)
    elif ask.lines:
        moves = line_refunds.named(lines, ask.lines)
    elif ask.refund_units is not None:
        moves = line_refunds.next_units(lines, ask.refund_units)
        units_left = sum(m.refunded for m in moves)
        if ask.amount is None and units_left < ask.refund_units:
            raise Invalid(
                f"The order has {units_left} units left to refund.",
                code=CheckoutErrorCode.INVALID_UNITS,
                units=units_left,
            )
    else:
        moves = []
    by_units = bool(ask.lines) or ask.refund_units is not None
    if ask.cancel or (ask.amount is None and not by_units):
        amount = left
    elif ask.amount is not None:
        amount = ask.amount
    else:  # the last units take the shipping paid with them
        shipping = order.shipping_fee - order.shipping_discount
        amount = line_refunds.amount(lines, moves, left, shipping)
    if amount <= 0:
        raise Invalid(
            "A refund is a positive whole number of minor units.",
            code=CheckoutErrorCode.INVALID_AMOUNT,
        )
    if amount > left:
        raise Conflict(
            f"Only {left} can still be refunded.",
            code=CheckoutErrorCode.REFUND_EXCEEDS_PAID,
            refundable=left,
        )
    restockable = order.quantity - order.restocked_units
    units = restockable if ask.cancel else ask.units
    if units < 0 or units > restockable:
        raise Invalid(
            f"At most {restockable} units can go back into stock.",
            code=CheckoutErrorCode.RESTOCK_EXCEEDS_UNITS,
            restockable=restockable,
        )
    moves = line_refunds.restock(lines, moves, units, named=bool(ask.lines))
    if ask.cancel:
        target = S.CANCELLED
    elif status in CLOSED:
        target = status  # the money a failed refund left owed: the order stays what it was
    elif amount == left:
        target = S.REFUNDED
    else:
        target = status  # a partial refund leaves the status
    shop_account = Account.PENDING if order.settled_ms is None else Account.AVAILABLE
    return _Plan(amount, units, target, shop_account, tuple(moves))


async def _refuse_if_disputed(conn: AsyncConnection, order_id: int) -> None:
    """While the buyer's bank holds the money, the provider decides it: no refund. (A dispute
    opening meanwhile changes ``orders.refunded``, so the grant's guarded UPDATE sees it too.)"""
    found = await disputes.open_dispute_of(conn, order_id)
    if found is not None:
        raise Conflict(
            "The buyer disputed this order's charge: it takes no refund until the dispute closes.",
            code=CheckoutErrorCode.ORDER_DISPUTED,
            dispute=found.provider_id,
            amount=found.amount,
        )


def _repeat(existing: Refund, ask: RefundAsk) -> Refund:
    if ask.body_hash and existing.body_hash and ask.body_hash != existing.body_hash:
        raise Invalid(
            "This Idempotency-Key was used for another refund.",
            code=CheckoutErrorCode.IDEMPOTENCY_KEY_REUSED,
        )
    return existing


def _note(plan: _Plan, currency: str, reason: str) -> str:
    what = f"refunded {plan.amount} {currency} (minor units), {plan.units} back in stock"
    return f"{what}: {reason}"[:500] if reason else what


async def _order(conn: AsyncConnection, order_id: int) -> Order:
    row = (await conn.execute(core_select(Order).where(col(Order.id) == order_id))).first()
    if row is None:
        raise NotFound("No such order.", code=CheckoutErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    return Order.model_validate(row._mapping)


async def _lines(conn: AsyncConnection, order_id: int) -> list[OrderLine]:
    rows = await conn.execute(core_select(OrderLine).where(col(OrderLine.order_id) == order_id))
    return [OrderLine.model_validate(row._mapping) for row in rows]


async def _move_lines(
    conn: AsyncConnection, lines: list[RefundLine], moves: tuple[LineMove, ...]
) -> bool:
    """Count each move on its line, guarded by the counts the plan read; False if another
    refund moved one first (a deal's order has no line rows: its order row is the guard)."""
    for move in moves:
        line = lines[move.index]
        if line.id is None:
            continue
        moved = await conn.execute(
            update(OrderLine)
            .where(
                col(OrderLine.id) == line.id,
                col(OrderLine.refunded_units) == line.refunded_units,
                col(OrderLine.restocked) == line.restocked,
            )
            .values(
                refunded_units=col(OrderLine.refunded_units) + move.refunded,
                restocked=col(OrderLine.restocked) + move.restocked,
            )
        )
        if moved.rowcount != 1:
            return False
    return True


async def _deal_is_live(conn: AsyncConnection, deal_id: int | None) -> bool:
    if deal_id is None:  # a shelf order: its units go back to the SKU's free stock
        return False
    status = (
        await conn.execute(core_select(col(Deal.status)).where(col(Deal.id) == deal_id))
    ).scalar_one_or_none()
    return status == DealStatus.LIVE.value


async def _by_key(conn: AsyncConnection, key: str) -> Refund | None:
    row = (await conn.execute(core_select(Refund).where(col(Refund.key) == key))).first()
    return None if row is None else Refund.model_validate(row._mapping)


async def _by_id(conn: AsyncConnection, refund_id: int) -> Refund:
    row = (await conn.execute(core_select(Refund).where(col(Refund.id) == refund_id))).one()
    return Refund.model_validate(row._mapping)


async def _insert_refund(conn: AsyncConnection, dialect: str, values: dict[str, Any]) -> int | None:
    """Insert the row unless its key exists (the unique index makes concurrent grants under
    one key wait for each other): its id, or None for a repeat."""
    statement: Any = postgresql.insert(Refund) if dialect == "postgresql" else sqlite.insert(Refund)
    inserted = await conn.execute(
        statement.values(**values)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(col(Refund.id))
    )
    found = inserted.scalar_one_or_none()
    return None if found is None else int(found)
