"""Prometheus metrics for one node: reservations and checkouts by outcome, orders persisted,
the order pipeline's lag (entries not yet in SQL, read from Redis at scrape time), and the
realtime gateway (viewers connected here, viewers dropped for being too slow, room events
received from the bus)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from checkout.pipeline import PipelineStats
from live.bus import RoomBus
from live.hub import Hub
from live.media.broadcasts import Broadcasts


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reservations = Counter(
            "livecart_reservations",
            "Reservation attempts by result",
            ["result"],
            registry=self.registry,
        )
        self.checkouts = Counter(
            "livecart_checkouts", "Checkout attempts by result", ["result"], registry=self.registry
        )
        self.orders_persisted = Gauge(
            "livecart_orders_persisted",
            "Orders written to SQL by this node's pipeline",
            registry=self.registry,
        )
        self.dead_lettered = Gauge(
            "livecart_orders_dead_lettered",
            "Order entries moved to a dead-letter stream",
            registry=self.registry,
        )
        self.pipeline_lag = Gauge(
            "livecart_pipeline_lag",
            "order.paid entries not yet persisted, over all deals",
            registry=self.registry,
        )
        self.seller_auth = Counter(
            "livecart_seller_auth",
            "Seller requests authenticated, by where who acts came from (cache or sql)",
            ["source"],
            registry=self.registry,
        )
        self.reserved_ok = self.reservations.labels(result="ok")
        self.ws_viewers = Gauge(
            "livecart_ws_viewers", "Viewers connected to this node", registry=self.registry
        )
        self.ws_rooms = Gauge(
            "livecart_ws_rooms", "Rooms with viewers on this node", registry=self.registry
        )
        self.ws_dropped = Gauge(
            "livecart_ws_dropped_slow",
            "Viewers dropped (close 4000) because their send buffer overflowed",
            registry=self.registry,
        )
        self.webrtc_peers = Gauge(
            "livecart_webrtc_peers",
            "WebRTC peer connections open on this node",
            registry=self.registry,
        )
        self.video_viewers = Gauge(
            "livecart_video_viewers", "WHEP viewers on this node", registry=self.registry
        )
        self.video_publishers = Gauge(
            "livecart_video_publishers", "WHIP publishers on this node", registry=self.registry
        )
        self.video_keyframes = Gauge(
            "livecart_video_keyframes",
            "Keyframes encoded for the streams on this node (periodic and asked for)",
            registry=self.registry,
        )
        self.asyncio_tasks = Gauge(
            "livecart_asyncio_tasks",
            "Tasks alive in this node's event loop",
            registry=self.registry,
        )
        self.bus_events = Gauge(
            "livecart_bus_messages",
            "Room messages this node took from the bus for its viewers",
            registry=self.registry,
        )
        self.room_moves = Gauge(
            "livecart_room_moves",
            "Moves of watched rooms (deals along the clock, stock read) by tick or nudge",
            registry=self.registry,
        )

    def render_media(self, media: Broadcasts) -> None:
        self.webrtc_peers.set(media.peers)
        self.video_viewers.set(media.viewers)
        self.video_publishers.set(media.publishers)
        self.video_keyframes.set(media.keyframes)
        self.asyncio_tasks.set(len(asyncio.all_tasks()))

    def render_gateway(self, hub: Hub, bus: RoomBus, moves: int) -> None:
        counts = hub.counts()
        self.room_moves.set(moves)
        self.ws_viewers.set(sum(counts.values()))
        self.ws_rooms.set(len(counts))
        self.ws_dropped.set(hub.dropped)
        self.bus_events.set(bus.received)

    def render(self, stats: PipelineStats | None, lag: int) -> bytes:
        if stats is not None:
            self.orders_persisted.set(stats.persisted)
            self.dead_lettered.set(stats.dead_lettered)
        self.pipeline_lag.set(lag)
        return generate_latest(self.registry)
