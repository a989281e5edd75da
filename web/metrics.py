"""Prometheus metrics for one node: reservations and checkouts by outcome, orders persisted,
and the order pipeline's lag (entries not yet in SQL), read from Redis at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from checkout.pipeline import PipelineStats


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
        self.reserved_ok = self.reservations.labels(result="ok")

    def render(self, stats: PipelineStats | None, lag: int) -> bytes:
        if stats is not None:
            self.orders_persisted.set(stats.persisted)
            self.dead_lettered.set(stats.dead_lettered)
        self.pipeline_lag.set(lag)
        return generate_latest(self.registry)
