"""The bodies of the livecart commands that run checkout alone: ``worker``, ``audit`` and
``replay-dead-letters``. web/cli.py parses their options and hands them settings values and,
for the worker, the services it built (layers: web → checkout, never back)."""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import dataclass

from checkout.audit import audit_ledger, settled_audit
from checkout.checkout import Till
from checkout.forgotten_sales import reconcile as reconcile_sales
from checkout.holds import HoldStore
from checkout.idempotency import IdempotencyStore
from checkout.keys import Keyspace
from checkout.order_sweeper import OrderRules, sweep_orders_forever
from checkout.payments import SandboxProvider
from checkout.pipeline import OrderPipeline, replay_dead_letters
from checkout.reconciler import reconcile_forever
from checkout.refunds import Refunds
from checkout.shelf_audit import audit_shelves
from checkout.sweeper import sweep_forever
from kernel.db import Database
from kernel.redis_client import connect


@dataclass(frozen=True)
class Worker:
    """``livecart worker``: the order pipeline, the hold sweeper, the payment reconciler and the
    order rules (refunds left pending, overdue orders) in a process of their own. Its caller
    built the clients, and closes them."""

    pipeline: OrderPipeline
    holds: HoldStore
    db: Database
    till: Till
    idempotency: IdempotencyStore
    refunds: Refunds
    rules: OrderRules
    sweep_interval_ms: int
    lease_ms: int
    reconcile_interval_s: float
    money_interval_s: float

    async def run(self) -> None:
        """Until SIGINT or SIGTERM."""
        await self.holds.install()
        stop = _stop_on_signals()
        print(f"livecart worker {self.pipeline.config.consumer} running", flush=True)
        await asyncio.gather(
            self.pipeline.run(stop),
            sweep_forever(self.holds, self.db, self.sweep_interval_ms, stop),
            reconcile_forever(
                self.till, self.idempotency, self.lease_ms, self.reconcile_interval_s, stop
            ),
            sweep_orders_forever(
                self.refunds, self.lease_ms, self.money_interval_s, stop, self.rules
            ),
        )


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def audit(
    redis_url: str, database_url: str, prefix: str, deal_id: int | None, wait_s: float
) -> bool:
    """``livecart audit``: print the books as JSON: the ledger's and every shop shelf's, and
    with ``deal_id`` the deal's too (its fields at the top, as before the ledger), once the
    pipeline has caught up (or ``wait_s`` has passed); True if they are right."""
    redis = connect(redis_url)
    db = Database(database_url)
    keys = Keyspace(prefix)
    try:
        deal = None if deal_id is None else await settled_audit(redis, db, keys, deal_id, wait_s)
        ledger = await audit_ledger(db, SandboxProvider(redis, keys.sandbox), keys.prefix)
        shelves = await audit_shelves(redis, db, keys, wait_s)
    finally:
        await redis.aclose()
        await db.close()
    ok = ledger.ok and (deal is None or deal.ok) and all(shelf.ok for shelf in shelves)
    books = {
        **(deal.json() if deal else {}),
        "ledger": ledger.json(),
        "shelves": [shelf.json() for shelf in shelves],
        "ok": ok,
    }
    print(json.dumps(books, indent=2))
    return ok


async def reconcile(
    redis_url: str, database_url: str, prefix: str, deal_id: int | None, repair: bool
) -> bool:
    """``livecart reconcile``: print what Redis forgot of the sales SQL knows (and, with
    ``repair``, what was adopted back) as JSON; True if nothing is left for an operator."""
    redis = connect(redis_url)
    db = Database(database_url)
    try:
        found = await reconcile_sales(redis, db, Keyspace(prefix), deal_id=deal_id, repair=repair)
    finally:
        await redis.aclose()
        await db.close()
    print(json.dumps(found.json(), indent=2))
    return found.ok and (repair or not found.findings)


async def replay(redis_url: str, prefix: str, deal_id: int | None) -> None:
    """``livecart replay-dead-letters``: one deal's, or those of every deal in view."""
    redis = connect(redis_url)
    keys = Keyspace(prefix)
    try:
        deal_ids = [deal_id] if deal_id else await HoldStore(redis, keys).live_deal_ids()
        moved = {d: await replay_dead_letters(redis, keys, d) for d in deal_ids}
    finally:
        await redis.aclose()
    lines = [f"deal {d}: {n} entries back on the orders stream" for d, n in moved.items() if n]
    print("\n".join(lines) or "no dead letters")
