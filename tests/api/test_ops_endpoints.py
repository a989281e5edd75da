"""The ops endpoints over HTTP: the OpenAPI document, /readyz and the reservation counter in
/metrics."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import Headers, Listing, reserve

pytestmark = pytest.mark.storage


async def test_openapi_lists_reserve_and_checkout(http: httpx.AsyncClient) -> None:
    r = await http.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "post" in paths["/api/deals/{deal_id}/reserve"]
    checkout_op = paths["/api/holds/{hold_id}/checkout"]["post"]
    assert {p["name"] for p in checkout_op["parameters"]} == {"hold_id", "Idempotency-Key"}


async def test_readyz_reports_every_check_ok(http: httpx.AsyncClient) -> None:
    r = await http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "checks": {"redis": "ok", "database": "ok"}}


def reservations_ok(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith('livecart_reservations_total{result="ok"}'):
            return float(line.split()[-1])
    return 0.0


async def test_metrics_count_reservations(
    http: httpx.AsyncClient, live: Listing, buyer: Headers
) -> None:
    before = reservations_ok((await http.get("/metrics")).text)
    await reserve(http, live.deal_id, buyer)
    r = await http.get("/metrics")
    assert r.status_code == 200
    assert "livecart_reservations_total" in r.text
    assert reservations_ok(r.text) == before + 1
