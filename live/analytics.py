"""A room's live analytics, per minute (decision 0044): what viewers did, counted in this node's
memory as it happens and flushed to Redis every ``FLUSH_S`` in one pipeline per room, so neither
the gateway's per-message path nor checkout's hot path waits on Redis for it.

Per room and minute (the minute's first millisecond, on this node's clock): a hash of counters
(``Tally``), the most viewers seen at once (a sorted set's score, raised with ZADD GT by every
node's report) and a HyperLogLog of the viewers who joined; and one HyperLogLog of every viewer
the room had. Sales are not counted here: SQL has them (live/analytics_sql.py).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, cast

from redis.asyncio import Redis

from kernel.clock import now_ms
from live.keys import ANALYTICS_TTL_S, LiveKeys

log = logging.getLogger("livecart.analytics")

MINUTE_MS = 60_000
FLUSH_S = 1.0  # how stale a live chart may be, and how much a node's crash may lose
# Ended rooms are written to SQL this long after the end: every node has flushed by then.
ARCHIVE_DELAY_MS = 5_000


class Tally(StrEnum):
    """What the per-minute hash counts (its field names)."""

    LIKES = "likes"
    CHAT = "chat"  # chat lines posted (viewers' and the sellers')
    IMPRESSIONS = "impressions"  # a product shown: pinned (per viewer there) or in an opened bag
    CLICKS = "clicks"  # a viewer opened a product from the room
    CARTS = "carts"  # a room deal put in a cart, or held from the room's websocket
    FOLLOWERS = "followers"  # new followers of the shop during the room


def minute_of(ms: int) -> int:
    return ms - ms % MINUTE_MS


@dataclass
class Minute:
    """One minute of a room. Sales (orders to net_gmv) come from SQL's orders of the room's
    deals paid in that minute; net_gmv is less what was refunded of them since."""

    minute_ms: int
    viewers: int = 0  # most at once
    unique_viewers: int = 0  # who joined in this minute
    followers: int = 0
    likes: int = 0
    chat: int = 0
    impressions: int = 0
    clicks: int = 0
    carts: int = 0
    orders: int = 0
    units: int = 0
    gmv: int = 0
    net_gmv: int = 0

    def json(self) -> dict[str, Any]:
        return {**asdict(self), **rates(self.clicks, self.impressions, self.orders, self.viewers)}


COUNTED = tuple(f.name for f in fields(Minute))


def rates(clicks: int, impressions: int, orders: int, audience: int) -> dict[str, float]:
    """Click-through: clicks per impression. Conversion: orders per viewer (a minute's most at
    once; a room's unique viewers). 0 when there is nothing to divide by; 4 decimals."""
    return {
        "click_through": round(clicks / impressions, 4) if impressions else 0.0,
        "conversion": round(orders / audience, 4) if audience else 0.0,
    }


class RoomAnalytics:
    """This node's counts not yet flushed, and the Redis side of every room's."""

    def __init__(self, redis: Redis, keys: LiveKeys) -> None:
        self.redis = redis
        self.keys = keys
        self._counts: dict[tuple[int, int], Counter[str]] = defaultdict(Counter)
        self._peaks: dict[tuple[int, int], int] = {}
        self._joined: dict[tuple[int, int], set[str]] = defaultdict(set)

    # -- counting (memory only) ------------------------------------------------------------

    def count(self, room_id: int, tally: Tally, n: int = 1) -> None:
        if n > 0:
            self._counts[(room_id, minute_of(now_ms()))][tally.value] += n

    def new_follower(self, room_id: int) -> None:
        """Someone followed the room's seller while it was live (web/api_follows.py)."""
        self.count(room_id, Tally.FOLLOWERS)

    def joined(self, room_id: int, user: str) -> None:
        self._joined[(room_id, minute_of(now_ms()))].add(user)

    def audience(self, room_id: int, viewers: int) -> None:
        """The room's viewers at once (all nodes), as this node's report summed them."""
        self._raise_peak((room_id, minute_of(now_ms())), viewers)

    # -- flushing --------------------------------------------------------------------------

    async def flush(self) -> None:
        """Every room's pending counts, one pipeline per room (its keys share a slot). A room
        whose write fails keeps its counts for the next flush."""
        counts, peaks, joined = self._counts, self._peaks, self._joined
        self._counts, self._peaks, self._joined = defaultdict(Counter), {}, defaultdict(set)
        by_room: dict[int, set[tuple[int, int]]] = defaultdict(set)
        for at in (*counts, *peaks, *joined):
            by_room[at[0]].add(at)
        for room_id, minutes in by_room.items():
            try:
                await self._write(room_id, minutes, counts, peaks, joined)
            except Exception:
                log.warning("analytics of room %s not flushed; kept", room_id, exc_info=True)
                for at in minutes:
                    self._counts[at].update(counts.get(at, {}))
                    if at in peaks:
                        self._raise_peak(at, peaks[at])
                    self._joined[at] |= joined.get(at, set())

    def _raise_peak(self, at: tuple[int, int], viewers: int) -> None:
        self._peaks[at] = max(viewers, self._peaks.get(at, 0))

    async def _write(
        self,
        room_id: int,
        minutes: set[tuple[int, int]],
        counts: dict[tuple[int, int], Counter[str]],
        peaks: dict[tuple[int, int], int],
        joined: dict[tuple[int, int], set[str]],
    ) -> None:
        k = self.keys.room(room_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for at in sorted(minutes):
                minute = at[1]
                pipe.zadd(k.minutes, {str(minute): peaks.get(at, 0)}, gt=True)
                for field, n in counts.get(at, {}).items():
                    pipe.hincrby(k.minute(minute), field, n)
                pipe.expire(k.minute(minute), ANALYTICS_TTL_S)
                users = joined.get(at)
                if users:
                    pipe.pfadd(k.minute_viewers(minute), *users)
                    pipe.pfadd(k.unique_viewers, *users)
                    pipe.expire(k.minute_viewers(minute), ANALYTICS_TTL_S)
            pipe.expire(k.minutes, ANALYTICS_TTL_S)
            pipe.expire(k.unique_viewers, ANALYTICS_TTL_S)
            await pipe.execute()

    # -- reading ---------------------------------------------------------------------------

    async def minutes(self, room_id: int) -> tuple[list[Minute], int]:
        """The room's minutes in Redis, oldest first (without sales), and its unique viewers."""
        k = self.keys.room(room_id)
        found = cast(
            list[tuple[str, float]], await self.redis.zrange(k.minutes, 0, -1, withscores=True)
        )
        starts = sorted((int(member), int(score)) for member, score in found)
        # PFCOUNT by name: redis-py's cluster pipeline refuses its pfcount() (PFCOUNT may name
        # keys of several slots); these keys all share the room's slot.
        async with self.redis.pipeline(transaction=False) as pipe:
            for minute, _ in starts:
                pipe.hgetall(k.minute(minute))
                pipe.execute_command("PFCOUNT", k.minute_viewers(minute))
            pipe.execute_command("PFCOUNT", k.unique_viewers)
            answers = await pipe.execute()
        minutes = []
        for n, (minute, viewers) in enumerate(starts):
            counters: dict[str, str] = answers[2 * n]
            tallies = {name: int(counters.get(name, 0)) for name in Tally}
            minutes.append(
                Minute(minute, viewers=viewers, unique_viewers=answers[2 * n + 1], **tallies)
            )
        return minutes, int(answers[-1])

    # -- the archive's work list -----------------------------------------------------------

    async def due(self, now: int, limit: int = 20) -> list[int]:
        """Ended rooms whose analytics are due to be written to SQL."""
        found = await self.redis.zrangebyscore(self.keys.analytics_due, "-inf", now, 0, limit)
        return [int(member) for member in cast(list[str], found)]

    async def archived(self, room_id: int) -> None:
        await self.redis.zrem(self.keys.analytics_due, str(room_id))
