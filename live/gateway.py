"""The realtime gateway: a viewer's websocket from hello to goodbye, and the node's room ticker,
the one loop that moves rooms along the clock and their stock to viewers (decision 0025); a
nudge moves a room at once when one of its deals' stock changes (decision 0048).

Per connection: wait for ``hello`` (token in the message, never the URL), join the room in the
hub *before* reading the room's log (so nothing published meanwhile is missed), send a replay or
a snapshot plus the viewer's own holds, then serve chat, buy, like and ping. Bad messages get an
error frame and a strike; too many strikes close the connection with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from starlette.websockets import WebSocket

from checkout.batcher import ReserveBatcher
from checkout.hold_states import HoldState
from checkout.holds import Hold, HoldStore, ReserveRequest
from checkout.limits import Rate, RateLimiter, client_address
from kernel.clock import now_ms
from kernel.errors import CommonErrorCode, Conflict, DomainError, Throttled, Unauthorized
from kernel.nudge import Nudges
from live import protocol, rules
from live import service as live_service
from live.analytics import RoomAnalytics, Tally
from live.auctions import Auctions
from live.comment_rules import is_claim
from live.comment_sales import CommentSales
from live.error_codes import LiveErrorCode
from live.frames import message_list, text_frame
from live.giveaways import Giveaways
from live.hub import Hub, LocalRoom, Outlet, Viewer
from live.protocol import (
    BagOpened,
    Bid,
    Buy,
    Chat,
    Hello,
    Like,
    Ping,
    ProductClicked,
    ProtocolError,
)
from live.room_states import FlashDealStatus, RoomStatus
from live.store import RoomStore, Snapshot

log = logging.getLogger("livecart.gateway")


class Who(NamedTuple):
    """Whom a hello's token names: the user id, the role ("viewer": a guest or an account, who
    may buy; "creator": the room's seller; "seller": another seller, who watches and chats),
    whether it is an account (accounts-only deals sell to those alone), and the name chat shows
    for it (a guest's alias for the room, an account's display name; "": the one the hello
    chose, for sellers)."""

    user: str
    role: str
    account: bool = False
    name: str = ""


Identify = Callable[[str, rules.Room], Awaitable[Who]]
# (room, seq) -> deliver the room's events up to seq from the log, if the bus has not yet
CatchUp = Callable[[LocalRoom, int], Awaitable[bool]]
# room -> subscribe this node to the room's events (the bus), before a joiner reads its snapshot
Follow = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class GatewayConfig:
    """The gateway's knobs, each a setting (web/settings.py declares them and their defaults;
    web/app.py's ``gateway_config`` fills this in)."""

    hello_timeout_s: float
    max_replay: int
    chat_lines: int  # per user per room in each chat window
    chat_window_ms: int
    # Chat lines per client address (every connection and user behind it), on top of the
    # per-user limit: a spammer's many guest sessions share their address's bucket.
    chat_address_rate: Rate
    message_rate: float  # per connection, a second, after a burst of message_burst
    message_burst: float
    strikes: float  # bad messages tolerated at once; strike_refill of them forgiven a second
    strike_refill: float
    tick_s: float
    report_s: float
    recent_chat: int


# Holds of a deal that ended this long ago are over: hold and pay windows are shorter.
RECENT_DEAL_MS = 15 * 60 * 1000
# Chat refusals that count as a strike (bad or too much chat); others (a room that ended) do not.
CHAT_STRIKES = frozenset(
    {
        LiveErrorCode.CHAT_RATE_LIMITED,
        LiveErrorCode.EMPTY_CHAT,
        LiveErrorCode.CHAT_TOO_LONG,
        LiveErrorCode.INVALID_CHAT,
    }
)
# A snapshot's chat is looked for among the room's last this many events.
RECENT_EVENTS_SCANNED = 400
# A room's deal edge (a start, an end) this close makes its tick run every time again: the edge
# is then found within a tick, by Redis's clock, however far this node's clock is off by less.
EDGE_LEAD_MS = 500
# Nudged moves of one room on this node start at least this far apart (kernel/nudge.py): in a
# reservation storm a move per batch would read the room and each deal's stock hundreds of times
# a second for figures the hub sends at most every 100 ms; this bounds it at 50 a second, and
# adds at most 20 ms to a sold-out (issue 21 asks for 50 ms at every viewer).
MOVE_SPACING_S = 0.02
# Likes one viewer's connection may add: this many a second after a burst (more are dropped).
LIKES_PER_S, LIKES_BURST = 10, 50
# Looks (bag.opened, product.clicked) one connection may report: a second after a burst.
REPORTS_PER_S, REPORTS_BURST = 1, 10


def bag_of(room: rules.Room) -> frozenset[int]:
    return frozenset(item["product_id"] for item in room["bag"])


def recent_chat(newest_first: Iterable[rules.Event], lines: int) -> list[rules.Event]:
    """The last ``lines`` chat lines among the events, oldest first, deleted ones left out."""
    deleted: set[int] = set()
    chat: list[rules.Event] = []
    for event in newest_first:
        if event["type"] == "chat.deleted":
            deleted.add(event["chat_seq"])
        elif event["type"] == "chat" and event["seq"] not in deleted:
            chat.append(event)
            if len(chat) == lines:
                break
    chat.reverse()
    return chat


class Closed(Exception):
    """The connection is done (closed by us or by the viewer)."""


class Gateway:
    def __init__(
        self,
        store: RoomStore,
        holds: HoldStore,
        batcher: ReserveBatcher,
        hub: Hub,
        identify: Identify,
        node_id: str,
        config: GatewayConfig,
        catch_up: CatchUp | None = None,
        follow: Follow | None = None,
        limiter: RateLimiter | None = None,
        sweep: live_service.RoomSweep | None = None,
        auctions: Auctions | None = None,
        giveaways: Giveaways | None = None,
        comment_sales: CommentSales | None = None,
        analytics: RoomAnalytics | None = None,
    ) -> None:
        self.store = store
        self.holds = holds
        self.batcher = batcher
        self.hub = hub
        self.identify = identify
        self.node_id = node_id
        self.config = config
        self.catch_up = catch_up
        self.follow = follow
        self.limiter = limiter
        self.sweep = sweep
        self.auctions = auctions
        self.giveaways = giveaways
        self.comment_sales = comment_sales
        self.analytics = analytics or RoomAnalytics(store.redis, store.keys)
        # Each watched room's bag (product ids), as its last tick or join saw it: what a
        # viewer's click may name.
        self.bags_of: dict[int, frozenset[int]] = {}
        # Each watched room's comment-to-buy keywords (none: off), as its last tick or join saw
        # them: a chat line is read as a claim only if it starts with one.
        self.keywords_of: dict[int, list[str]] = {}
        # Per running deal watched here: the last waitlist offer told to this node's viewers.
        self.offers_told: dict[int, str] = {}
        self.likes: dict[int, int] = defaultdict(int)
        self.deals_of: dict[int, set[int]] = {}
        self._snapshots: dict[int, tuple[int, float, bytes]] = {}
        self.background: set[asyncio.Task[None]] = set()
        self.nudges = Nudges(self._nudged, "room", spacing_s=MOVE_SPACING_S)
        self._moving: dict[int, asyncio.Lock] = {}  # per watched room: one move at a time
        # What the ticker needs to leave an idle room alone between reports (decision 0051):
        # each watched room's last move, its next deal edge (ms), and whether it has an
        # auction or giveaway still to close.
        self._moved: dict[int, live_service.Advanced] = {}
        self._edges: dict[int, int] = {}
        self._formats_busy: set[int] = set()
        self.moves = 0  # rooms moved (a metric: what an idle room costs)

    async def serve(self, ws: WebSocket, room_id: int, outlet: Outlet) -> None:
        connection = Connection(self, ws, room_id, outlet)
        try:
            await connection.run()
        except Closed:
            pass
        except Exception:
            log.exception("viewer connection failed")
            outlet.drop(protocol.CLOSE_SERVER_ERROR, "server error: reconnect with last_seq")
        finally:
            connection.end()

    @property
    def formats(self) -> tuple[Auctions | Giveaways, ...]:
        """The selling formats whose closes and awards the room's tick and sweep move along."""
        return tuple(f for f in (self.auctions, self.giveaways) if f is not None)

    def spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def snapshot(self, room_id: int, snap: Snapshot) -> bytes:
        """The snapshot message for ``snap``, shared by viewers joining within half a second."""
        loop = asyncio.get_running_loop()
        cached = self._snapshots.get(room_id)
        if cached is not None and cached[0] == snap.seq and loop.time() - cached[1] < 0.5:
            return cached[2]
        body = await self._build_snapshot(room_id, snap)
        self._snapshots[room_id] = (snap.seq, loop.time(), body)
        return body

    async def _build_snapshot(self, room_id: int, snap: Snapshot) -> bytes:
        recent = await self.store.events_back_from(room_id, snap.seq, RECENT_EVENTS_SCANNED)
        chat = recent_chat(recent, self.config.recent_chat)
        stock: dict[str, int] = {}
        for deal_id in rules.live_deal_ids(snap.room):
            state = await self.holds.snapshot(deal_id)  # lapsed holds are returned first
            if state is not None:
                stock[str(deal_id)] = state.available
        viewers = await self.store.report_viewers(
            room_id, self.node_id, self._local_count(room_id), now_ms()
        )
        auctions = []
        if self.auctions is not None:
            for auction_id in await self.auctions.active(room_id):
                found = await self.auctions.view(room_id, auction_id)
                if found is not None:
                    auctions.append(found)
        giveaways = []
        if self.giveaways is not None:
            for giveaway_id in await self.giveaways.active(room_id):
                found = await self.giveaways.view(room_id, giveaway_id)
                if found is not None:
                    giveaways.append(found)
        return protocol.encode(
            {
                "type": "snapshot",
                "seq": snap.seq,
                "room": snap.room,
                "stock": stock,
                "auctions": auctions,  # those not finished (decision 0031)
                "giveaways": giveaways,  # those not finished (decision 0032)
                "viewers": viewers,
                "likes": await self.store.add_likes(room_id, 0),
                "chat": chat,
                "server_ms": now_ms(),
            }
        )

    def _local_count(self, room_id: int) -> int:
        room = self.hub.room(room_id)
        return room.audience if room is not None else 0

    async def deal_in_room(self, room_id: int, deal_id: int) -> bool:
        if deal_id in self.deals_of.get(room_id, ()):
            return True
        snap = await self.store.read(room_id)  # a deal newer than the ticker's last look
        if snap is None:
            return False
        self.deals_of[room_id] = {d["deal_id"] for d in snap.room["deals"]}
        return deal_id in self.deals_of[room_id]

    async def bag_in_room(self, room_id: int, product_id: int | None = None) -> frozenset[int]:
        """The room's bag as this node last saw it, or as the room has it now if ``product_id``
        is not in that (added since the last tick, or not in the bag at all)."""
        bag = self.bags_of.get(room_id)
        if bag is None or (product_id is not None and product_id not in bag):
            snap = await self.store.read(room_id)
            bag = self.bags_of[room_id] = bag_of(snap.room) if snap is not None else frozenset()
        return bag

    async def run_ticker(self, stop: asyncio.Event) -> None:
        """The node's one room loop (docs/decisions/0025). Every tick, for each room with
        viewers here: move deals along the clock, publish stock left; then a share of the room
        sweep, which takes every open room, watched here or not, once a sweep round. Every
        report period: this node's viewer count and likes."""
        loop = asyncio.get_running_loop()
        next_report = loop.time()
        while not stop.is_set():
            report = loop.time() >= next_report
            if report:
                next_report = loop.time() + self.config.report_s
            advanced: dict[int, live_service.Advanced] = {}
            for room_id, room in list(self.hub.rooms.items()):
                if not report and not self._busy(room_id, room):
                    # Idle (decision 0051): moved a report period ago at most, which the
                    # room sweep may take as this tick's.
                    if room_id in self._moved:
                        advanced[room_id] = self._moved[room_id]
                    continue
                try:
                    advanced[room_id] = await self._tick_room(room_id, room, report)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("tick of room %s failed; will retry", room_id)
            if report:
                await self._forget_empty_rooms()
            await self._sweep_share(advanced)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.tick_s)

    def _busy(self, room_id: int, room: LocalRoom) -> bool:
        """Does the room need this tick, between its reports? Yes if events reached it since
        its last move (a deal added, a keyword, chat: the caches and the log follow), if a
        deal's clock edge is near, or if it has an auction or giveaway to close. A stock change
        reaches it as a nudge, not by tick (decision 0048)."""
        moved = self._moved.get(room_id)
        if moved is None or room.delivered_upto() != moved.seq or room_id in self._formats_busy:
            return True
        edge = self._edges.get(room_id)
        return edge is not None and now_ms() >= edge - EDGE_LEAD_MS

    def _remember_move(self, room_id: int, advanced: live_service.Advanced) -> None:
        self._moved[room_id] = advanced
        room = advanced.room
        edges = [
            d["starts_ms"] if d["status"] == FlashDealStatus.SCHEDULED else d["ends_ms"]
            for d in (room["deals"] if room is not None else ())
            if d["status"] in (FlashDealStatus.SCHEDULED, FlashDealStatus.LIVE)
        ]
        if edges:
            self._edges[room_id] = min(edges)
        else:
            self._edges.pop(room_id, None)

    async def _sweep_share(self, advanced: dict[int, live_service.Advanced]) -> None:
        if self.sweep is None:
            return
        try:
            await self.sweep.share(
                self.store, self.holds, self.config.tick_s, advanced, self.formats
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("room sweep failed; will retry")

    def nudge(self, room_id: int) -> None:
        """A deal of the room changed its stock (a nudge on the bus, decision 0048): move the
        room now if it is watched here, as its tick would (coalesced: a burst of nudges costs
        at most a move under way and one more after it)."""
        if room_id in self.hub.rooms:
            self.nudges.nudge(room_id)

    async def _nudged(self, room_id: int) -> None:
        room = self.hub.room(room_id)
        if room is not None:
            await self._move(room_id, room)

    async def _tick_room(
        self, room_id: int, room: LocalRoom, report: bool
    ) -> live_service.Advanced:
        advanced = await self._move(room_id, room)
        try:
            busy = False
            for format_ in self.formats:
                busy |= await format_.advance(room_id)  # a watched room's close is not left waiting
            if busy:
                self._formats_busy.add(room_id)
            else:
                self._formats_busy.discard(room_id)
        except Exception:
            log.exception("room %s: its auctions or giveaways could not advance", room_id)
        if not report:
            return advanced
        if room.hosts and advanced.room is not None and advanced.room["status"] != RoomStatus.ENDED:
            await self.store.mark_hosted(room_id, await self.store.server_ms())
        count = await self.store.report_viewers(room_id, self.node_id, room.audience, now_ms())
        if advanced.room is not None and advanced.room["status"] != RoomStatus.ENDED:
            self.analytics.audience(room_id, count)
        room.set_latest("viewers", protocol.encode({"type": "viewers", "count": count}))
        likes = await self.store.add_likes(room_id, self.likes.pop(room_id, 0))
        room.set_latest("likes", protocol.encode({"type": "likes", "count": likes}))
        return advanced

    async def _move(self, room_id: int, room: LocalRoom) -> live_service.Advanced:
        """Move the room's deals along the clock and the stock, and tell this node's viewers:
        the part of a tick a nudge runs too. One move of a room at a time here, so a figure
        read earlier never overwrites one read later."""
        lock = self._moving.get(room_id)
        if lock is None:
            lock = self._moving[room_id] = asyncio.Lock()
        async with lock:
            return await self._move_now(room_id, room)

    async def _move_now(self, room_id: int, room: LocalRoom) -> live_service.Advanced:
        advanced = await live_service.advance(self.store, self.holds, room_id)
        self.moves += 1
        self._remember_move(room_id, advanced)
        if advanced.room is not None:
            self.deals_of[room_id] = {d["deal_id"] for d in advanced.room["deals"]}
            self.keywords_of[room_id] = CommentSales.keywords(advanced.room)
            self.bags_of[room_id] = bag_of(advanced.room)
        if self.catch_up is not None:
            await self.catch_up(room, advanced.seq)  # an event the bus lost or has not brought
        room.forget_latest({f"stock:{deal_id}" for deal_id in advanced.left})
        for deal_id in advanced.left:
            await self._tell_offers(room, deal_id)
        for deal_id, left in advanced.left.items():
            room.set_latest(
                f"stock:{deal_id}",
                protocol.encode({"type": "deal.stock", "deal_id": deal_id, "left": left}),
            )
        return advanced

    async def _tell_offers(self, room: LocalRoom, deal_id: int) -> None:
        """Units the deal handed to waiting buyers: each node tells its own connections of the
        buyer (``waitlist.offered``), so nobody is told twice however many nodes there are."""
        after = self.offers_told.get(deal_id)
        if after is None:  # newly watched here: offers from now on
            after = self.offers_told[deal_id] = f"{now_ms()}-0"
        for entry, hold, buyer in await self.holds.offers_after(deal_id, after):
            self.offers_told[deal_id] = entry
            message = protocol.encode(
                {"type": "waitlist.offered", "deal_id": deal_id, "hold": hold.json()}
            )
            for viewer in room.viewers_of(buyer):
                self.hub.send_later(viewer, message)

    async def _forget_empty_rooms(self) -> None:
        """Rooms nobody here watches any more: count their last likes, drop their caches."""
        known = (
            set(self.deals_of) | set(self.likes) | set(self._snapshots) | set(self._moving)
        ) | set(self._moved)
        for room_id in self.hub.prune(known):
            likes = self.likes.pop(room_id, 0)
            lock = self._moving.get(room_id)
            if lock is not None and not lock.locked():
                del self._moving[room_id]
            self.deals_of.pop(room_id, None)
            self.keywords_of.pop(room_id, None)
            self.bags_of.pop(room_id, None)
            self._snapshots.pop(room_id, None)
            self._moved.pop(room_id, None)
            self._edges.pop(room_id, None)
            self._formats_busy.discard(room_id)
            if likes:
                await self.store.add_likes(room_id, likes)

    async def forget_node(self) -> None:
        """On shutdown: this node's viewers no longer count anywhere."""
        for room_id in list(self.hub.rooms):
            with contextlib.suppress(Exception):
                await self.store.report_viewers(room_id, self.node_id, 0, now_ms())


class Connection:
    """One websocket connection, from hello to goodbye. Slotted: an idle viewer holds one for
    hours (docs/decisions/0050-memory-per-viewer.md)."""

    __slots__ = (
        "account",
        "address",
        "bucket",
        "gw",
        "likes",
        "loop",
        "name",
        "outlet",
        "reports",
        "role",
        "room_id",
        "strikes",
        "user",
        "viewer",
        "watched",
        "ws",
    )

    def __init__(self, gw: Gateway, ws: WebSocket, room_id: int, outlet: Outlet) -> None:
        self.gw = gw
        self.ws = ws
        self.room_id = room_id
        self.outlet = outlet
        self.address = client_address(ws.client.host if ws.client else None)
        self.loop = asyncio.get_running_loop()
        cfg = gw.config
        now = self.loop.time()
        self.bucket = protocol.TokenBucket(cfg.message_rate, cfg.message_burst, now)
        self.strikes = protocol.TokenBucket(cfg.strike_refill, cfg.strikes, now)
        self.likes: protocol.TokenBucket | None = None
        self.reports: protocol.TokenBucket | None = None
        self.viewer: Viewer | None = None
        self.user = ""
        self.role = ""
        self.account = False
        self.name = ""
        self.watched: dict[str, asyncio.TimerHandle] = {}

    # -- sending ---------------------------------------------------------------------------

    def send(self, *messages: bytes) -> None:
        if self.viewer is not None:
            self.gw.hub.send(self.viewer, list(messages))
        else:
            self.outlet.write(text_frame(message_list(list(messages))))

    async def close(self, code: int, reason: str) -> None:
        # Through the outlet: it never waits on a viewer that stopped reading; one that reads
        # has five seconds to answer the close frame.
        self.outlet.drop(code, reason, grace_s=5.0)
        raise Closed

    async def strike(self, err: DomainError, ref: str | None = None) -> None:
        self.send(protocol.error(err.code, err.message, err.details, ref))
        if not self.strikes.take(self.loop.time()):
            await self.close(protocol.CLOSE_POLICY, "too many bad messages")

    # -- receiving -------------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise Closed
        data: str | bytes = message.get("text") or message.get("bytes") or b""
        return data

    async def next_message(self) -> protocol.ClientMessage | None:
        data = await self.receive()
        if not self.bucket.take(self.loop.time()):
            await self.strike(
                Conflict(
                    "Slow down: too many messages.",
                    code=CommonErrorCode.RATE_LIMITED,
                    limit_per_s=self.gw.config.message_rate,
                )
            )
            return None
        try:
            return protocol.parse(data)
        except ProtocolError as err:
            await self.strike(err)
            return None

    async def run(self) -> None:
        hello = await self.await_hello()
        await self.join(hello)
        while True:
            message = await self.next_message()
            if self.viewer is not None and not self.gw.hub.is_member(self.viewer):
                raise Closed  # dropped (too slow, resync): what it still sent is not acted on
            if message is not None:
                await self.handle(message)

    async def await_hello(self) -> Hello:
        deadline = self.loop.time() + self.gw.config.hello_timeout_s
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await self.next_message()
            except TimeoutError:
                await self.close(protocol.CLOSE_HELLO_TIMEOUT, "no hello in time")
            if message is None:
                continue
            if not isinstance(message, Hello):
                await self.strike(
                    ProtocolError("Send hello first.", code=LiveErrorCode.HELLO_REQUIRED)
                )
                continue
            snap = await self.gw.store.read(self.room_id)
            if snap is None:
                self.send(
                    protocol.error(
                        LiveErrorCode.ROOM_NOT_FOUND, "No such room.", {"room_id": self.room_id}
                    )
                )
                await self.close(protocol.CLOSE_ROOM_NOT_FOUND, "no such room")
                assert snap is not None  # close() raised
            try:
                who = await self.gw.identify(message.token, snap.room)
                self.user, self.role, self.account = who.user, who.role, who.account
            except Unauthorized as err:
                await self.strike(err, "hello")
                continue
            if await self.gw.store.is_banned(self.room_id, self.user):
                message_text = "The creator banned you from this room."
                self.send(protocol.error(LiveErrorCode.BANNED, message_text, {}))
                await self.close(protocol.CLOSE_BANNED, "banned from this room")
            # Viewers are named by who they are (a guest's alias for the room, an account's
            # name); sellers by their hello, else by their part in the room.
            self.name = who.name or rules.clean_name(message.name, who.role.capitalize())
            return message

    async def join(self, hello: Hello) -> None:
        gw = self.gw
        self.viewer = Viewer(self.outlet, self.room_id, self.user, self.role)
        gw.hub.join(self.viewer)  # first: events published from here on are queued for us
        if gw.follow is not None:
            await gw.follow(self.room_id)  # and this node hears them
        replay = None
        if hello.last_seq is not None:
            replay = await gw.store.events_after(self.room_id, hello.last_seq, gw.config.max_replay)
        snap = await gw.store.read(self.room_id)
        if snap is None:
            await self.close(protocol.CLOSE_ROOM_NOT_FOUND, "no such room")
            return
        gw.deals_of[self.room_id] = {d["deal_id"] for d in snap.room["deals"]}
        gw.keywords_of[self.room_id] = CommentSales.keywords(snap.room)
        gw.bags_of[self.room_id] = bag_of(snap.room)
        if self.role == "viewer":
            await gw.store.mark_seen(self.room_id, self.user)
            gw.analytics.joined(self.room_id, self.user)
        welcome: dict[str, Any] = {
            "type": "welcome",
            "protocol": protocol.VERSION,
            "room_id": self.room_id,
            "user": self.user,
            "role": self.role,
            "name": self.name,
            "server_ms": now_ms(),
        }
        if replay is not None:
            assert hello.last_seq is not None
            upto = hello.last_seq + len(replay)
            messages = [protocol.encode({**welcome, "resumed": True, "seq": upto}), *replay]
        else:
            upto = snap.seq
            messages = [
                protocol.encode({**welcome, "resumed": False, "seq": upto}),
                await gw.snapshot(self.room_id, snap),
            ]
        mine = await self.own_holds(snap.room)
        messages.append(
            protocol.encode(
                {
                    "type": "holds",
                    "holds": [h.json() for h in mine],
                    "taken": await self.units_taken(snap.room),
                }
            )
        )
        if self.role == "creator":
            failure = await gw.store.last_stream_failure(self.room_id)
            if failure is not None:  # told when it happened; this studio may not have been here
                messages.append(failure)
        self.send(*messages)
        gw.hub.caught_up(self.viewer, upto)
        for hold in mine:
            self.watch(hold)

    async def own_holds(self, room: rules.Room) -> list[Hold]:
        if self.role != "viewer":
            return []
        now = now_ms()
        found: list[Hold] = []
        for deal in room["deals"]:
            # A deal that ended lately may still have holds being paid for.
            if deal["status"] != FlashDealStatus.ENDED or deal["ends_ms"] > now - RECENT_DEAL_MS:
                found += await self.gw.holds.live_holds_of(deal["deal_id"], self.user, now)
        return found

    async def units_taken(self, room: rules.Room) -> dict[str, int]:
        """Per open deal, the units this viewer holds or bought: how near its limit it is."""
        if self.role != "viewer":
            return {}
        taken: dict[str, int] = {}
        for deal in room["deals"]:
            if deal["status"] != FlashDealStatus.ENDED:
                units = await self.gw.holds.units_taken(deal["deal_id"], self.user)
                if units:
                    taken[str(deal["deal_id"])] = units
        return taken

    # -- messages --------------------------------------------------------------------------

    async def handle(self, message: protocol.ClientMessage) -> None:
        if isinstance(message, Ping):
            self.send(
                protocol.encode(
                    {"type": "time", "client_ms": message.client_ms, "server_ms": now_ms()}
                )
            )
        elif isinstance(message, Like):
            # Per viewer: LIKES_PER_S a second after a burst; taps past it are not counted (a
            # bucket made on the first like: most viewers never tap).
            now = self.loop.time()
            if self.likes is None:
                self.likes = protocol.TokenBucket(LIKES_PER_S, LIKES_BURST, now)
            taken = self.likes.take_up_to(message.count, now)
            self.gw.likes[self.room_id] += taken
            self.gw.analytics.count(self.room_id, Tally.LIKES, taken)
        elif isinstance(message, Chat):
            await self.chat(message)
        elif isinstance(message, Buy):
            await self.buy(message)
        elif isinstance(message, Bid):
            await self.bid(message)
        elif isinstance(message, BagOpened | ProductClicked):
            await self.report(message)
        else:
            self.send(protocol.error(LiveErrorCode.ALREADY_JOINED, "hello was already accepted."))

    async def chat(self, message: Chat) -> None:
        try:
            text = rules.clean_chat(message.text)
            await self.take_chat_token()
            seq = await self.gw.store.post(
                self.room_id,
                {
                    "type": "chat",
                    "user": self.user,
                    "name": self.name,
                    "role": self.role,
                    "text": text,
                    "ms": now_ms(),
                },
                user=self.user,
                limit=self.gw.config.chat_lines,
                window_ms=self.gw.config.chat_window_ms,
            )
        except DomainError as err:
            if err.code in CHAT_STRIKES:
                await self.strike(err, "chat")
            else:
                self.send(protocol.error(err.code, err.message, err.details, "chat"))
            return
        self.gw.analytics.count(self.room_id, Tally.CHAT)
        sales = self.gw.comment_sales
        keywords = self.gw.keywords_of.get(self.room_id, ())
        if sales is not None and self.role == "viewer" and is_claim(text, keywords):
            await self.claim(sales, text, seq)

    async def claim(self, sales: CommentSales, text: str, chat_seq: int) -> None:
        """The line claims the pinned product (decision 0033): the viewer alone is told how it
        went; everyone sees the line's ``chat.claimed`` badge when it held."""
        snap = await self.gw.store.read(self.room_id)
        if snap is None or not sales.is_claim(snap.room, text):
            return  # comment-to-buy went off since the last tick
        try:
            hold = await sales.claim(
                snap.room, self.user, self.address, text, chat_seq, account=self.account
            )
        except DomainError as err:
            self.send(
                protocol.encode(
                    {
                        "type": "claim.refused",
                        "chat_seq": chat_seq,
                        "code": err.code,
                        "message": err.message,
                        "details": err.details,
                    }
                )
            )
            return
        self.send(
            protocol.encode({"type": "claim.granted", "chat_seq": chat_seq, "hold": hold.json()})
        )
        if isinstance(hold, Hold):
            self.watch(hold)

    async def take_chat_token(self) -> None:
        """Guest chat counts against the client address too (sellers speak as themselves)."""
        if self.gw.limiter is None or self.role != "viewer":
            return
        try:
            await self.gw.limiter.take(
                "chat", self.address, self.gw.config.chat_address_rate, "chat lines"
            )
        except Throttled as err:
            raise Conflict(
                "Too much chat from your network; wait a moment.",
                code=LiveErrorCode.CHAT_RATE_LIMITED,
                retry_after_ms=err.details["retry_after_ms"],
                per="address",
            ) from None

    async def buy(self, message: Buy) -> None:
        ref = message.request_id
        if self.role != "viewer":
            self.send(
                protocol.error(
                    LiveErrorCode.VIEWER_SESSION_REQUIRED,
                    "Buying needs a guest session token.",
                    None,
                    ref,
                )
            )
            return
        if not await self.gw.deal_in_room(self.room_id, message.deal_id):
            self.send(
                protocol.error(
                    LiveErrorCode.DEAL_NOT_IN_ROOM,
                    "No such deal in this room.",
                    {"deal_id": message.deal_id},
                    ref,
                )
            )
            return
        try:
            hold = await self.gw.batcher.reserve(
                message.deal_id,
                ReserveRequest(
                    self.user, message.qty, message.request_id, self.address, self.account
                ),
            )
        except DomainError as err:
            self.send(protocol.error(err.code, err.message, err.details, ref))
            return
        if not hold.replayed:
            self.gw.analytics.count(self.room_id, Tally.CARTS)
        self.send(
            protocol.encode(
                {
                    "type": "hold.granted",
                    "ref": ref,
                    "deal_id": message.deal_id,
                    "hold": hold.json(),
                    "replayed": hold.replayed,
                }
            )
        )
        self.watch(hold)

    async def report(self, message: BagOpened | ProductClicked) -> None:
        """What the viewer looked at, for the room's analytics (decision 0044): an opened bag
        shows each of its products; a click names one of them. Viewers only, REPORTS_PER_S a
        second after a burst; refused reports are answered and not counted."""
        kind = "bag.opened" if isinstance(message, BagOpened) else "product.clicked"
        if self.role != "viewer":
            text = "Only viewers' looks are counted."
            self.send(protocol.error(LiveErrorCode.VIEWER_SESSION_REQUIRED, text, None, kind))
            return
        now = self.loop.time()
        if self.reports is None:
            self.reports = protocol.TokenBucket(REPORTS_PER_S, REPORTS_BURST, now)
        if not self.reports.take(now):
            err = Conflict(
                "Too many looks reported; they are not counted for a moment.",
                code=CommonErrorCode.RATE_LIMITED,
                limit_per_s=REPORTS_PER_S,
            )
            self.send(protocol.error(err.code, err.message, err.details, kind))
            return
        clicked = message.product_id if isinstance(message, ProductClicked) else None
        bag = await self.gw.bag_in_room(self.room_id, clicked)
        if isinstance(message, BagOpened):
            self.gw.analytics.count(self.room_id, Tally.IMPRESSIONS, len(bag))
        elif message.product_id in bag:
            self.gw.analytics.count(self.room_id, Tally.CLICKS)
        else:
            details = {"product_id": message.product_id}
            text = "No such product in this room's bag."
            self.send(protocol.error(LiveErrorCode.PRODUCT_NOT_IN_BAG, text, details, kind))

    async def bid(self, message: Bid) -> None:
        """A bid, as ``POST .../bids``: answered ``bid.accepted`` to this connection; everyone
        sees the ``auction.bid`` event the bid appended to the room's log."""
        ref = message.ref
        if self.gw.auctions is None:
            self.send(
                protocol.error(LiveErrorCode.AUCTION_NOT_FOUND, "No such auction.", None, ref)
            )
            return
        if self.role == "creator":
            # The shop's own seller: shill bidding, refused here as in the bid's function.
            err = Conflict("A shop cannot bid on its own auction.", code=LiveErrorCode.SHILL_BID)
            self.send(protocol.error(err.code, err.message, None, ref))
            return
        if self.role != "viewer":
            self.send(
                protocol.error(
                    LiveErrorCode.VIEWER_SESSION_REQUIRED,
                    "Bidding needs a guest session token.",
                    None,
                    ref,
                )
            )
            return
        try:
            accepted = await self.gw.auctions.bid(
                self.room_id,
                message.auction_id,
                self.user,
                self.name,
                message.amount,
                message.buy_now,
                account=self.account,
            )
        except DomainError as err:
            self.send(protocol.error(err.code, err.message, err.details, ref))
            return
        self.send(protocol.encode({"type": "bid.accepted", "ref": ref, "bid": accepted.json()}))

    # -- the viewer's holds ----------------------------------------------------------------

    def watch(self, hold: Hold) -> None:
        """Tell the viewer when its hold lapses (or is released elsewhere); sales arrive from
        checkout through the bus."""
        old = self.watched.pop(hold.id, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, (hold.expires_ms - now_ms()) / 1000) + 0.05
        self.watched[hold.id] = self.loop.call_later(
            delay, lambda: self.gw.spawn(self.check_hold(hold.id))
        )

    async def check_hold(self, hold_id: str) -> None:
        self.watched.pop(hold_id, None)
        if self.viewer is None:
            return
        try:
            hold = await self.gw.holds.get_hold(hold_id, self.user)
        except DomainError:
            return
        except Exception:
            log.warning("could not check hold %s; trying again", hold_id, exc_info=True)
            if self.viewer is not None:
                self.watch(Hold(hold_id, 0, now_ms() + 2000, HoldState.HELD))
            return
        if self.viewer is None:  # gone while we asked
            return
        if hold.state.open and hold.expires_ms > now_ms():
            self.watch(Hold(hold.id, hold.qty, hold.expires_ms, hold.state))
            return
        # Sales and releases are told through the bus by whoever made them; a lapse has no
        # maker, so the connection that holds the hold tells it.
        if hold.state.open or hold.state is HoldState.EXPIRED:
            self.send(protocol.encode({"type": "hold.expired", "hold_id": hold_id, "ms": now_ms()}))

    def end(self) -> None:
        for handle in self.watched.values():
            handle.cancel()
        self.watched.clear()
        if self.viewer is not None:
            self.gw.hub.leave(self.viewer)
            self.viewer = None
