"""A deal's reservations, batched (kernel/batch.py): one ``lc_reserve_many`` call takes every
reservation that arrived while the previous call was in flight."""

from __future__ import annotations

from checkout.holds import Hold, HoldStore, ReserveRequest
from kernel.batch import Batcher
from kernel.errors import DomainError


class ReserveBatcher:
    """A deal's reservations, batched: a refusal is raised to its own caller only."""

    def __init__(self, store: HoldStore, max_batch: int = 256) -> None:
        self.store = store
        self._batcher: Batcher[ReserveRequest, Hold | DomainError] = Batcher(
            store.reserve_many, max_batch
        )

    async def reserve(self, deal_id: int, request: ReserveRequest) -> Hold:
        answer = await self._batcher.submit(deal_id, request)
        if isinstance(answer, DomainError):
            raise answer
        return answer
