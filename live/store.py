"""The Redis side of rooms: state with a version, the sequenced event log, chat posting, mutes,
viewer counts and likes. Loads ``lua/rooms.lua`` once; every state change is a compare-and-set
inside one Redis Function, so two nodes (or two creator tabs) cannot overwrite each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import resources
from typing import NamedTuple, cast

import orjson
from redis.asyncio import Redis

from kernel.clock import now_ms
from kernel.errors import CommonErrorCode, Conflict, NotFound
from live import rules
from live.analytics import ARCHIVE_DELAY_MS
from live.error_codes import LiveErrorCode
from live.keys import ROOM_KEYS_TTL_S, LiveKeys
from live.room_states import RoomStatus

LIBRARY = resources.files("live").joinpath("lua/rooms.lua").read_text()
# What lc_room_post answers instead of "ok", as the code the poster gets.
_POST_REFUSALS: dict[str, LiveErrorCode] = {
    LiveErrorCode.ROOM_NOT_FOUND.value: LiveErrorCode.ROOM_NOT_FOUND,
    LiveErrorCode.ROOM_ENDED.value: LiveErrorCode.ROOM_ENDED,
    LiveErrorCode.MUTED.value: LiveErrorCode.MUTED,
    CommonErrorCode.RATE_LIMITED.value: LiveErrorCode.CHAT_RATE_LIMITED,  # the user's own rate
}
COMMIT_ATTEMPTS = 20
# The bus message that asks each node serving a room to move it now (RoomStore.nudge).
NUDGE = b"!"
LogEntries = list[tuple[str, dict[str, str]]]
# A node's viewer count older than this is from a node that stopped reporting: not counted.
VIEWER_REPORT_STALE_MS = 5000
# How long a creator who joins later is still told of their encoder's last failed connection.
STREAM_FAILURE_KEPT_S = 600


class Snapshot(NamedTuple):
    room: rules.Room
    version: int
    seq: int


class Committed(NamedTuple):
    change: rules.Change
    seq: int


class RoomStore:
    def __init__(self, redis: Redis, keys: LiveKeys, log_maxlen: int) -> None:
        """``log_maxlen``: events kept per room (LIVECART_ROOM_LOG_MAXLEN; about: Redis trims
        whole stream nodes). A resuming viewer whose missed events are no longer all there
        gets a snapshot."""
        self.redis = redis
        self.keys = keys
        self.log_maxlen = log_maxlen
        # The highest viewer count this node has recorded per room, so the peak is written only
        # when it rises rather than on every tick.
        self._peaks: dict[int, int] = {}

    async def install(self) -> None:
        await self.redis.function_load(LIBRARY, replace=True)

    async def read(self, room_id: int) -> Snapshot | None:
        k = self.keys.room(room_id)
        raw, ver, seq = await self.redis.fcall("lc_room_read", 2, k.meta, k.state)
        if not raw:
            return None
        return Snapshot(rules.current(orjson.loads(raw)), int(ver), int(seq))

    async def create(self, room: rules.Room) -> None:
        """Write a new room's first state (version 1). Refuses to overwrite a room."""
        result = await self._commit(room["id"], 0, room, [])
        if result is None:
            raise Conflict(
                "Redis already holds a room under this id. Is another database using the same "
                "Redis and LIVECART_REDIS_PREFIX?",
                code=LiveErrorCode.ROOM_STATE_MISMATCH,
                room_id=room["id"],
            )
        await self.redis.sadd(self.keys.live_rooms, str(room["id"]))

    async def update(self, room_id: int, rule: Callable[[rules.Room], rules.Change]) -> Committed:
        """Apply a pure rule to the current state and commit it, retrying when another writer
        got there first. The rule may raise a DomainError: nothing is written then."""
        for _ in range(COMMIT_ATTEMPTS):
            snap = await self.read(room_id)
            if snap is None:
                raise NotFound("No such room.", code=LiveErrorCode.ROOM_NOT_FOUND, room_id=room_id)
            change = rule(snap.room)
            if not change.events:  # every state change announces itself; nothing to write
                return Committed(rules.Change(snap.room), snap.seq)
            seq = await self._commit(room_id, snap.version, change.room, change.events)
            if seq is not None:
                if change.room["status"] == RoomStatus.ENDED:
                    await self._retire(room_id)
                return Committed(change, seq)
        raise Conflict("The room is changing too fast; try again.", code=LiveErrorCode.ROOM_BUSY)

    async def _commit(
        self, room_id: int, version: int, room: rules.Room, events: list[rules.Event]
    ) -> int | None:
        k = self.keys.room(room_id)
        result = await self.redis.fcall(
            "lc_room_commit",
            3,
            k.meta,
            k.state,
            k.log,
            version,
            orjson.dumps(room),
            room["status"],
            k.channel,
            self.log_maxlen,
            *[orjson.dumps(e) for e in events],
        )
        return int(result[2]) if result[0] == "ok" else None

    async def _retire(self, room_id: int) -> None:
        k = self.keys.room(room_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.srem(self.keys.live_rooms, str(room_id))
            # Its analytics go to SQL once every node has flushed (live/analytics_sql.py).
            pipe.zadd(self.keys.analytics_due, {str(room_id): now_ms() + ARCHIVE_DELAY_MS})
            for key in (
                k.meta,
                k.state,
                k.log,
                k.muted,
                k.banned,
                k.likes,
                k.viewers,
                k.peak,
                k.hosted,
                k.seen,
            ):
                pipe.expire(key, ROOM_KEYS_TTL_S)
            await pipe.execute()

    async def post(
        self,
        room_id: int,
        event: rules.Event,
        *,
        user: str = "",
        limit: int = 0,
        window_ms: int = 1000,
    ) -> int:
        """Append a state-less event (chat). With a user: refused if muted or over the chat
        rate limit (``limit`` lines per ``window_ms``)."""
        k = self.keys.room(room_id)
        result = await self.redis.fcall(
            "lc_room_post",
            5,
            k.meta,
            k.state,
            k.log,
            k.muted,
            k.chat_rate(user or "-"),
            k.channel,
            self.log_maxlen,
            user,
            limit,
            window_ms,
            orjson.dumps(event),
        )
        if result[0] == "ok":
            return int(result[1])
        code = _POST_REFUSALS[result[0]]
        if code is LiveErrorCode.ROOM_NOT_FOUND:
            raise NotFound("No such room.", code=code, room_id=room_id)
        if code is LiveErrorCode.ROOM_ENDED:
            raise Conflict("The room has ended.", code=code, room_id=room_id)
        if code is LiveErrorCode.MUTED and await self.is_banned(room_id, user):
            # A ban mutes too, and the function refuses the mute: say which it is.
            raise Conflict("The creator banned you from this room.", code=LiveErrorCode.BANNED)
        if code is LiveErrorCode.MUTED:
            raise Conflict("The creator has muted you in this room.", code=code)
        raise Conflict("You are sending chat too fast.", code=code, retry_after_ms=result[1])

    async def events_after(self, room_id: int, seq: int, limit: int) -> list[bytes] | None:
        """The events after ``seq`` in order, or None when the log no longer has them all (or
        has more than ``limit``): the caller sends a snapshot instead."""
        k = self.keys.room(room_id)
        entries: LogEntries = cast(
            LogEntries, await self.redis.xrange(k.log, f"{seq + 1}-0", "+", count=limit + 1)
        )
        if len(entries) > limit:
            return None
        if entries and entries[0][0] != f"{seq + 1}-0":
            return None
        if not entries:
            # Nothing newer; but a client claiming a number we never gave gets a snapshot.
            meta_seq = await self.redis.hget(k.meta, "seq")
            return [] if seq <= int(meta_seq or 0) else None
        return [fields["p"].encode() for _, fields in entries]

    async def events_between(self, room_id: int, after: int, upto: int) -> list[bytes] | None:
        """Events ``after`` < seq <= ``upto`` in order, or None if the log lost some of them."""
        if upto <= after:
            return []
        k = self.keys.room(room_id)
        entries = cast(LogEntries, await self.redis.xrange(k.log, f"{after + 1}-0", f"{upto}-0"))
        if len(entries) != upto - after or entries[0][0] != f"{after + 1}-0":
            return None
        return [fields["p"].encode() for _, fields in entries]

    async def event(self, room_id: int, seq: int) -> rules.Event | None:
        """Event number ``seq``, while the log still has it."""
        log = self.keys.room(room_id).log
        entries = cast(LogEntries, await self.redis.xrange(log, f"{seq}-0", f"{seq}-0"))
        return orjson.loads(entries[0][1]["p"]) if entries else None

    async def events_back_from(self, room_id: int, seq: int, count: int) -> Iterator[rules.Event]:
        """Up to ``count`` events numbered ``seq`` or less, newest first, each decoded only when
        the caller gets to it."""
        log = self.keys.room(room_id).log
        entries = cast(LogEntries, await self.redis.xrevrange(log, f"{seq}-0", "-", count=count))
        return (orjson.loads(fields["p"]) for _, fields in entries)

    async def server_ms(self) -> int:
        """Redis's clock: the one deal windows are enforced on (checkout/lua/holds.lua)."""
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def channel_of(self, room_id: int) -> str:
        """Where a Redis Function of another slot (a shop's shelf) tells a user in the room:
        its plain notices channel, since SPUBLISH reaches only channels of the caller's slot."""
        return self.keys.room(room_id).notices

    async def send_to_user(self, room_id: int, user: str, message: dict[str, object]) -> None:
        """A message for one user's connections in a room, on whichever node they are."""
        k = self.keys.room(room_id)
        await self.redis.spublish(k.channel, b"@" + user.encode() + b" " + orjson.dumps(message))

    async def nudge(self, room_id: int) -> None:
        """Tell every node serving the room that the stock of one of its deals changed: each
        moves the room now instead of at its next tick (decision 0048)."""
        await self.redis.spublish(self.keys.room(room_id).channel, NUDGE)

    async def mark_seen(self, room_id: int, user: str) -> None:
        """Remember when the room first saw ``user`` join (kept once). The node's clock: a
        giveaway's watch time is minutes, far above the nodes' skew from Redis's."""
        await self.redis.hsetnx(self.keys.room(room_id).seen, user, now_ms())

    async def ban(self, room_id: int, user: str, banned: bool) -> None:
        """Ban a user from the room (muted as well, so every chat line, bid and claim of
        theirs is refused inside its Redis Function; their connections are closed and may not
        join again), or lift the ban (and the mute)."""
        k = self.keys.room(room_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in (k.banned, k.muted):
                if banned:
                    pipe.sadd(key, user)
                else:
                    pipe.srem(key, user)
            await pipe.execute()
        if banned:
            await self.send_to_user(room_id, user, {"type": "banned", "room_id": room_id})

    async def is_banned(self, room_id: int, user: str) -> bool:
        return bool(await self.redis.sismember(self.keys.room(room_id).banned, user))

    async def mute(self, room_id: int, user: str, muted: bool) -> None:
        k = self.keys.room(room_id)
        if muted:
            await self.redis.sadd(k.muted, user)
        else:
            await self.redis.srem(k.muted, user)

    async def report_viewers(self, room_id: int, node: str, count: int, now: int) -> int:
        """Record this node's count and return the sum over nodes that reported lately."""
        k = self.keys.room(room_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            if count:
                pipe.hset(k.viewers, node, f"{count}:{now}")
            else:
                pipe.hdel(k.viewers, node)
            pipe.hgetall(k.viewers)
            _, reports = await pipe.execute()
        total = sum_fresh_counts(reports, now)
        if total > self._peaks.get(room_id, 0):
            if len(self._peaks) > 10_000:
                self._peaks.clear()
            self._peaks[room_id] = total
            await self.redis.zadd(k.peak, {"viewers": total}, gt=True)  # atomic max, any node
        return total

    async def viewers_now(self, room_id: int, now: int) -> int:
        reports = cast(dict[str, str], await self.redis.hgetall(self.keys.room(room_id).viewers))
        return sum_fresh_counts(reports, now)

    async def peak_viewers(self, room_id: int) -> int:
        score = await self.redis.zscore(self.keys.room(room_id).peak, "viewers")
        return int(score or 0)

    async def add_likes(self, room_id: int, n: int) -> int:
        k = self.keys.room(room_id)
        if n == 0:
            return int(await self.redis.get(k.likes) or 0)
        return int(await self.redis.incrby(k.likes, n))

    async def claim_stream(self, room_id: int, holder: str, ttl_ms: int) -> bool:
        """Become the room's one video publisher, unless someone (on any node) already is."""
        k = self.keys.room(room_id)
        return bool(await self.redis.set(k.stream, holder, nx=True, px=ttl_ms))

    async def stream_claimed(self, room_id: int) -> bool:
        return bool(await self.redis.exists(self.keys.room(room_id).stream))

    async def renew_stream(self, room_id: int, holder: str, ttl_ms: int) -> bool:
        k = self.keys.room(room_id)
        return bool(await self.redis.fcall("lc_stream_renew", 1, k.stream, holder, ttl_ms))

    async def release_stream(self, room_id: int, holder: str) -> None:
        k = self.keys.room(room_id)
        await self.redis.fcall("lc_stream_release", 1, k.stream, holder)

    async def stream_failed(self, room_id: int, owner: str, message: dict[str, object]) -> None:
        """Tell the creator's connections, on whichever node they are, that an encoder's
        connection failed, and keep the notice for a studio that joins or comes back later
        (a notice is not a room event: nothing replays it)."""
        kept = self.keys.room(room_id).stream_failed
        await self.redis.set(kept, orjson.dumps(message), ex=STREAM_FAILURE_KEPT_S)
        await self.send_to_user(room_id, owner, message)  # kept first, then told

    async def last_stream_failure(self, room_id: int) -> bytes | None:
        """The ``stream.failed`` notice kept for the creator, if no stream started since."""
        found: str | bytes | None = await self.redis.get(self.keys.room(room_id).stream_failed)
        return found.encode() if isinstance(found, str) else found

    async def forget_stream_failure(self, room_id: int) -> None:
        await self.redis.delete(self.keys.room(room_id).stream_failed)

    async def mark_hosted(self, room_id: int, now: int) -> None:
        # KEEPTTL: a mark racing the room's end keeps the expiry the end gave the key.
        await self.redis.set(self.keys.room(room_id).hosted, now, keepttl=True)

    async def last_hosted(self, room_id: int) -> int | None:
        """When the room was last seen hosted; None if never recorded (a room from before
        hosting was tracked: the caller starts its clock now)."""
        raw = await self.redis.get(self.keys.room(room_id).hosted)
        return int(raw) if raw is not None else None

    async def open_room_ids(self) -> list[int]:
        return sorted(int(m) for m in await self.redis.smembers(self.keys.live_rooms))

    async def track_formats(self, room_id: int) -> None:
        """The room has an auction or giveaway to follow to its end (see format_rooms)."""
        await self.redis.sadd(self.keys.format_rooms, str(room_id))

    async def untrack_formats(self, room_id: int) -> None:
        await self.redis.srem(self.keys.format_rooms, str(room_id))

    async def format_room_ids(self) -> list[int]:
        return sorted(int(m) for m in await self.redis.smembers(self.keys.format_rooms))

    async def link_deal(self, deal_id: int, room_id: int) -> None:
        await self.redis.hset(self.keys.deal_rooms, str(deal_id), str(room_id))

    async def room_of_deal(self, deal_id: int) -> int | None:
        found = await self.redis.hget(self.keys.deal_rooms, str(deal_id))
        return int(found) if found else None


def sum_fresh_counts(reports: dict[str, str], now: int) -> int:
    total = 0
    for value in reports.values():
        count, _, at = value.partition(":")
        if now - int(at) <= VIEWER_REPORT_STALE_MS:
            total += int(count)
    return total
