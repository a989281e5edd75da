"""Every Redis key and channel the live package uses, in one place.

A room's keys share the hash tag ``{room:ID}`` so one Redis Function can touch them all in one
Redis Cluster slot. Room keys live as long as the room is in view, then expire
``ROOM_KEYS_TTL_S`` after it ends (late viewers still get the final snapshot).
"""

from __future__ import annotations

from dataclasses import dataclass

ROOM_KEYS_TTL_S = 7 * 24 * 3600
# A room's analytics keys, counted from their last flush (a live room's are renewed by it).
ANALYTICS_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class RoomKeys:
    meta: str  # hash: ver (state version), seq (last event number), status
    state: str  # string: the room state as JSON (see live/rules.py)
    log: str  # stream, capped: every sequenced event, entry id "<seq>-0"
    muted: str  # set: user ids the creator muted
    banned: str  # set: user ids the creator banned from the room (they are muted too)
    viewers: str  # hash: node id -> "<count>:<reported at ms>"
    likes: str  # integer: likes so far
    stream: str  # string: id of the room's video publisher; expires unless its node renews it
    # string: the last `stream.failed` told to the creator (JSON), until a stream starts or
    # STREAM_FAILURE_KEPT_S pass: a studio that joins or comes back later is told it too
    stream_failed: str
    peak: str  # sorted set, one member "viewers": the most viewers seen at once (ZADD GT)
    # string: server ms when the room was last seen hosted (its creator connected on some node,
    # its video on, or a process hosting it, as the demo does); the sweeper ends a room left
    # unhosted too long
    hosted: str
    seen: str  # hash: user -> server ms the room first saw them join (giveaway eligibility)
    # Sharded pub/sub channel (SPUBLISH, one slot with the room's keys): "<seq> <event json>",
    # "@<user> <message json>", or "!" (a deal's stock changed: move the room now, decision
    # 0048); a node subscribes to the rooms it serves (decision 0037).
    channel: str
    # Plain pub/sub channel: "@<user> <message json>" from a Function of another slot (a shop's
    # shelf telling a waiter of a kept unit), which cannot SPUBLISH outside its own slot.
    notices: str

    def auction(self, auction_id: int) -> str:
        """Hash: an auction's terms and state (live/lua/auctions.lua)."""
        return self.meta.replace(":meta", f":auction:{auction_id}")

    def bidders(self, auction_id: int) -> str:
        """Hash: each bidder's best maximum in an auction."""
        return self.meta.replace(":meta", f":auction:{auction_id}:bidders")

    def waiters(self, auction_id: int) -> str:
        """Sorted set: the lot's waitlist once the auction closed, users by arrival."""
        return self.meta.replace(":meta", f":auction:{auction_id}:waiters")

    def waiter_names(self, auction_id: int) -> str:
        """Hash: each waiting user's name in the room."""
        return self.meta.replace(":meta", f":auction:{auction_id}:waiter_names")

    @property
    def auctions(self) -> str:
        """Set: the room's auctions not finished (the room sweep's work list)."""
        return self.meta.replace(":meta", ":auctions")

    def giveaway(self, giveaway_id: int) -> str:
        """Hash: a giveaway's terms, committed seed and state (live/lua/giveaways.lua)."""
        return self.meta.replace(":meta", f":giveaway:{giveaway_id}")

    def entrants(self, giveaway_id: int) -> str:
        """Set: a giveaway's entrants."""
        return self.meta.replace(":meta", f":giveaway:{giveaway_id}:entrants")

    @property
    def giveaways(self) -> str:
        """Set: the room's giveaways not finished."""
        return self.meta.replace(":meta", ":giveaways")

    def chat_rate(self, user: str) -> str:
        """Counter of one user's chat lines in the current rate window (expires with it)."""
        return self.meta.replace(":meta", f":chat:{user}")

    # Analytics (decision 0044). Every one expires ANALYTICS_TTL_S after its last flush: long
    # enough for the archive to SQL to be rerun after a crash, short enough not to pile up.
    @property
    def minutes(self) -> str:
        """Sorted set: each minute (ms at its start) with counts, scored by the most viewers
        seen at once in it (ZADD GT: the max over nodes)."""
        return self.meta.replace(":meta", ":stats:minutes")

    def minute(self, minute_ms: int) -> str:
        """Hash: one minute's counters (likes, chat, impressions, clicks, carts, followers)."""
        return self.meta.replace(":meta", f":stats:{minute_ms}")

    def minute_viewers(self, minute_ms: int) -> str:
        """HyperLogLog: viewers who joined in that minute."""
        return self.meta.replace(":meta", f":stats:{minute_ms}:viewers")

    @property
    def unique_viewers(self) -> str:
        """HyperLogLog: every viewer who joined the room."""
        return self.meta.replace(":meta", ":stats:viewers")


@dataclass(frozen=True)
class LiveKeys:
    prefix: str = "lc"

    def room(self, room_id: int) -> RoomKeys:
        base = f"{self.prefix}:{{room:{room_id}}}"
        return RoomKeys(
            meta=f"{base}:meta",
            state=f"{base}:state",
            log=f"{base}:log",
            muted=f"{base}:muted",
            banned=f"{base}:banned",
            viewers=f"{base}:viewers",
            likes=f"{base}:likes",
            stream=f"{base}:stream",
            stream_failed=f"{base}:stream-failed",
            peak=f"{base}:peak",
            hosted=f"{base}:hosted",
            seen=f"{base}:seen",
            channel=f"{base}:events",
            notices=f"{base}:notices",
        )

    def room_of_channel(self, channel: bytes) -> int | None:
        """The room of an events or notices channel."""
        head = f"{self.prefix}:{{room:".encode()
        number, _, tail = channel[len(head) :].partition(b"}:")
        ok = channel.startswith(head) and number.isdigit() and tail in (b"events", b"notices")
        return int(number) if ok else None

    @property
    def live_rooms(self) -> str:
        """Set of room ids not yet ended: the sweeper ticks their deal clocks."""
        return f"{self.prefix}:rooms:open"

    @property
    def format_rooms(self) -> str:
        """Set of room ids with an auction or giveaway not finished: the room sweep follows
        them even after the room ends (a winner may still pay, a lot must still go back)."""
        return f"{self.prefix}:rooms:formats"

    @property
    def analytics_due(self) -> str:
        """Sorted set of ended room ids, scored by when their analytics are to be written to
        SQL (a little after the end, once every node has flushed); removed once written."""
        return f"{self.prefix}:rooms:analytics-due"

    @property
    def deal_rooms(self) -> str:
        """Hash deal id -> room id, so checkout can tell the buyer's room about a sale."""
        return f"{self.prefix}:deal-rooms"
