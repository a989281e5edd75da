"""Withdrawals (decision 0027, section 3): a seller takes a currency's whole available balance,
less what open disputes of its settled orders hold back, to the payout method recorded on the
shop, once a day per shop and currency (a UTC day; a failed payout does not use the day up).

Like a refund, a payout is written before the provider is called: the row and the ledger's
``payout:<id>`` (available -> paid out) commit together, then the provider is asked under the
row's key, and the outcome (``payout:<id>:paid``, or ``:failed`` giving the money back to
available) is written once, guarded by ``status = 'pending'``. Whoever finds a payout pending
asks again under the same key, so a crash never pays twice.
"""

from __future__ import annotations

import datetime
import logging
import secrets

from sqlalchemy import func, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from catalog.error_codes import CatalogErrorCode
from catalog.models import Shop
from checkout import disputes, leases, ledger, ledger_store
from checkout.error_codes import CheckoutErrorCode
from checkout.faults import NO_CRASH, CrashPoints
from checkout.ledger import Account
from checkout.models import LedgerEntry, Payout
from checkout.payments import PaymentProvider, PayoutStatus
from kernel.clock import now_ms
from kernel.db import Database
from kernel.errors import Conflict, DomainError, NotFound

log = logging.getLogger("livecart.payouts")


def utc_day(at_ms: int) -> str:
    return datetime.datetime.fromtimestamp(at_ms / 1000, datetime.UTC).date().isoformat()


class Payouts:
    def __init__(
        self,
        db: Database,
        provider: PaymentProvider,
        keyspace: str,
        crash: CrashPoints = NO_CRASH,
    ) -> None:
        self.db = db
        self.provider = provider
        self.keyspace = keyspace
        self.crash = crash

    async def withdraw(
        self, shop_id: int, currency: str, actor: str, now: int | None = None
    ) -> Payout:
        """Withdraw the whole available balance of ``currency``: the payout as it stands after
        the provider's answer (``pending`` if it has not decided yet)."""
        payout = await self._request(shop_id, currency, actor, now_ms() if now is None else now)
        self.crash.reach("payout.after_request")
        return await self.finish(payout)

    async def _request(self, shop_id: int, currency: str, actor: str, now: int) -> Payout:
        async with self.db.session() as session:
            conn = await session.connection()
            shop = await session.get(Shop, shop_id)
            if shop is None:
                raise NotFound("No such shop.", code=CatalogErrorCode.SHOP_NOT_FOUND)
            if not shop.payout_method:
                raise Conflict(
                    "Add a payout method to the shop before withdrawing.",
                    code=CheckoutErrorCode.NO_PAYOUT_METHOD,
                )
            balance = -int(
                (
                    await conn.execute(
                        core_select(func.coalesce(func.sum(col(LedgerEntry.amount)), 0)).where(
                            col(LedgerEntry.shop_id) == shop_id,
                            col(LedgerEntry.account) == Account.AVAILABLE.value,
                            col(LedgerEntry.currency) == currency,
                        )
                    )
                ).scalar_one()
            )
            # The bank holds a disputed amount until the dispute closes; lost, the shop bears it.
            held = await disputes.held_back(conn, shop_id, currency)
            amount = balance - held
            if amount <= 0:
                raise Conflict(
                    "There is nothing available to withdraw.",
                    code=CheckoutErrorCode.NOTHING_TO_WITHDRAW,
                    available=balance,
                    disputed=held,
                )
            payout = Payout(
                key=f"payout:{shop_id}:{secrets.token_hex(8)}",
                keyspace=self.keyspace,
                shop_id=shop_id,
                amount=amount,
                currency=currency,
                utc_day=utc_day(now),
                destination=shop.payout_method,
                actor=actor[:64],
                status=PayoutStatus.PENDING.value,
                created_ms=now,
                updated_ms=now,
            )
            session.add(payout)
            try:
                await session.flush()
                assert payout.id is not None
                txn = ledger.withdrawal(payout.id, shop_id, currency, amount)
                await ledger_store.post(conn, txn, now)
                await session.commit()
            except IntegrityError:
                # The partial unique index: another withdrawal of this shop and currency today
                # committed first (or is committing: the index waits for it).
                await session.rollback()
                raise Conflict(
                    "One withdrawal a day: this shop has withdrawn in this currency today.",
                    code=CheckoutErrorCode.PAYOUT_LIMIT,
                ) from None
            await session.refresh(payout)
            return payout

    async def finish(self, payout: Payout) -> Payout:
        if payout.status != PayoutStatus.PENDING:
            return payout
        assert payout.id is not None
        try:
            answer = await self.provider.payout(
                key=payout.key,
                destination=payout.destination,
                amount=payout.amount,
                currency=payout.currency,
            )
        except DomainError as refused:
            log.warning("payout %s refused by the provider: %s", payout.key, refused)
            await self.apply_outcome(payout.id, PayoutStatus.FAILED, "", 0)
        else:
            self.crash.reach("payout.after_provider")
            await self.apply_outcome(payout.id, answer.status, answer.id, answer.version)
        return await self.get(payout.id)

    async def apply_outcome(
        self, payout_id: int, status: PayoutStatus, provider_ref: str, version: int
    ) -> bool:
        """Write the provider's decision once (guarded by ``pending`` and the version)."""
        async with self.db.session() as session:
            conn = await session.connection()
            values: dict[str, object] = {"updated_ms": now_ms(), "version": version}
            if provider_ref:
                values["provider_ref"] = provider_ref
            if status != PayoutStatus.PENDING:
                values["status"] = status.value
            moved = await conn.execute(
                update(Payout)
                .where(
                    col(Payout.id) == payout_id,
                    col(Payout.status) == PayoutStatus.PENDING.value,
                    col(Payout.version) <= version,
                )
                .values(**values)
            )
            if moved.rowcount == 1 and status != PayoutStatus.PENDING:
                payout = await session.get(Payout, payout_id)
                assert payout is not None
                recipe = ledger.payout_paid if status == PayoutStatus.PAID else ledger.payout_failed
                txn = recipe(payout_id, payout.shop_id, payout.currency, payout.amount)
                await ledger_store.post(conn, txn)
            await session.commit()
        return moved.rowcount == 1

    async def get(self, payout_id: int) -> Payout:
        async with self.db.session() as session:
            payout = await session.get(Payout, payout_id)
            assert payout is not None
            return payout

    async def of_shop(self, shop_id: int, limit: int = 100) -> list[Payout]:
        async with self.db.session() as session:
            found = await session.exec(
                select(Payout)
                .where(col(Payout.shop_id) == shop_id)
                .order_by(col(Payout.id).desc())
                .limit(limit)
            )
            return list(found.all())

    async def finish_pending(self, lease_ms: int, now: int, limit: int = 100) -> int:
        """Finish payouts left pending longer than one lease (their request died)."""
        finished = 0
        async for payout in leases.claim_stale(
            self.db, Payout, self.keyspace, lease_ms, now, limit
        ):
            try:
                done = await self.finish(payout)
            except Exception:  # one payout's failure must not starve the others
                log.exception("could not finish payout %s", payout.key)
                continue
            finished += done.status != PayoutStatus.PENDING
        return finished
