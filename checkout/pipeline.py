"""The order pipeline: a Redis Streams consumer group that turns ``order.paid`` entries into SQL
orders. It acknowledges an entry only after the transaction holding its order has committed, so
a crash anywhere leaves the entry pending; another consumer claims it (XAUTOCLAIM) and the unique
hold id makes the second insert a no-op. An entry that fails ``max_deliveries`` times is moved to
the deal's dead-letter stream instead of blocking the rest forever. What the group has
acknowledged is trimmed from the streams every ``trim_interval_ms`` (docs/decisions/0018).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError

from checkout.faults import NO_CRASH, CrashPoints
from checkout.keys import ORDER_GROUP, Keyspace, dead_letters_of
from checkout.order_store import MoneyTerms, PaidOrder, PersistResult, persist_paid_orders
from kernel.db import Database
from kernel.redis_client import is_cluster_client

log = logging.getLogger("livecart.pipeline")

# How long a cluster's round of non-blocking reads that found nothing waits before the next: the
# most an order waits to be read, against one pipelined round of XREADGROUPs per wait.
CLUSTER_IDLE_S = 0.05

# Failures of the database itself, not of an entry: they never count towards dead-lettering.
UNAVAILABLE = (OperationalError, InterfaceError, OSError, TimeoutError)

Entry = tuple[str, dict[str, str]]


@dataclass
class PipelineStats:
    persisted: int = 0
    duplicates: int = 0
    stock_shortfalls: int = 0
    dead_lettered: int = 0
    failed_batches: int = 0
    trimmed: int = 0

    def add(self, result: PersistResult) -> None:
        self.persisted += result.inserted
        self.duplicates += result.duplicates
        self.stock_shortfalls += result.stock_shortfalls


@dataclass
class PipelineConfig:
    """The pipeline's knobs, each a setting (web/settings.py declares them and their defaults;
    web/app.py's ``pipeline_config`` fills this in); ``crash``: the crash tests' crash points."""

    batch: int
    block_ms: int
    claim_idle_ms: int
    max_deliveries: int
    trim_interval_ms: int
    money: MoneyTerms = field(default_factory=MoneyTerms)
    crash: CrashPoints = NO_CRASH
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")


class OrderPipeline:
    def __init__(
        self, redis: Redis, db: Database, keyspace: Keyspace, config: PipelineConfig
    ) -> None:
        self.redis = redis
        self.db = db
        self.keys = keyspace
        self.config = config
        self.stats = PipelineStats()
        self._grouped: set[str] = set()
        self._handled: set[str] = set()  # streams with entries handled since the last trim
        self._next_trim = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        log.info("order pipeline consumer %s started", self.config.consumer)
        while not stop.is_set():
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Never die on a bad round: entries stay pending and are retried.
                log.exception("order pipeline round failed")
                self.stats.failed_batches += 1
                await asyncio.sleep(1)

    async def streams(self) -> list[str]:
        members = await self.redis.smembers(self.keys.live_deals)
        streams = [self.keys.deal(int(m)).orders for m in sorted(members, key=int)]
        # Shelves are never forgotten (a shop keeps selling): their streams are trimmed.
        shops = await self.redis.smembers(self.keys.shelves)
        streams += [self.keys.shelf(int(m)).orders for m in sorted(shops, key=int)]
        for stream in streams:
            if stream not in self._grouped:
                await self._ensure_group(stream)
        return streams

    async def _ensure_group(self, stream: str) -> None:
        try:
            await self.redis.xgroup_create(stream, ORDER_GROUP, id="0", mkstream=True)
        except ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise
        self._grouped.add(stream)

    async def step(self) -> int:
        """One round: reclaim entries a dead consumer left, then read new ones. Returns how many
        entries were handled."""
        streams = await self.streams()
        if not streams:
            await asyncio.sleep(self.config.block_ms / 1000)
            return 0
        if not await self._database_answers():
            # Claiming now would only spend deliveries: an outage must not push good orders
            # towards the dead-letter stream. They wait, pending or unread, until SQL is back.
            await asyncio.sleep(self.config.block_ms / 1000)
            return 0
        handled = 0
        for stream in streams:
            handled += await self._reclaim(stream)
        for stream, entries in await self._read_new(streams):
            await self._handle(stream, entries)
            handled += len(entries)
        await self._trim_when_due()
        return handled

    async def _read_new(self, streams: list[str]) -> list[tuple[str, list[Entry]]]:
        """Entries no consumer of the group has read. One server: one XREADGROUP over every
        stream, blocking until any has one. A cluster: a stream is a slot and one XREADGROUP
        may name streams of one slot only, so every stream gets a read that does not block,
        sent as one pipeline (one round trip to each primary, all at once); a round that
        finds nothing waits ``CLUSTER_IDLE_S`` before the next (decision 0037)."""
        config = self.config
        if not is_cluster_client(self.redis):
            reply: Any = await self.redis.xreadgroup(
                ORDER_GROUP,
                config.consumer,
                dict.fromkeys(streams, ">"),
                count=config.batch,
                block=config.block_ms,
            )
            return list(reply or [])
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xreadgroup(ORDER_GROUP, config.consumer, {stream: ">"}, count=config.batch)
            replies: list[Any] = await pipe.execute()
        found = [item for reply in replies for item in reply or []]
        if not found:
            await asyncio.sleep(min(CLUSTER_IDLE_S, config.block_ms / 1000))
        return found

    async def _trim_when_due(self) -> None:
        """Now and then, not per entry: trim each stream this consumer handled entries of."""
        now = asyncio.get_running_loop().time()
        if now < self._next_trim:
            return
        self._next_trim = now + self.config.trim_interval_ms / 1000
        streams, self._handled = self._handled, set()
        for stream in sorted(streams):
            self.stats.trimmed += await trim_acknowledged(self.redis, stream)

    async def _reclaim(self, stream: str) -> int:
        handled = 0
        cursor = "0-0"
        while True:
            cursor, entries, _deleted = await self.redis.xautoclaim(
                stream,
                ORDER_GROUP,
                self.config.consumer,
                self.config.claim_idle_ms,
                start_id=cursor,
                count=self.config.batch,
            )
            if entries:
                live = await self._dead_letter_exhausted(stream, entries)
                await self._handle(stream, live)
                handled += len(entries)
            if cursor == "0-0" or not entries:
                return handled

    async def _dead_letter_exhausted(self, stream: str, entries: list[Entry]) -> list[Entry]:
        ids = [entry_id for entry_id, _ in entries]
        pending: Any = await self.redis.xpending_range(
            stream,
            ORDER_GROUP,
            min=ids[0],
            max=ids[-1],
            count=len(ids) * 2,
            consumername=self.config.consumer,
        )
        deliveries: dict[str, int] = {p["message_id"]: p["times_delivered"] for p in pending}
        dead_key = dead_letters_of(stream)
        live: list[Entry] = []
        for entry_id, fields in entries:
            if deliveries.get(entry_id, 0) > self.config.max_deliveries:
                dead: Any = {**fields, "original_id": entry_id}
                await self.redis.xadd(dead_key, dead)
                await self.redis.xack(stream, ORDER_GROUP, entry_id)
                self.stats.dead_lettered += 1
                log.error(
                    "dead-lettered %s from %s after %s deliveries",
                    entry_id,
                    stream,
                    deliveries[entry_id],
                )
            else:
                live.append((entry_id, fields))
        return live

    async def _handle(self, stream: str, entries: list[Entry]) -> None:
        self._handled.add(stream)
        paid = [(i, f) for i, f in entries if f and f.get("type") == "order.paid"]
        try:
            await self._persist(stream, paid)
        except UNAVAILABLE:
            raise  # the database went away: nothing is wrong with these entries
        except Exception:
            # One bad entry must not hold back the rest: retry one at a time; what still fails
            # stays pending and is retried until it reaches the dead-letter stream.
            log.exception("batch of %d failed; retrying entries one by one", len(paid))
            self.stats.failed_batches += 1
            for item in paid:
                try:
                    await self._persist(stream, [item])
                except UNAVAILABLE:
                    raise
                except Exception:
                    log.exception("entry %s failed", item[0])
        other = [i for i, f in entries if not f or f.get("type") != "order.paid"]
        if other:
            await self.redis.xack(stream, ORDER_GROUP, *other)

    async def _persist(self, stream: str, items: list[Entry]) -> None:
        if not items:
            return
        orders = [PaidOrder.from_stream(fields) for _, fields in items]
        async with self.db.session() as session:
            result = await persist_paid_orders(session, orders, self.config.money, self.keys.prefix)
        self.stats.add(result)
        self.config.crash.reach("pipeline.before_ack")
        await self.redis.xack(stream, ORDER_GROUP, *(entry_id for entry_id, _ in items))

    async def _database_answers(self) -> bool:
        try:
            async with self.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except UNAVAILABLE:
            log.warning("database unreachable; the order pipeline waits")
            return False
        return True

    async def lag(self) -> int:
        """Entries not yet persisted, over every deal this pipeline reads."""
        return sum([await stream_lag(self.redis, stream) for stream in await self.streams()])


class OrderStream:
    """One deal's orders stream seen from outside the pipeline: by the sweeper (may the deal be
    forgotten?) and by the audit (what was ever appended, what is read and not acknowledged)."""

    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self.redis = redis
        self.keys = keyspace

    async def finished(self, deal_id: int) -> bool:
        """Every entry is in SQL and none waits among the dead letters."""
        keys = self.keys.deal(deal_id)
        drained = await stream_drained(self.redis, keys.orders)
        return drained and not await self.redis.exists(keys.dead_letters)

    async def drained(self, deal_id: int) -> bool:
        """Every entry is in SQL (dead letters aside)."""
        return await stream_drained(self.redis, self.keys.deal(deal_id).orders)

    async def shelf_lag(self, shop_id: int) -> int:
        """Entries of a shop's shelf orders stream not yet written to SQL."""
        return await stream_lag(self.redis, self.keys.shelf(shop_id).orders)

    async def trim(self, deal_id: int) -> int:
        return await trim_acknowledged(self.redis, self.keys.deal(deal_id).orders)

    async def entries_added(self, deal_id: int) -> int:
        """Entries ever appended (Redis's own count: trimming does not lower it)."""
        try:
            info = await self.redis.xinfo_stream(self.keys.deal(deal_id).orders)
        except ResponseError:  # no stream: nothing was ever sold
            return 0
        return int(info["entries-added"])

    async def pending(self, deal_id: int) -> int:
        """Entries a worker read and has not acknowledged."""
        try:
            summary = await self.redis.xpending(self.keys.deal(deal_id).orders, ORDER_GROUP)
        except ResponseError:  # no group yet: nothing was ever read
            return 0
        return int(summary["pending"])


async def stream_lag(redis: Redis, stream: str) -> int:
    """Entries of a deal's orders stream not yet persisted: never delivered, plus delivered and
    not acknowledged. Before the pipeline has seen the stream, every entry counts."""
    if not await redis.exists(stream):
        return 0
    for group in await redis.xinfo_groups(stream):
        if group["name"] == ORDER_GROUP:
            return int(group.get("lag") or 0) + int(group.get("pending") or 0)
    return int(await redis.xlen(stream))


async def stream_drained(redis: Redis, stream: str) -> bool:
    return await stream_lag(redis, stream) == 0


async def trim_acknowledged(redis: Redis, stream: str) -> int:
    """Delete the entries of a deal's orders stream that the pipeline is done with; returns
    how many went.

    Every entry older than both the group's last-delivered id and its oldest pending entry was
    delivered and then acknowledged: its order is in SQL, or it was copied to the dead-letter
    stream. An acknowledged entry never becomes pending again, so it is safe to delete even
    while consumers run. The two ids are read in one MULTI, so no delivery falls between them.
    The last delivered entry itself stays (the stream keeps its ids); the group's lag stays
    exact, because trimming, unlike XDEL, leaves no gaps that Redis cannot count.
    """
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xinfo_groups(stream)
            pipe.xpending(stream, ORDER_GROUP)
            groups, pending = await pipe.execute()
    except ResponseError:  # no stream or no group (a forgotten deal's keys expired): nothing
        return 0
    (group,) = [g for g in groups if g["name"] == ORDER_GROUP]
    floor = pending["min"] or group["last-delivered-id"]
    if floor in (None, "0-0"):
        return 0
    return int(await redis.xtrim(stream, minid=floor, approximate=False))


async def replay_dead_letters(redis: Redis, keyspace: Keyspace, deal_id: int) -> int:
    """Move a deal's dead-lettered entries back onto its orders stream, after whatever made them
    fail was mended. Safe to repeat: an order already in SQL is skipped by its unique hold id."""
    keys = keyspace.deal(deal_id)
    moved = 0
    dead: list[Entry] = await redis.xrange(keys.dead_letters)  # type: ignore[assignment]
    for entry_id, fields in dead:
        original: Any = {k: v for k, v in fields.items() if k != "original_id"}
        # The deal's pipeline must read its stream: listed first (the list is another slot).
        await redis.sadd(keyspace.live_deals, str(deal_id))
        async with redis.pipeline(transaction=True) as pipe:  # the deal's slot only
            pipe.xadd(keys.orders, original)
            pipe.xdel(keys.dead_letters, entry_id)
            await pipe.execute()
        moved += 1
    return moved
