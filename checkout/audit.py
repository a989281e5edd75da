"""The books, read from both sides.

``audit_deal``: one flash deal, from Redis (stock counters, holds, the orders stream, refunds'
restocks and the sandbox's charges) and SQL (the orders). A load test ends with this audit; an
operator can run it any time (``livecart audit --deal ID``). Oversold: more units sold (in Redis,
or as SQL orders net of units refunds gave back to the deal) than the deal had. Lost paid orders:
holds that were paid for (sold in Redis, or charged and not refunded) with no SQL order once the
pipeline has caught up. Orders without a sale: SQL orders whose hold Redis does not have as
sold. All three must be 0, the counters must balance, the ``sold`` counter must equal the units
of the sold holds less the units restocked to the deal, and the deal must be in Redis at all (a
wrong id or key prefix finds nothing, which is a failure, not a pass).

``audit_ledger``: the money (decision 0027, section 5), from SQL (ledger entries, orders,
refunds, disputes) and the provider (its charges and refunds): every transaction balances, every
order has its sale, every refund and dispute the transactions its status implies, the orders'
admission guards equal the sums they guard, the in-flight accounts what is in flight, and the
provider agrees with SQL one for one. ``livecart audit`` runs it
with or without ``--deal``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, fields
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import String, and_, case, except_, func, literal, or_, select, union_all
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from catalog.models import AffiliateDeal
from checkout import ledger
from checkout.hold_states import HoldState
from checkout.holds import DealCounters, HoldStore
from checkout.keys import Keyspace, deal_id_of_hold
from checkout.ledger import Account
from checkout.models import AffiliateAttribution, Dispute, LedgerEntry, Order, Refund
from checkout.orders import OrderStatus
from checkout.payments import (
    VOID_KEY_PREFIX,
    ChargeStatus,
    DisputeStatus,
    RefundStatus,
    SandboxProvider,
)
from checkout.pipeline import OrderStream
from checkout.refunds import DealRestock
from kernel.db import Database


@dataclass(frozen=True)
class DealAudit:
    deal_id: int
    in_redis: bool  # the deal's keys are there (else nothing below can be judged)
    quantity: int
    available: int
    held: int
    sold: int  # units, by Redis's counters
    holds: dict[str, int]  # holds by state
    # Entries ever appended to the deal's orders stream: one per sale, plus replayed dead
    # letters. A count kept by Redis, so the trimming of acknowledged entries does not lower it.
    stream_entries_added: int
    pipeline_pending: int  # entries read by a worker and not yet acknowledged
    orders: int  # SQL orders of the deal
    order_units: int
    # Units refunds gave back to the deal (lc_restock answered "deal": sold -> available). Their
    # holds stay sold and their orders stay, so both are counted net of these.
    restocked_units: int
    charged_holds: int  # holds with an approved, unrefunded sandbox charge
    counters_balance: bool  # available + held + sold == quantity
    sold_matches_holds: bool  # the sold counter == the units of the sold holds, less restocks
    oversold: int
    lost_paid_orders: int
    orders_without_sale: int

    @property
    def ok(self) -> bool:
        return (
            self.in_redis
            and self.counters_balance
            and self.sold_matches_holds
            and self.oversold == self.lost_paid_orders == self.orders_without_sale == 0
        )

    def json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


async def _charged_holds(provider: SandboxProvider, deal_id: int) -> set[str]:
    charged = set()
    for charge in await provider.charges():
        hold_id = charge.key.split(":", 1)[0]
        approved = charge.status is ChargeStatus.APPROVED and not charge.refunded
        if approved and deal_id_of_hold(hold_id) == deal_id:
            charged.add(hold_id)
    return charged


async def audit_deal(redis: Redis, db: Database, keys: Keyspace, deal_id: int) -> DealAudit:
    store, stream = HoldStore(redis, keys), OrderStream(redis, keys)
    found = await store.counters(deal_id)
    quantity, available, held, sold = found or DealCounters(0, 0, 0, 0)
    holds = await store.recorded_holds(deal_id)
    states = Counter(hold.state.value for hold in holds)  # plain keys: the audit prints as JSON
    sold_records = [hold for hold in holds if hold.state is HoldState.SOLD]
    sold_holds = {hold.id for hold in sold_records}
    sold_hold_units = sum(hold.qty for hold in sold_records)
    charged = await _charged_holds(SandboxProvider(redis, keys.sandbox), deal_id)
    # What lc_restock answered, by refund key: Redis's own record of the units it took back
    # (SQL may still say "due" after a crash between the two; the counter moved with this).
    answers = await store.restock_answers(deal_id)
    async with db.session() as session:
        conn = await session.connection()
        rows = (
            await conn.execute(
                select(col(Order.hold_id), col(Order.quantity)).where(col(Order.deal_id) == deal_id)
            )
        ).all()
        refunds = (
            await conn.execute(
                select(col(Refund.key), col(Refund.units))
                .join(Order, col(Order.id) == col(Refund.order_id))
                .where(col(Order.deal_id) == deal_id, col(Refund.units) > 0)
            )
        ).all()
    ordered = {hold_id for hold_id, _ in rows}
    order_units = sum(qty for _, qty in rows)
    restocked = sum(units for key, units in refunds if answers.get(key) == DealRestock.DEAL)
    return DealAudit(
        deal_id=deal_id,
        in_redis=found is not None,
        quantity=quantity,
        available=available,
        held=held,
        sold=sold,
        holds=dict(states),
        stream_entries_added=await stream.entries_added(deal_id),
        pipeline_pending=await stream.pending(deal_id),
        orders=len(rows),
        order_units=order_units,
        restocked_units=restocked,
        charged_holds=len(charged),
        counters_balance=available + held + sold == quantity,
        sold_matches_holds=sold == sold_hold_units - restocked,
        # A unit refunded back into the deal may sell again: it counts once, in its new order.
        oversold=max(0, sold - quantity, order_units - restocked - quantity),
        lost_paid_orders=len((sold_holds | charged) - ordered),
        orders_without_sale=len(ordered - sold_holds),
    )


async def settled_audit(
    redis: Redis, db: Database, keys: Keyspace, deal_id: int, wait_s: float
) -> DealAudit:
    """The audit once the pipeline has written every paid entry (or ``wait_s`` has passed):
    an order still in flight is late, not lost."""
    deadline = time.monotonic() + wait_s
    while True:
        found = await audit_deal(redis, db, keys, deal_id)
        # Caught up: nothing read and unacknowledged, and every paid hold has its order. (A
        # count of stream entries would not do: replayed dead letters appear twice.)
        caught_up = found.pipeline_pending == 0 and found.lost_paid_orders == 0
        if caught_up or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.25)


# -- the ledger -----------------------------------------------------------------------------

Finding = dict[str, Any]  # one discrepancy, naming what it concerns: "txn", "order", "refund"…

# The keys refund_whole (checkout.payments) gives back a charge that sold nothing under (a
# lapsed hold's, decision 0017): a payment attempt is their record, not a refunds row.
# LedgerAudit's lists for an operator to look at: they do not fail ``ok``.
NOTICES = frozenset({"failed_refunds", "moved_no_money"})


@dataclass(frozen=True)
class LedgerAudit:
    """What ``audit_ledger`` found. Every list but the last two is a discrepancy and fails
    ``ok``; the last two are for an operator to look at, and are not wrong books."""

    entries: int
    transactions: int
    unbalanced: list[Finding]  # txn, currency, sum: a (txn, currency) not summing to zero
    zero_amounts: list[Finding]  # txn, line
    misnumbered: list[Finding]  # txn, lines, first, last: lines not numbered 0..n-1
    missing_sales: list[Finding]  # order, txn: an order with a total and no sale
    wrong_sales: list[Finding]  # order, txn, expected and found: provider, pending, fees, lines
    sales_without_order: list[Finding]  # txn
    missing_refund_txns: list[Finding]  # refund, txn: implied by the refund's status, absent
    unexpected_refund_txns: list[Finding]  # refund, txn: present, not implied by any refund
    missing_dispute_txns: list[Finding]  # dispute, txn: implied by the dispute's status, absent
    unexpected_dispute_txns: list[Finding]  # dispute, txn: present, not implied by any dispute
    refunded_mismatches: list[Finding]  # order, total, refunded, refunds (non-failed, summed)
    restock_mismatches: list[Finding]  # order, quantity, restocked_units, refund_units
    refunds_in_flight: list[Finding]  # currency, ledger, expected: platform:refunds vs pending
    chargebacks_in_flight: list[Finding]  # currency, ledger, expected: vs open disputes
    refunds_missing_at_provider: list[Finding]  # refund, key, order, amount, status
    provider_refund_mismatches: list[Finding]  # refund, key, amount/status on both sides
    unknown_provider_refunds: list[Finding]  # refund (the provider's id), key, charge, amount
    charge_mismatches: list[Finding]  # charge, key, amount_refunded, expected
    commission_mismatches: list[Finding]  # order, side (owed, paid, waiting), expected, ledger
    # For an operator, not failures. Refunds the provider refused (the order's status and
    # restock stayed: goods and money are separate decisions) ...
    failed_refunds: list[Finding]  # refund, key, order, amount, currency
    # ... and cancelled or refunded orders that did not give the money back: those from before
    # the ledger (migration 0007) moved no money, and the audit never invents their refunds.
    moved_no_money: list[Finding]  # order, status, total, refunded

    @property
    def ok(self) -> bool:
        return not any(
            getattr(self, f.name)
            for f in fields(self)
            if f.name not in NOTICES and isinstance(getattr(self, f.name), list)
        )

    def json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


entry_txn, entry_line, entry_amount = (
    col(LedgerEntry.txn),
    col(LedgerEntry.line),
    col(LedgerEntry.amount),
)
entry_account, entry_currency = col(LedgerEntry.account), col(LedgerEntry.currency)
FAILED, PENDING = RefundStatus.FAILED.value, RefundStatus.PENDING.value


def _name(prefix: str, object_id: Any, step: str = "") -> Any:
    """A deterministic transaction name built in SQL ("sale:" || id, then ":" || step), as the
    postings build it (checkout.ledger.then)."""
    name = literal(prefix) + sql_cast(object_id, String)
    return name + literal(ledger.then("", step)) if step else name


def _id_in(txn: str) -> int | None:
    """The object id in a transaction's name ("refund:12:failed" -> 12)."""
    parts = txn.split(":")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


async def _all(conn: AsyncConnection, query: Any) -> list[Any]:
    return list((await conn.execute(query)).all())


async def _transactions(conn: AsyncConnection) -> dict[str, list[Finding]]:
    """Each transaction on its own: balanced per currency, no zero line, lines 0..n-1."""
    total = func.sum(entry_amount)
    unbalanced = (
        select(entry_txn, entry_currency, total)
        .group_by(entry_txn, entry_currency)
        .having(total != 0)
    )
    lines, first, last = func.count(), func.min(entry_line), func.max(entry_line)
    misnumbered = (
        select(entry_txn, lines, first, last)
        .group_by(entry_txn)
        .having(or_(first != 0, last != lines - 1))
    )
    return {
        "unbalanced": [
            {"txn": t, "currency": c, "sum": int(s)} for t, c, s in await _all(conn, unbalanced)
        ],
        "zero_amounts": [
            {"txn": t, "line": n}
            for t, n in await _all(conn, select(entry_txn, entry_line).where(entry_amount == 0))
        ],
        "misnumbered": [
            {"txn": t, "lines": n, "first": a, "last": b}
            for t, n, a, b in await _all(conn, misnumbered)
        ],
    }


async def _sales(conn: AsyncConnection) -> dict[str, list[Finding]]:
    """One ``sale:<order>`` per order with a total, holding checkout.ledger.sale's lines."""
    sale = _name("sale:", col(Order.id))
    expected = select(sale).where(col(Order.total) > 0)
    posted = select(entry_txn).where(entry_txn.like("sale:%"))
    total, fee_bps = col(Order.total), col(Order.fee_bps)
    # checkout.ledger.fee in SQL: the same integer division, rounded down (amounts are >= 0).
    fee = total * fee_bps // 10_000

    def on(account: Account) -> Any:
        return func.sum(case((entry_account == account.value, entry_amount), else_=0))

    provider, pending, fees = on(Account.PROVIDER), on(Account.PENDING), on(Account.FEES)
    lines = func.count()
    # Lines that belong to another shop, currency, order or account than the sale's.
    stray = func.sum(
        case(
            (
                or_(
                    col(LedgerEntry.shop_id).is_distinct_from(col(Order.shop_id)),
                    col(Order.currency) != entry_currency,
                    col(LedgerEntry.reference) != _name("order:", col(Order.id)),
                    entry_account.not_in(
                        [a.value for a in (Account.PROVIDER, Account.PENDING, Account.FEES)]
                    ),
                ),
                1,
            ),
            else_=0,
        )
    )
    wrong = (
        select(col(Order.id), sale, total, fee, provider, pending, fees, lines, stray)
        .join(LedgerEntry, sale == entry_txn)
        .where(total > 0)
        .group_by(col(Order.id), total, fee_bps)
        .having(
            or_(
                provider != total,
                pending != fee - total,
                fees != -fee,
                lines != case((fee > 0, 4), else_=2),
                stray != 0,
            )
        )
    )
    return {
        "missing_sales": [
            {"order": _id_in(t), "txn": t} for (t,) in await _all(conn, except_(expected, posted))
        ],
        "wrong_sales": [
            {
                "order": order_id,
                "txn": txn,
                "expected": {
                    "provider": g,
                    "pending": int(f) - g,
                    "fees": -int(f),
                    "lines": 4 if f else 2,
                },
                "found": {
                    "provider": int(p),
                    "pending": int(s),
                    "fees": int(c),
                    "lines": int(n),
                    "stray_lines": int(x),
                },
            }
            for order_id, txn, g, f, p, s, c, n, x in await _all(conn, wrong)
        ],
        "sales_without_order": [{"txn": t} for (t,) in await _all(conn, except_(posted, expected))],
    }


async def _refund_txns(conn: AsyncConnection) -> dict[str, list[Finding]]:
    """A refund has ``refund:<id>``, and ``…:succeeded`` or ``…:failed`` once decided: exactly
    the transactions its status implies, no more."""
    rid, status = col(Refund.id), col(Refund.status)
    implied = union_all(
        select(_name("refund:", rid).label("txn")),
        select(_name("refund:", rid, "succeeded")).where(status == RefundStatus.SUCCEEDED.value),
        select(_name("refund:", rid, "failed")).where(status == FAILED),
    ).subquery()
    expected = select(implied.c.txn)
    posted = select(entry_txn).where(entry_txn.like("refund:%"))
    return {
        "missing_refund_txns": [
            {"refund": _id_in(t), "txn": t} for (t,) in await _all(conn, except_(expected, posted))
        ],
        "unexpected_refund_txns": [
            {"refund": _id_in(t), "txn": t} for (t,) in await _all(conn, except_(posted, expected))
        ],
    }


TAKEN = (DisputeStatus.NEEDS_RESPONSE.value, DisputeStatus.LOST.value)  # the bank has it


async def _dispute_txns(conn: AsyncConnection) -> dict[str, list[Finding]]:
    """A dispute has ``dispute:<id>:opened``, and ``…:won`` or ``…:lost`` once closed: exactly
    the transactions its status implies, no more."""
    did, status = col(Dispute.id), col(Dispute.status)
    implied = union_all(
        select(_name("dispute:", did, "opened").label("txn")),
        select(_name("dispute:", did, "won")).where(status == DisputeStatus.WON.value),
        select(_name("dispute:", did, "lost")).where(status == DisputeStatus.LOST.value),
    ).subquery()
    expected = select(implied.c.txn)
    posted = select(entry_txn).where(entry_txn.like("dispute:%"))
    return {
        "missing_dispute_txns": [
            {"dispute": _id_in(t), "txn": t} for (t,) in await _all(conn, except_(expected, posted))
        ],
        "unexpected_dispute_txns": [
            {"dispute": _id_in(t), "txn": t} for (t,) in await _all(conn, except_(posted, expected))
        ],
    }


async def _orders(conn: AsyncConnection) -> dict[str, list[Finding]]:
    """The orders' admission guards against what they guard: ``refunded`` is the sum of the
    order's refunds that did not fail and of its disputes the bank holds or kept (open or lost),
    ``restocked_units`` the units its refunds put back (a failed refund keeps its restock),
    within the order's total and quantity."""
    kept = func.sum(case((col(Refund.status) != FAILED, col(Refund.amount)), else_=0))
    per_order = (
        select(
            col(Refund.order_id).label("order_id"),
            kept.label("kept"),
            func.sum(col(Refund.units)).label("units"),
        )
        .group_by(col(Refund.order_id))
        .subquery()
    )
    taken = func.sum(case((col(Dispute.status).in_(TAKEN), col(Dispute.amount)), else_=0))
    disputed = (
        select(col(Dispute.order_id).label("order_id"), taken.label("taken"))
        .group_by(col(Dispute.order_id))
        .subquery()
    )
    refunds = func.coalesce(per_order.c.kept, 0)
    by_bank = func.coalesce(disputed.c.taken, 0)
    units = func.coalesce(per_order.c.units, 0)
    total, refunded = col(Order.total), col(Order.refunded)
    quantity, restocked = col(Order.quantity), col(Order.restocked_units)
    money_off = or_(refunded != refunds + by_bank, refunded < 0, refunded > total)
    units_off = or_(restocked != units, restocked < 0, restocked > quantity)
    query = (
        select(col(Order.id), total, refunded, refunds, by_bank, quantity, restocked, units)
        .outerjoin(per_order, per_order.c.order_id == col(Order.id))
        .outerjoin(disputed, disputed.c.order_id == col(Order.id))
        .where(or_(money_off, units_off))
    )
    found: dict[str, list[Finding]] = {"refunded_mismatches": [], "restock_mismatches": []}
    for order_id, g, r, summed, bank, q, back, summed_units in await _all(conn, query):
        if r != summed + bank or not 0 <= r <= g:
            found["refunded_mismatches"].append(
                {
                    "order": order_id,
                    "total": g,
                    "refunded": r,
                    "refunds": int(summed),
                    "disputes": int(bank),
                }
            )
        if back != summed_units or not 0 <= back <= q:
            found["restock_mismatches"].append(
                {
                    "order": order_id,
                    "quantity": q,
                    "restocked_units": back,
                    "refund_units": int(summed_units),
                }
            )
    return found


async def _in_flight(conn: AsyncConnection) -> list[Finding]:
    """``platform:refunds`` holds exactly the refunds granted and not yet decided."""
    posted = select(entry_currency, func.sum(entry_amount)).where(
        entry_account == Account.REFUNDS.value
    )
    pending = select(col(Refund.currency), func.sum(col(Refund.amount))).where(
        col(Refund.status) == PENDING
    )
    ledger = {c: int(s) for c, s in await _all(conn, posted.group_by(entry_currency))}
    granted = {c: int(s) for c, s in await _all(conn, pending.group_by(col(Refund.currency)))}
    return [
        {"currency": c, "ledger": ledger.get(c, 0), "expected": -granted.get(c, 0)}
        for c in sorted(ledger.keys() | granted.keys())
        if ledger.get(c, 0) != -granted.get(c, 0)
    ]


async def _chargebacks(conn: AsyncConnection) -> list[Finding]:
    """``platform:chargebacks`` holds exactly the open disputes' amounts."""
    posted = select(entry_currency, func.sum(entry_amount)).where(
        entry_account == Account.CHARGEBACKS.value
    )
    open_ = select(col(Dispute.currency), func.sum(col(Dispute.amount))).where(
        col(Dispute.status) == DisputeStatus.NEEDS_RESPONSE.value
    )
    ledger = {c: int(s) for c, s in await _all(conn, posted.group_by(entry_currency))}
    held = {c: int(s) for c, s in await _all(conn, open_.group_by(col(Dispute.currency)))}
    return [
        {"currency": c, "ledger": ledger.get(c, 0), "expected": held.get(c, 0)}
        for c in sorted(ledger.keys() | held.keys())
        if ledger.get(c, 0) != held.get(c, 0)
    ]


async def _commissions(conn: AsyncConnection) -> list[Finding]:
    """Each order's commission, from every side (decisions 0046, 0054). ``owed``: the selling
    shop's lines in ``platform:commissions`` hold what ``commissions.follow`` would bring them
    to now: for an attributed order nothing before delivery, then its rate on what the buyer
    kept (the base less what was given back), rounded down; for any other order nothing.
    ``paid``: the lines naming the deal's creator's shop hold all of it once the order settled,
    none before. ``waiting``: what the account still holds for the order is the rest. (Three
    sides agreeing leave no line naming another shop.) A finding names the order, the side,
    what it should hold and what the ledger holds."""
    commission_lines = entry_account == Account.COMMISSIONS.value

    def lines_of(shop_id: Any) -> Any:
        return func.sum(case((col(LedgerEntry.shop_id) == shop_id, entry_amount), else_=0))

    per_order = (
        select(
            col(LedgerEntry.reference).label("reference"),
            (-lines_of(col(Order.shop_id))).label("owed"),
            lines_of(col(AffiliateDeal.creator_shop_id)).label("paid"),
            (-func.sum(entry_amount)).label("waiting"),
        )
        .join(Order, col(LedgerEntry.reference) == _name("order:", col(Order.id)))
        .outerjoin(AffiliateDeal, col(AffiliateDeal.deal_id) == col(Order.deal_id))
        .where(commission_lines)
        .group_by(col(LedgerEntry.reference))
        .subquery()
    )
    given_back = case(
        (col(Order.refunded) < col(Order.total), col(Order.refunded)), else_=col(Order.total)
    )
    kept = col(AffiliateAttribution.base) - given_back
    delivered = col(Order.delivered_ms).is_not(None)
    owed = case(
        (and_(delivered, kept > 0), kept * col(AffiliateAttribution.rate_bp) // 10_000), else_=0
    )
    # Paid over at settlement, into a known shop (a deal from before migration 0024 whose
    # room was gone has none, and its commission stays in the pool).
    payable = and_(col(Order.settled_ms).is_not(None), col(AffiliateDeal.creator_shop_id) > 0)
    paid = case((payable, owed), else_=0)
    sides = {
        "owed": (owed, func.coalesce(per_order.c.owed, 0)),
        "paid": (paid, func.coalesce(per_order.c.paid, 0)),
        "waiting": (owed - paid, func.coalesce(per_order.c.waiting, 0)),
    }
    reference = _name("order:", col(AffiliateAttribution.order_id))
    attributed = (
        select(
            col(AffiliateAttribution.order_id),
            *(value for pair in sides.values() for value in pair),
        )
        .join(Order, col(Order.id) == col(AffiliateAttribution.order_id))
        .join(AffiliateDeal, col(AffiliateDeal.deal_id) == col(Order.deal_id))
        .outerjoin(per_order, per_order.c.reference == reference)
        .where(or_(*(should != holds for should, holds in sides.values())))
    )
    any_order = (
        select(col(LedgerEntry.reference), -func.sum(entry_amount))
        .where(commission_lines, col(LedgerEntry.reference).not_in(select(reference)))
        .group_by(col(LedgerEntry.reference))
    )
    found: list[Finding] = []
    for order_id, *values in await _all(conn, attributed):
        for n, side in enumerate(sides):
            should, holds = int(values[2 * n]), int(values[2 * n + 1])
            if should != holds:
                found.append({"order": order_id, "side": side, "expected": should, "ledger": holds})
    found += [
        {"order": _id_in(str(ref)), "side": "owed", "expected": 0, "ledger": int(held)}
        for ref, held in await _all(conn, any_order)
    ]
    return sorted(found, key=lambda f: (f["order"] or 0, f["side"]))


async def _notices(conn: AsyncConnection) -> dict[str, list[Finding]]:
    failed = select(
        col(Refund.id),
        col(Refund.key),
        col(Refund.order_id),
        col(Refund.amount),
        col(Refund.currency),
    ).where(col(Refund.status) == FAILED)
    closed = (OrderStatus.CANCELLED.value, OrderStatus.REFUNDED.value)
    unrefunded = select(
        col(Order.id), col(Order.status), col(Order.total), col(Order.refunded)
    ).where(col(Order.status).in_(closed), col(Order.refunded) != col(Order.total))
    return {
        "failed_refunds": [
            {"refund": i, "key": k, "order": o, "amount": a, "currency": c}
            for i, k, o, a, c in await _all(conn, failed.order_by(col(Refund.id)))
        ],
        "moved_no_money": [
            {"order": i, "status": s, "total": g, "refunded": r}
            for i, s, g, r in await _all(conn, unrefunded.order_by(col(Order.id)))
        ],
    }


async def _provider(
    conn: AsyncConnection, provider: SandboxProvider, keyspace: str
) -> dict[str, list[Finding]]:
    """The provider against SQL: each refund under its key with the same amount (and no
    contradicting outcome), and each charge's ``amount_refunded`` equal to its order's refunds
    that did not fail plus its ``void:`` refunds. Only this keyspace's refunds are matched:
    nodes sharing a database under other prefixes have providers of their own."""
    mine = col(Refund.keyspace) == keyspace
    rows = await _all(
        conn,
        select(
            col(Refund.id),
            col(Refund.key),
            col(Refund.order_id),
            col(Refund.amount),
            col(Refund.status),
        ).where(mine),
    )
    by_charge = select(col(Order.payment_ref), func.sum(col(Refund.amount))).join(
        Order, col(Order.id) == col(Refund.order_id)
    )
    granted = {
        ref: int(s)
        for ref, s in await _all(
            conn,
            by_charge.where(mine, col(Refund.status) != FAILED).group_by(col(Order.payment_ref)),
        )
    }
    at_provider = {r.key: r for r in await provider.refunds()}
    found: dict[str, list[Finding]] = defaultdict(list)
    for refund_id, key, order_id, amount, status in rows:
        theirs = at_provider.get(key)
        if theirs is None:
            if status != FAILED:  # a refused refund leaves nothing at the provider
                found["refunds_missing_at_provider"].append(
                    {
                        "refund": refund_id,
                        "key": key,
                        "order": order_id,
                        "amount": amount,
                        "status": status,
                    }
                )
            continue
        # A pending row may lag the provider's outcome (its webhook is on the way); a decided one
        # must agree with it.
        contradicts = status != PENDING and status != theirs.status.value
        if theirs.amount != amount or contradicts:
            found["provider_refund_mismatches"].append(
                {
                    "refund": refund_id,
                    "key": key,
                    "amount": amount,
                    "provider_amount": theirs.amount,
                    "status": status,
                    "provider_status": theirs.status.value,
                }
            )
    known = {key for _, key, *_ in rows}
    voided: dict[str, int] = defaultdict(int)
    for r in at_provider.values():
        if r.key.startswith(VOID_KEY_PREFIX):
            if r.status is not RefundStatus.FAILED:
                voided[r.charge] += r.amount
        elif r.key not in known:
            found["unknown_provider_refunds"].append(
                {"refund": r.id, "key": r.key, "charge": r.charge, "amount": r.amount}
            )
    for charge in await provider.charges():
        expected = granted.get(charge.id, 0) + voided.get(charge.id, 0)
        if charge.amount_refunded != expected:
            found["charge_mismatches"].append(
                {
                    "charge": charge.id,
                    "key": charge.key,
                    "amount_refunded": charge.amount_refunded,
                    "expected": expected,
                }
            )
    return found


async def audit_ledger(db: Database, provider: SandboxProvider, keyspace: str) -> LedgerAudit:
    """Check the ledger and the money records around it (decision 0027, section 5).
    ``keyspace``: the Redis prefix whose provider ``provider`` is (its refunds rows are matched
    against it). Every query is one pass over a table (GROUP BY, EXCEPT), never one per order."""
    async with db.session() as session:
        conn = await session.connection()
        counts = select(func.count(), func.count(func.distinct(entry_txn)))
        entries, transactions = (await conn.execute(counts)).one()
        found: dict[str, Any] = {
            **await _transactions(conn),
            **await _sales(conn),
            **await _refund_txns(conn),
            **await _dispute_txns(conn),
            **await _orders(conn),
            "refunds_in_flight": await _in_flight(conn),
            "chargebacks_in_flight": await _chargebacks(conn),
            "commission_mismatches": await _commissions(conn),
            **await _notices(conn),
        }
        at_provider = await _provider(conn, provider, keyspace)
    names = [f.name for f in fields(LedgerAudit) if f.name not in ("entries", "transactions")]
    return LedgerAudit(
        entries=int(entries),
        transactions=int(transactions),
        **{name: found.get(name, at_provider.get(name, [])) for name in names},
    )
