"""A deal's lifecycle across both stores: SQL holds the record and the SKU allocation, Redis
holds the live stock. Each step is safe to repeat, so a step that failed half-way (Redis or the
database unreachable) is completed by asking again. ``deal_json`` is the one view of a deal
read from both."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import service
from catalog.deal_status import DealStatus, refused, sources
from catalog.models import Deal
from checkout.deal_phase import phase_unloaded
from checkout.holds import DealState, HoldStore
from checkout.shelving import Shelving


async def start(
    session: AsyncSession, holds: HoldStore, deal: Deal, *, hold_ttl_ms: int, pay_ttl_ms: int
) -> Deal:
    """Allocate the units and go live in SQL, then load the stock into Redis.

    A live deal may be started again: that only (re)loads Redis, which keeps the first load.
    """
    if deal.status == DealStatus.SCHEDULED:
        # Units on the shop's shelf come back first when the free ones are too few (a refusal
        # leaves them there, and start_deal refuses for want of units).
        await Shelving(holds.shelf).free(session, deal.sku_id, deal.quantity, f"deal{deal.id}")
        deal = await service.start_deal(session, deal)
    elif deal.status != DealStatus.LIVE:
        raise refused(deal.id, DealStatus.LIVE, "The deal is over.")
    await holds.load_deal(deal, hold_ttl_ms=hold_ttl_ms, pay_ttl_ms=pay_ttl_ms)
    return deal


async def stop(session: AsyncSession, holds: HoldStore, deal: Deal) -> Deal:
    """Close the deal in Redis (idempotent), then mark it ended in SQL."""
    if deal.status == DealStatus.SCHEDULED:
        raise refused(deal.id, DealStatus.ENDED, "The deal was never started.")
    assert deal.id is not None
    await holds.stop_deal(deal.id)
    if deal.status == DealStatus.LIVE:
        deal = await service.end_deal(session, deal)
    return deal


async def settle_if_over(session: AsyncSession, deal_id: int, state: DealState) -> bool:
    """Once a deal can sell nothing more (its window is over or it was stopped, and no hold is
    held or paying), give its unsold units back to the SKU. ``state`` is a fresh snapshot.
    Returns whether this call settled it."""
    if not state.over:
        return False
    deal = await session.get(Deal, deal_id)
    if deal is None or deal.status not in sources(DealStatus.SETTLED):
        return False
    return await service.settle_deal(session, deal, state.sold)


async def started_state(holds: HoldStore, deal: Deal) -> DealState | None:
    """The live counts of a deal that was started (None for one only scheduled: Redis has
    nothing of it yet, so it is not asked)."""
    if deal.id is None or deal.status == DealStatus.SCHEDULED:
        return None
    return await holds.snapshot(deal.id)


def terms_json(deal: Deal) -> dict[str, Any]:
    """A deal's terms: its price, units, limit and window, as the API and a room's card say."""
    return {
        "deal_price": deal.deal_price,
        "currency": deal.currency,
        "quantity": deal.quantity,
        "per_buyer_limit": deal.per_buyer_limit,
        "starts_ms": deal.starts_ms,
        "ends_ms": deal.ends_ms,
        "accounts_only": deal.accounts_only,
    }


def deal_json(deal: Deal, state: DealState | None) -> dict[str, Any]:
    """A deal as the API and the seller center show it: its record, and with ``state`` (a
    snapshot, if Redis has the deal) its live counts and phase on the server's clock."""
    body: dict[str, Any] = {
        "id": deal.id,
        "shop_id": deal.shop_id,
        "sku_id": deal.sku_id,
        **terms_json(deal),
        "status": deal.status,
        "kind": deal.kind,
    }
    if state is None:
        body["phase"] = phase_unloaded(deal.status)
        return body
    body["stock"] = {"available": state.available, "held": state.held, "sold": state.sold}
    body["phase"] = state.phase
    body["server_ms"] = state.server_ms
    return body
