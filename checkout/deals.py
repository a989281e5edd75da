"""A deal's lifecycle across both stores: SQL holds the record and the SKU allocation, Redis
holds the live stock. Each step is safe to repeat, so a step that failed half-way (Redis or the
database unreachable) is completed by asking again."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import service
from catalog.errors import Conflict
from catalog.models import Deal
from checkout.holds import DealState, HoldStore


async def start(
    session: AsyncSession, holds: HoldStore, deal: Deal, *, hold_ttl_ms: int, pay_ttl_ms: int
) -> Deal:
    """Allocate the units and go live in SQL, then load the stock into Redis.

    A live deal may be started again: that only (re)loads Redis, which keeps the first load.
    """
    if deal.status == "scheduled":
        deal = await service.start_deal(session, deal)
    elif deal.status != "live":
        raise Conflict("The deal is over.", code="deal_not_scheduled", deal_id=deal.id)
    await holds.load_deal(deal, hold_ttl_ms=hold_ttl_ms, pay_ttl_ms=pay_ttl_ms)
    return deal


async def stop(session: AsyncSession, holds: HoldStore, deal: Deal) -> Deal:
    """Close the deal in Redis (idempotent), then mark it ended in SQL."""
    if deal.status == "scheduled":
        raise Conflict("The deal was never started.", code="deal_not_live", deal_id=deal.id)
    assert deal.id is not None
    await holds.stop_deal(deal.id)
    if deal.status == "live":
        deal = await service.move_deal(session, deal, "live", "ended")
    return deal


async def settle_if_over(session: AsyncSession, deal_id: int, state: DealState) -> bool:
    """Once a deal can sell nothing more (its window is over or it was stopped, and no hold is
    held or paying), give its unsold units back to the SKU. ``state`` is a fresh snapshot.
    Returns whether this call settled it."""
    if state.phase != "ended" or state.held > 0:
        return False
    deal = await session.get(Deal, deal_id)
    if deal is None or deal.status not in ("live", "ended"):
        return False
    return await service.settle_deal(session, deal, state.sold)
