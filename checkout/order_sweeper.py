"""The order rules that run on a timer (decision 0027): finish refunds, payouts and shelf moves
(decision 0028) left pending, cancel (with a full refund) orders still unshipped at their hard
ship limit, answer buyers' requests nobody answered in time, settle delivered orders, and pull
the payment provider's events a lost webhook did not bring. Each rule of time takes ``now``, so
tests move time instead of waiting. Runs in ``serve`` and ``worker``, once at start-up and every
``LIVECART_MONEY_INTERVAL_S``; every step is idempotent, so several nodes may run it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sqlalchemy import select as core_select
from sqlmodel import col

from checkout import order_store, webhooks
from checkout.models import Order
from checkout.orders import OrderStatus
from checkout.payouts import Payouts
from checkout.refunds import Refunds
from checkout.return_store import RulesReport, apply_request_rules
from checkout.returns import RequestWindows
from checkout.settlement import settle_due
from checkout.shelving import Shelving
from kernel.clock import now_ms
from kernel.errors import DomainError

log = logging.getLogger("livecart.orders")

UNSHIPPED = (OrderStatus.PAID.value, OrderStatus.AWAITING_SHIPMENT.value)


@dataclass
class SweepReport:
    refunds_finished: int = 0
    cancelled: int = 0
    events: int = 0  # the provider's events applied that no webhook had delivered
    settled: int = 0
    requests: RulesReport | None = None
    payouts_finished: int = 0
    shelf_moves: int = 0  # moves between SQL and a shelf whose request died half-way
    shelf_terms: int = 0  # SKUs whose price or sale state on a shelf was not SQL's


async def cancel_overdue(refunds: Refunds, now: int, limit: int = 200) -> int:
    """Cancel and refund every order unshipped past its ``ship_limit_ms``."""
    async with refunds.db.session() as session:
        conn = await session.connection()
        rows = await conn.execute(
            core_select(col(Order.id))
            .where(
                col(Order.status).in_(UNSHIPPED),
                col(Order.ship_limit_ms).is_not(None),
                col(Order.ship_limit_ms) <= now,
                order_store.of_keyspace(refunds.keyspace),
            )
            .order_by(col(Order.ship_limit_ms))
            .limit(limit)
        )
        overdue = [order_id for order_id in rows.scalars().all() if order_id is not None]
    cancelled = 0
    for order_id in overdue:
        try:
            await refunds.cancel(order_id, actor="sweeper", reason="not shipped in time")
            cancelled += 1
        except DomainError as err:  # shipped or refunded meanwhile: nothing to do
            log.info("order %s not cancelled: %s", order_id, err.code)
    return cancelled


@dataclass(frozen=True)
class OrderRules:
    """What a pass needs besides the refunds: payouts to finish, and when delivered orders
    settle (None: not in this pass; the tests of one rule leave the others out)."""

    payouts: Payouts | None = None
    settle_after_ms: int | None = None
    requests: RequestWindows | None = None  # buyers' requests left unanswered


async def sweep_orders_once(
    refunds: Refunds, lease_ms: int, now: int | None = None, rules: OrderRules = OrderRules()
) -> SweepReport:
    at = now_ms() if now is None else now
    report = SweepReport()
    report.refunds_finished = await refunds.finish_pending(lease_ms, at)
    async with refunds.db.session() as session:
        shelving = Shelving(refunds.holds.shelf)
        report.shelf_moves = await shelving.finish_pending(session, lease_ms, at)
        report.shelf_terms = await shelving.resync(session)
    report.cancelled = await cancel_overdue(refunds, at)
    if rules.requests is not None:
        report.requests = await apply_request_rules(refunds.db, refunds, at, rules.requests)
    if rules.settle_after_ms is not None:
        report.settled = await settle_due(
            refunds.db, at, rules.settle_after_ms, keyspace=refunds.keyspace
        )
    if rules.payouts is not None:
        report.payouts_finished = await rules.payouts.finish_pending(lease_ms, at)
    # Last: the rules above do not wait on the provider's event list being readable.
    report.events = await webhooks.pull_events(refunds.db, refunds, refunds.provider)
    return report


async def sweep_orders_forever(
    refunds: Refunds,
    lease_ms: int,
    interval_s: float,
    stop: asyncio.Event,
    rules: OrderRules = OrderRules(),
) -> None:
    while not stop.is_set():
        try:
            await sweep_orders_once(refunds, lease_ms, rules=rules)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the order rules failed; will retry")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
