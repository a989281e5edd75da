"""The room bus in process, on a real Redis-compatible server: rooms' events reach this node's
viewers once and in order, a room is heard from the moment ``follow`` returns, a gap in the
pub/sub stream is filled from the room's log, and when the log or the subscription lost
something the viewers are told to resync."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

import live.bus
from kernel.clock import now_ms
from live import rules
from live.bus import RoomBus
from live.hub import Hub, Viewer
from live.keys import LiveKeys
from live.protocol import CLOSE_RESYNC
from live.store import RoomStore
from tests.conftest import PREFIX
from tests.helpers import until
from tests.test_hub import KeptOutlet, seqs

pytestmark = pytest.mark.storage

ROOM = 1


@dataclass
class Node:
    """One node's side of the rooms: its hub and its bus, on a keyspace of this test's own."""

    redis: Redis
    keys: LiveKeys
    store: RoomStore
    hub: Hub
    bus: RoomBus

    async def open_room(self, room_id: int = ROOM) -> int:
        """A live room; returns its last event number."""
        await self.store.create(rules.new_room(room_id, 1, 1, "Bus test", now_ms()))
        return (await self.store.update(room_id, lambda r: rules.go_live(r, now_ms()))).seq

    async def add_products(self, count: int, room_id: int = ROOM) -> int:
        """``count`` events (one bag.added each), committed as a creator's changes are; returns
        the last event number."""
        seq = 0
        for _ in range(count):
            product = secrets.randbelow(10**9)
            card = {"product_id": product, "title": "Jacket", "image": None, "skus": []}
            added = await self.store.update(
                room_id, partial(rules.add_to_bag, card=card, now=now_ms())
            )
            seq = added.seq
        return seq

    def viewer(self, user: str, upto: int, room_id: int = ROOM) -> Viewer:
        """A viewer that joined here and got its replay up to ``upto``."""
        viewer = Viewer(KeptOutlet(), room_id, user, "viewer")
        self.hub.join(viewer)
        self.hub.caught_up(viewer, upto)
        return viewer

    async def join(self, user: str, upto: int, room_id: int = ROOM) -> Viewer:
        """A viewer joining as the gateway joins one: the node follows the room first."""
        viewer = Viewer(KeptOutlet(), room_id, user, "viewer")
        self.hub.join(viewer)
        await self.bus.follow(room_id)
        self.hub.caught_up(viewer, upto)
        return viewer

    async def deliver(self, seq: int, room_id: int = ROOM) -> None:
        """Hand the bus event ``seq`` as pub/sub would, read back from the room's log."""
        logged = await self.store.events_between(room_id, seq - 1, seq)
        assert logged is not None, f"event {seq} is not in the log"
        (payload,) = logged
        channel = self.keys.room(room_id).channel.encode()
        await self.bus.dispatch(channel, f"{seq} ".encode() + payload)


@pytest.fixture
async def node(redis: Redis, redis_url: str) -> Node:
    keys = LiveKeys(f"{PREFIX}bus{secrets.token_hex(4)}")  # deleted with the run's keys
    store = RoomStore(redis, keys, log_maxlen=100)
    await store.install()
    hub = Hub(max_buffer=1 << 20, interval=0.01)
    return Node(redis, keys, store, hub, RoomBus(redis_url, keys, store, hub))


@dataclass
class Subscribed:
    task: asyncio.Task[None]
    clients: set[str]  # ids of the bus's connections to the server


@contextlib.asynccontextmanager
async def bus_running(bus: RoomBus) -> AsyncIterator[Subscribed]:
    """The bus, running until the block ends."""
    task = asyncio.create_task(bus.run(asyncio.Event()))
    await asyncio.wait_for(bus.ready.wait(), 10)
    yield Subscribed(task, set())
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def running(node: Node) -> AsyncIterator[Subscribed]:
    """The node's bus, running: it subscribes to a room once a viewer joins it here."""
    async with bus_running(node.bus) as subscribed:
        yield subscribed


async def room_subscribers(redis: Redis, node: Node, kill: bool = False) -> set[str]:
    """This node's bus connections ("<server port>:<client id>"), on every server of a
    cluster; with ``kill``, each is closed by its server, as a network failure would."""
    if isinstance(redis, RedisCluster):
        ports = [n.port for n in redis.get_nodes()]
    else:
        ports = [int(redis.connection_pool.connection_kwargs.get("port", 6379))]
    found = set()
    for port in ports:
        server = Redis(host="127.0.0.1", port=port)
        try:
            for client in await server.client_list(_type="pubsub"):
                if client.get("name") == node.bus.name:
                    found.add(f"{port}:{client['id']}")
                    if kill:
                        await server.client_kill_filter(_id=client["id"])
        finally:
            await server.aclose()
    return found


def kept(viewer: Viewer) -> KeptOutlet:
    assert isinstance(viewer.outlet, KeptOutlet)
    return viewer.outlet


def has_events(viewer: Viewer, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(seqs(kept(viewer))) >= count

    return check


async def test_committed_events_reach_the_viewers_here_once_and_in_order(
    node: Node, running: Subscribed
) -> None:
    start = await node.open_room()
    await node.open_room(ROOM + 1)  # nobody watches it here: the bus is not subscribed to it
    ann, bob = await node.join("ann", start), await node.join("bob", start)
    assert node.bus.following == {ROOM}
    last = await node.add_products(5)
    await node.add_products(3, ROOM + 1)
    wanted = list(range(start + 1, last + 1))
    for viewer in (ann, bob):
        await until(has_events(viewer, len(wanted)), "five events on the bus")
        assert seqs(kept(viewer)) == wanted
        assert {m["type"] for m in kept(viewer).messages()} == {"bag.added"}
    assert node.bus.received == 5


async def test_a_gap_in_the_bus_is_filled_from_the_log_in_order(node: Node) -> None:
    """Nothing is subscribed while the events are committed: pub/sub loses them, the log
    keeps them, and the bus reads what it missed when a later one arrives."""
    start = await node.open_room()
    ann = node.viewer("ann", start)
    last = await node.add_products(4)
    await node.deliver(start + 1)
    await node.deliver(last)  # start + 2 and start + 3 never came over the bus
    assert seqs(kept(ann)) == list(range(start + 1, last + 1))
    await node.deliver(start + 2)  # late after all: already delivered, not sent again
    assert seqs(kept(ann)) == list(range(start + 1, last + 1))


async def test_a_gap_before_the_first_event_heard_here_is_filled_from_the_log(
    node: Node,
) -> None:
    """The room's subscription can start a moment after a joiner's snapshot was read (the
    SSUBSCRIBE and the read go on two connections): the events between are lost by pub/sub,
    and the first event this node hears comes after a gap. The viewers still get them all,
    in order. (A locust auction storm once showed two viewers "4 -> 6".)"""
    start = await node.open_room()
    ann = node.viewer("ann", start)
    last = await node.add_products(3)
    await node.deliver(last)  # start + 1 and start + 2 never came over the bus
    assert seqs(kept(ann)) == list(range(start + 1, last + 1))


async def test_events_the_log_no_longer_has_make_the_viewers_resync(node: Node) -> None:
    start = await node.open_room()
    ann = node.viewer("ann", start)
    await node.add_products(1)
    await node.deliver(start + 1)
    # An event far past the log's end: what lies between can no longer be read.
    channel = node.keys.room(ROOM).channel.encode()
    await node.bus.dispatch(channel, f"{start + 9} ".encode() + b'{"type":"pin"}')
    assert seqs(kept(ann)) == [start + 1]
    assert kept(ann).close_code == CLOSE_RESYNC
    assert not node.hub.is_member(ann)


async def test_a_message_for_one_user_reaches_all_their_connections_and_nobody_else(
    node: Node, running: Subscribed
) -> None:
    start = await node.open_room()
    phone, laptop, bob = [await node.join(u, start) for u in ("ann", "ann", "bob")]
    message: dict[str, Any] = {"type": "hold.granted", "ref": "r1"}
    await node.store.send_to_user(ROOM, "ann", message)
    for viewer in (phone, laptop):
        await until(has_frames(viewer), "ann's message on each of her connections")
        assert kept(viewer).messages() == [message]
    assert kept(bob).frames == []


async def test_a_nudge_reaches_the_gateway_of_a_room_watched_here_and_no_viewer(
    node: Node, running: Subscribed
) -> None:
    """A deal's stock changed (decision 0048): the bus asks the gateway to move the room, and
    sends viewers nothing itself; a room nobody watches here is not asked about."""
    start = await node.open_room()
    await node.open_room(ROOM + 1)
    ann = await node.join("ann", start)
    nudged: list[int] = []
    node.bus.nudged = nudged.append
    await node.store.nudge(ROOM + 1)
    await node.store.nudge(ROOM)

    async def heard() -> bool:
        return nudged == [ROOM]

    await until(heard, "the nudge of the watched room")
    assert node.bus.received == 1
    assert kept(ann).frames == []


async def test_a_broken_subscription_comes_back_and_every_viewer_resyncs(
    node: Node, running: Subscribed
) -> None:
    start = await node.open_room()
    ann = await node.join("ann", start)
    ours = await room_subscribers(node.redis, node, kill=True)
    assert ours
    await until(lambda: dropped(ann), "ann told to resync")
    assert kept(ann).close_code == CLOSE_RESYNC
    again = await node.join("ann", start)  # she reconnects

    async def subscribed_again() -> bool:
        return bool(await room_subscribers(node.redis, node) - ours)

    await until(subscribed_again, "the bus subscribed again")
    last = await node.add_products(2)
    await until(has_events(again, 2), "events over the new subscription")
    assert seqs(kept(again)) == [last - 1, last]


class SlowLink:
    """TCP proxies to the Redis servers that hold every byte a client sends for ``delay``
    seconds (in order) and pass replies straight back: a command is sent long before Redis
    runs it, as on a busy network or server, while a direct connection is served at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.servers: list[asyncio.Server] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def to(self, port: int) -> int:
        """A proxy to the server on ``port``; returns the proxy's port."""

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            pipes = {
                asyncio.create_task(self._pipe(reader, up_writer, self.delay)),
                asyncio.create_task(self._pipe(up_reader, writer, 0.0)),
            }
            self.tasks |= pipes
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                for end in (writer, up_writer):
                    end.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
    ) -> None:
        loop = asyncio.get_running_loop()
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await held.get()
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())  # the link's delay, not a wait
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(send())
        try:
            while data := await reader.read(1 << 16):
                held.put_nowait((loop.time() + delay, data))
                if sender.done():
                    return
        finally:
            sender.cancel()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for server in self.servers:
            await server.wait_closed()


@pytest.fixture
async def slow_running(
    node: Node, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Subscribed]:
    """The node's bus, running, with every byte it sends to Redis held half a second."""
    link = SlowLink(0.5)
    url = redis_url
    if isinstance(node.redis, RedisCluster):
        # The cluster client learns the nodes' addresses from the cluster (its startup nodes
        # are only asked for the map): each is remapped to a proxy of its own.
        proxies = {n.port: await link.to(n.port) for n in node.redis.get_nodes()}

        connect = live.bus.connect

        def slow_connect(url: str, **kwargs: Any) -> Redis:
            client = connect(url, **kwargs)
            assert isinstance(client, RedisCluster)
            client.nodes_manager.address_remap = lambda address: (address[0], proxies[address[1]])
            return client

        monkeypatch.setattr(live.bus, "connect", slow_connect)
    else:
        parts = urlsplit(redis_url)
        assert parts.port is not None
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        netloc += f"127.0.0.1:{await link.to(parts.port)}"
        url = urlunsplit(parts._replace(netloc=netloc))
    node.bus = RoomBus(url, node.keys, node.store, node.hub)
    async with bus_running(node.bus) as subscribed:
        yield subscribed
    await link.close()


async def test_a_room_is_heard_from_the_moment_follow_returns(
    node: Node, slow_running: Subscribed
) -> None:
    """A joiner's snapshot is read once ``follow`` returns, on another connection: Redis must
    have subscribed the bus by then, or the events committed in between are lost by pub/sub
    (and, the joiner still joining, nobody can see the gap). Here the bus's commands reach
    Redis half a second late: an event and a notice published as soon as ``follow`` returned
    must both be heard."""
    start = await node.open_room()
    ann = await node.join("ann", start)  # returns once the room is followed
    last = await node.add_products(1)  # SPUBLISH on the room's events channel
    notice: dict[str, Any] = {"type": "hold.granted", "ref": "r1"}
    await node.redis.publish(node.keys.room(ROOM).notices, b"@ann " + orjson.dumps(notice))

    async def both() -> bool:
        return seqs(kept(ann)) == [last] and notice in kept(ann).messages()

    await until(both, "the event and the notice published once follow returned", within=10)


def has_frames(viewer: Viewer) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(kept(viewer).frames)

    return check


async def dropped(viewer: Viewer) -> bool:
    return kept(viewer).close_code is not None
