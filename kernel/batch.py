"""Coalesces concurrent requests for one key (a deal, a shop's shelf) into one call.

During a flash-deal storm hundreds of buyers ask for the same deal at once. Instead of one round
trip each, requests that arrive while a call is in flight wait for the next call, which takes
them all (up to ``max_batch``) in one Redis Function call (``lc_reserve_many``,
``lc_shelf_hold_many``). Each caller still gets its own answer, decided atomically inside Redis
in arrival order. An idle server pays nothing: the first request goes out on the next loop
iteration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Request = TypeVar("Request")
Answer = TypeVar("Answer")


class Batcher(Generic[Request, Answer]):
    """``send(key, requests)`` answers every request of one batch, in order."""

    def __init__(
        self,
        send: Callable[[int, list[Request]], Awaitable[list[Answer]]],
        max_batch: int = 256,
    ) -> None:
        self.send = send
        self.max_batch = max_batch
        self._queues: dict[int, list[tuple[Request, asyncio.Future[Answer]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: int, request: Request) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            self._queues[key] = queue = []
            task = asyncio.create_task(self._drain(key, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append((request, future))
        return await future

    async def _drain(self, key: int, queue: list[tuple[Request, asyncio.Future[Answer]]]) -> None:
        try:
            while queue:
                batch = queue[: self.max_batch]
                del queue[: self.max_batch]
                await self._send(key, batch)
        finally:
            # No await between the last empty check and here, so no request can be stranded.
            del self._queues[key]

    async def _send(self, key: int, batch: list[tuple[Request, asyncio.Future[Answer]]]) -> None:
        try:
            answers = await self.send(key, [request for request, _ in batch])
            if len(answers) != len(batch):  # a library of another version answered
                raise RuntimeError(f"{len(batch)} requests got {len(answers)} answers")
        except Exception as err:
            # Every waiter gets the failure (a 500 or 503): none may hang, and the drain lives on.
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():  # the caller may have gone away (cancelled)
                future.set_result(answer)
