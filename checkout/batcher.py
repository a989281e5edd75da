"""Batches concurrent reservations for one deal into a single Redis Function call.

During a flash-deal storm hundreds of buyers ask for the same deal at once. Instead of one round
trip each, requests that arrive while a call is in flight wait for the next call, which takes
them all (up to ``max_batch``) in one ``lc_reserve_many``. Each buyer still gets its own result,
decided atomically inside Redis in arrival order. An idle server pays nothing: the first request
goes out on the next loop iteration.
"""

from __future__ import annotations

import asyncio

from checkout.holds import Hold, HoldStore, ReserveRequest
from kernel.errors import DomainError

Waiter = tuple[ReserveRequest, asyncio.Future[Hold | DomainError]]


class ReserveBatcher:
    def __init__(self, store: HoldStore, max_batch: int = 256) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queues: dict[int, list[Waiter]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def reserve(self, deal_id: int, request: ReserveRequest) -> Hold:
        future: asyncio.Future[Hold | DomainError] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(deal_id)
        if queue is None:
            self._queues[deal_id] = queue = []
            task = asyncio.create_task(self._drain(deal_id, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append((request, future))
        outcome = await future
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def _drain(self, deal_id: int, queue: list[Waiter]) -> None:
        try:
            while queue:
                batch = queue[: self.max_batch]
                del queue[: self.max_batch]
                await self._send(deal_id, batch)
        finally:
            # No await between the last empty check and here, so no request can be stranded.
            del self._queues[deal_id]

    async def _send(self, deal_id: int, batch: list[Waiter]) -> None:
        try:
            outcomes = await self.store.reserve_many(deal_id, [request for request, _ in batch])
            if len(outcomes) != len(batch):  # a library of another version answered
                raise RuntimeError(f"{len(batch)} reservations got {len(outcomes)} answers")
        except Exception as err:
            # Every waiter gets the failure (a 500 or 503): none may hang, and the drain lives on.
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():  # the caller may have gone away (cancelled)
                future.set_result(outcome)
