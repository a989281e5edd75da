"""Checkout over HTTP against the sandbox ledger: an approved card sells the hold, a replayed
Idempotency-Key answers the same and charges once, a failed or invalid payment keeps the hold,
and a foreign, released or malformed hold charges nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from checkout.payments import Charge, ChargeStatus, SandboxProvider
from tests.conftest import viewer_headers
from tests.helpers import (
    CARD_DECLINED,
    CARD_NO_FUNDS,
    CARD_OK,
    DEAL_PRICE,
    Headers,
    Listing,
    assert_error,
    charges_for,
    checkout,
    deal_stock,
    hold_state,
)
from web.auth import GuestSessions

pytestmark = pytest.mark.storage


@dataclass
class AtCheckout:
    """A buyer at checkout: their hold of two units of the live deal, the HTTP client they pay
    through, and the sandbox ledger that records the charges."""

    http: httpx.AsyncClient
    live: Listing
    buyer: Headers
    hold: dict[str, Any]
    ledger: SandboxProvider

    @property
    def hold_id(self) -> str:
        hold_id: str = self.hold["id"]
        return hold_id

    async def pay(self, *, card: str = CARD_OK, key: str) -> httpx.Response:
        return await checkout(self.http, self.hold_id, self.buyer, card=card, key=key)

    async def release(self) -> httpx.Response:
        return await self.http.delete(f"/api/holds/{self.hold_id}", headers=self.buyer)

    async def charges(self) -> list[Charge]:
        return await charges_for(self.ledger, self.hold_id)

    async def hold_state(self) -> str:
        return await hold_state(self.http, self.hold_id, self.buyer)

    async def stock(self) -> dict[str, int]:
        return await deal_stock(self.http, self.live.deal_id)


@pytest.fixture
def sale(
    http: httpx.AsyncClient,
    live: Listing,
    buyer: Headers,
    hold: dict[str, Any],
    ledger: SandboxProvider,
) -> AtCheckout:
    return AtCheckout(http, live, buyer, hold, ledger)


async def test_approved_card_sells_the_hold(
    sale: AtCheckout,
) -> None:
    r = await sale.pay(key="pay-1")
    assert r.status_code == 201, r.text
    assert "Idempotent-Replayed" not in r.headers
    order = r.json()["order"]
    (charge,) = await sale.charges()
    assert order == {
        "hold_id": sale.hold_id,
        "status": "paid",
        "qty": 2,
        "unit_price": DEAL_PRICE,
        "amount": 2 * DEAL_PRICE,
        "currency": "USD",
        "payment_ref": charge.id,
    }
    assert (charge.status, charge.amount, charge.refunded) == (
        ChargeStatus.APPROVED,
        2 * DEAL_PRICE,
        False,
    )
    assert await sale.hold_state() == "sold"
    assert await sale.stock() == {"available": 8, "held": 0, "sold": 2}


async def test_replay_returns_the_same_response_and_charges_once(
    sale: AtCheckout,
) -> None:
    first = await sale.pay(key="pay-1")
    replay = await sale.pay(key="pay-1")
    assert first.status_code == replay.status_code == 201
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(await sale.charges()) == 1
    assert await sale.stock() == {"available": 8, "held": 0, "sold": 2}


async def test_same_key_with_another_body_is_refused(
    http: httpx.AsyncClient, buyer: Headers, hold: dict[str, Any], ledger: SandboxProvider
) -> None:
    first = await checkout(http, hold["id"], buyer, key="pay-1")
    assert first.status_code == 201, first.text
    r = await checkout(http, hold["id"], buyer, card=CARD_DECLINED, key="pay-1")
    assert_error(r, 422, "idempotency_key_reused")
    assert len(await charges_for(ledger, hold["id"])) == 1


@pytest.mark.parametrize(
    "key_header",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Idempotency-Key": ""}, id="empty"),
        pytest.param({"Idempotency-Key": "k" * 129}, id="too-long"),
    ],
)
async def test_checkout_needs_an_idempotency_key(
    sale: AtCheckout,
    key_header: Headers,
) -> None:
    r = await sale.http.post(
        f"/api/holds/{sale.hold_id}/checkout",
        headers={**sale.buyer, **key_header},
        json={"card": CARD_OK},
    )
    assert_error(r, 422, "idempotency_key_required")
    assert await sale.charges() == []
    assert await sale.hold_state() == "held"
    assert await sale.stock() == {"available": 8, "held": 2, "sold": 0}


@pytest.mark.parametrize(
    ("card", "code"),
    [
        pytest.param(CARD_DECLINED, "card_declined", id="declined"),
        pytest.param(CARD_NO_FUNDS, "insufficient_funds", id="insufficient-funds"),
    ],
)
async def test_failed_payment_keeps_the_hold_and_a_new_key_can_pay(
    sale: AtCheckout,
    card: str,
    code: str,
) -> None:
    failed = await sale.pay(card=card, key="try-1")
    assert_error(failed, 402, code)
    assert await sale.hold_state() == "held"
    assert await sale.stock() == {"available": 8, "held": 2, "sold": 0}

    replay = await sale.pay(card=card, key="try-1")
    assert (replay.status_code, replay.content) == (402, failed.content)

    paid = await sale.pay(card=CARD_OK, key="try-2")
    assert paid.status_code == 201, paid.text
    statuses = sorted(c.status.value for c in await sale.charges())
    assert statuses == sorted([code, ChargeStatus.APPROVED.value])
    assert await sale.stock() == {"available": 8, "held": 0, "sold": 2}


@pytest.mark.parametrize(
    ("card", "code"),
    [
        pytest.param("4111111111111111", "invalid_card", id="unknown-card"),
        pytest.param("4242", "invalid_request", id="too-short"),
        pytest.param(4242424242424242, "invalid_request", id="number-not-string"),
    ],
)
async def test_invalid_card_charges_nothing_and_leaves_the_hold_held(
    sale: AtCheckout,
    card: Any,
    code: str,
) -> None:
    r = await sale.http.post(
        f"/api/holds/{sale.hold_id}/checkout",
        headers={**sale.buyer, "Idempotency-Key": "k"},
        json={"card": card},
    )
    assert_error(r, 422, code)
    assert await sale.charges() == []
    assert await sale.hold_state() == "held"
    # Still the buyer's to give back, which a hold stuck mid-payment would refuse.
    assert (await sale.release()).status_code == 204
    assert await sale.stock() == {"available": 10, "held": 0, "sold": 0}


async def test_unknown_sandbox_card_is_invalid_card(
    http: httpx.AsyncClient, buyer: Headers, hold: dict[str, Any]
) -> None:
    r = await checkout(http, hold["id"], buyer, card="4111111111111111", key="k")
    assert_error(r, 422, "invalid_card")
    paid = await checkout(http, hold["id"], buyer, key="k")  # the key was not used up
    assert paid.status_code == 201, paid.text


async def test_foreign_hold_is_404_and_charges_nothing(
    http: httpx.AsyncClient,
    live: Listing,
    buyer: Headers,
    hold: dict[str, Any],
    sessions: GuestSessions,
    ledger: SandboxProvider,
) -> None:
    _, stranger = viewer_headers(sessions)
    assert_error(await checkout(http, hold["id"], stranger, key="k"), 404, "hold_not_found")
    assert_error(
        await http.get(f"/api/holds/{hold['id']}", headers=stranger), 404, "hold_not_found"
    )
    assert_error(
        await http.delete(f"/api/holds/{hold['id']}", headers=stranger), 404, "hold_not_found"
    )
    assert await charges_for(ledger, hold["id"]) == []
    assert await hold_state(http, hold["id"], buyer) == "held"
    assert await deal_stock(http, live.deal_id) == {"available": 8, "held": 2, "sold": 0}


async def test_released_hold_cannot_be_paid(
    sale: AtCheckout,
) -> None:
    released = await sale.release()
    assert released.status_code == 204
    assert await sale.stock() == {"available": 10, "held": 0, "sold": 0}
    assert_error(await sale.pay(key="k"), 409, "hold_released")
    assert await sale.charges() == []
    assert await sale.hold_state() == "released"
    assert await sale.stock() == {"available": 10, "held": 0, "sold": 0}


@pytest.mark.parametrize(
    "hold_id", ["abc", "1-x", "-1", "1-", "1-2-3", "\u00b2-1", "9" * 41, "1-" + "9" * 39]
)
async def test_malformed_hold_id_is_404(
    http: httpx.AsyncClient, buyer: Headers, hold_id: str, ledger: SandboxProvider
) -> None:
    charges_before = len(await ledger.charges())
    assert_error(await checkout(http, hold_id, buyer, key="k"), 404, "hold_not_found")
    assert_error(await http.get(f"/api/holds/{hold_id}", headers=buyer), 404, "hold_not_found")
    assert_error(await http.delete(f"/api/holds/{hold_id}", headers=buyer), 404, "hold_not_found")
    assert len(await ledger.charges()) == charges_before


async def test_concurrent_replays_charge_once(
    sale: AtCheckout,
) -> None:
    responses = await asyncio.gather(*(sale.pay(key="storm") for _ in range(20)))
    paid = [r for r in responses if r.status_code == 201]
    busy = [r for r in responses if r.status_code == 409]
    assert len(paid) + len(busy) == 20, [r.text for r in responses]
    assert paid
    assert len({r.content for r in paid}) == 1
    for r in busy:
        assert_error(r, 409, "request_in_progress")
    assert len(await sale.charges()) == 1
    assert await sale.stock() == {"available": 8, "held": 0, "sold": 2}
