"""Payment webhooks (decision 0027; docs/money.md, "Payment webhook contract"): the signature,
then events applied once, in any order, through a real ``livecart serve`` (its own keyspace and
a money pass only at start-up, so nothing but the test delivers or pulls its events), and the
reconciler's pull of the events a lost webhook did not bring. Real Redis (Valkey), real SQL."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import func
from sqlalchemy import select as core_select
from sqlmodel import col, select

from checkout.error_codes import CheckoutErrorCode
from checkout.holds import ReserveRequest
from checkout.keys import Keyspace
from checkout.models import LedgerEntry, MoneyCursor, Order, PaymentEvent, Refund
from checkout.order_sweeper import sweep_orders_once
from checkout.payments import (
    PENDING_REFUNDS_CARD,
    ProviderEvent,
    RefundStatus,
    SandboxProvider,
)
from checkout.refunds import RefundAsk, Refunds, refund_key
from checkout.webhooks import (
    ACTED_ON,
    EventOutcome,
    SignatureRefused,
    apply_event,
    cursor_name,
    pull_events,
    sign,
    verify,
)
from kernel.db import Database
from tests.conftest import PREFIX, SellerAccount, start_server, viewer_headers
from tests.harness import Server, stop_server
from tests.helpers import assert_error, checkout, make_listing, orders_seen_by, poll, reserve
from tests.stores import Stores, drain
from web.auth import GuestSessions
from web.settings import Settings, webhook_secret_from

SECRET, OLD_SECRET = "whsec_" + secrets.token_hex(16), "whsec_old_" + secrets.token_hex(16)
HOOK_PREFIX = PREFIX + "wh"
TOLERANCE_S = 300
BODY = b'{"id":"evt_1","type":"refund.updated","created_ms":1,"data":{"object":{}}}'
NOW = 1_800_000_000


# -- the signature --------------------------------------------------------------------------------


def refusal(header: str, secrets_: tuple[str, ...] = (SECRET,), now_s: int = NOW) -> str:
    with pytest.raises(SignatureRefused) as refused:
        verify(header, BODY, secrets_, now_s, TOLERANCE_S)
    return refused.value.code


def test_a_signed_body_is_verified() -> None:
    assert verify(sign(BODY, SECRET, NOW), BODY, (SECRET,), NOW, TOLERANCE_S) == NOW
    # At the edge of the tolerance, either way, still good.
    for at in (NOW - TOLERANCE_S, NOW + TOLERANCE_S):
        assert verify(sign(BODY, SECRET, at), BODY, (SECRET,), NOW, TOLERANCE_S) == at


def test_another_secret_another_body_or_another_time_is_refused() -> None:
    assert refusal(sign(BODY, "whsec_other", NOW)) == CheckoutErrorCode.INVALID_SIGNATURE
    tampered = BODY.replace(b"refund.updated", b"refund.created")
    with pytest.raises(SignatureRefused) as refused:
        verify(sign(BODY, SECRET, NOW), tampered, (SECRET,), NOW, TOLERANCE_S)
    assert refused.value.code == CheckoutErrorCode.INVALID_SIGNATURE
    # An old signature given a fresh t (to get past the tolerance) no longer matches: t is signed.
    old = sign(BODY, SECRET, NOW - 3600)
    fresh_t = old.replace(f"t={NOW - 3600}", f"t={NOW}")
    assert refusal(fresh_t) == CheckoutErrorCode.INVALID_SIGNATURE
    assert refusal(sign(BODY, SECRET, NOW), secrets_=()) == CheckoutErrorCode.INVALID_SIGNATURE


def test_a_signature_outside_the_tolerance_has_expired_either_way() -> None:
    late = sign(BODY, SECRET, NOW - TOLERANCE_S - 1)
    early = sign(BODY, SECRET, NOW + TOLERANCE_S + 1)  # a clock ahead, or a forged future t
    assert refusal(late) == CheckoutErrorCode.SIGNATURE_EXPIRED
    assert refusal(early) == CheckoutErrorCode.SIGNATURE_EXPIRED
    # A forgery is invalid whatever its t: "expired" is said only of a genuine signature.
    assert refusal(sign(BODY, "whsec_other", NOW - 3600)) == CheckoutErrorCode.INVALID_SIGNATURE


def test_a_previous_secret_and_one_of_several_v1_are_accepted() -> None:
    rotated = (SECRET, OLD_SECRET)
    assert verify(sign(BODY, OLD_SECRET, NOW), BODY, rotated, NOW, TOLERANCE_S) == NOW
    good = sign(BODY, SECRET, NOW).split(",v1=")[1]
    other = sign(BODY, "whsec_other", NOW).split(",v1=")[1]
    several = f"t={NOW},v1={other},v1={good},v0=ignored"
    assert verify(several, BODY, rotated, NOW, TOLERANCE_S) == NOW
    assert refusal(f"t={NOW},v1={other},v1={'0' * 64}") == CheckoutErrorCode.INVALID_SIGNATURE


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "t=,v1=ab",
        "t=abc,v1=ab",
        "t=-5,v1=ab",
        "t=1e9,v1=ab",
        f"t={'9' * 40},v1=ab",
        "v1=ab",  # no t
        f"t={NOW}",  # no v1
        f"t={NOW},v0=ab",  # no v1: another scheme only
        "t=١٨٠٠٠٠٠٠٠٠,v1=ab",  # digits, but not ASCII ones
    ],
)
def test_a_malformed_header_is_an_invalid_signature(header: str) -> None:
    assert refusal(header) == CheckoutErrorCode.INVALID_SIGNATURE


def test_the_default_webhook_secret_is_derived_from_the_secret_keys() -> None:
    settings = Settings(secret_key="new-key", previous_secret_keys=("oldest", "old"))
    derived = settings.webhook_secrets
    assert derived == tuple(webhook_secret_from(k) for k in ("new-key", "old", "oldest"))
    assert "new-key" not in derived[0]  # the secret key itself is never handed out
    # Every node with the same key derives the same secret; another key, another secret.
    assert Settings(secret_key="new-key").webhook_secrets[0] == derived[0]
    assert Settings(secret_key="other").webhook_secrets[0] != derived[0]
    chosen = Settings.from_env(
        {
            "LIVECART_SECRET_KEY": "new-key",
            "LIVECART_WEBHOOK_SECRET": SECRET,
            "LIVECART_PREVIOUS_WEBHOOK_SECRETS": f"{OLD_SECRET}, whsec_older",
        }
    )
    assert chosen.webhook_secrets == (SECRET, OLD_SECRET, "whsec_older")
    assert Settings().webhook_tolerance_s == 300


# -- delivered over HTTP ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def webhook_server(
    redis_url: str, database_url: str, redis: Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A node of its own: its sandbox is read by no other server, and its money pass runs only at
    start-up, so each event reaches it only when a test delivers it. ``redis`` is asked for so
    its teardown deletes this server's keys too (same prefix)."""
    running = start_server(
        redis_url,
        database_url,
        tmp_path_factory.mktemp("webhooks") / "server.log",
        LIVECART_REDIS_PREFIX=HOOK_PREFIX,
        LIVECART_MONEY_INTERVAL_S="86400",
        LIVECART_WEBHOOK_SECRET=SECRET,
        LIVECART_PREVIOUS_WEBHOOK_SECRETS=OLD_SECRET,
    )
    yield running
    stop_server(running)


@pytest.fixture
async def hook_http(webhook_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=webhook_server.base_url, timeout=60) as client:
        yield client


@pytest.fixture
def sandbox(redis: Redis) -> SandboxProvider:
    return SandboxProvider(redis, Keyspace(HOOK_PREFIX).sandbox)


def envelope(event: ProviderEvent) -> bytes:
    """The event as the provider POSTs it."""
    body = {
        "id": event.id,
        "type": event.type,
        "created_ms": event.created_ms,
        "data": {"object": event.object},
    }
    return orjson.dumps(body)


async def post(http: httpx.AsyncClient, body: bytes, header: str | None = None) -> httpx.Response:
    signature = sign(body, SECRET, int(time.time())) if header is None else header
    return await http.post(
        "/api/payments/webhook",
        content=body,
        headers={"Content-Type": "application/json", "Livecart-Signature": signature},
    )


async def deliver(http: httpx.AsyncClient, event: ProviderEvent) -> dict[str, Any]:
    answer = await post(http, envelope(event))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def pending_refund(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> dict[str, Any]:
    """A paid order (the card whose refunds stay pending) refunded in full over HTTP: the
    refund as the API answers it, pending, with its provider id."""
    item = await make_listing(http, seller)
    _, buyer = viewer_headers(sessions)
    hold = await reserve(http, item.deal_id, buyer)
    paid = await checkout(http, hold["id"], buyer, card=PENDING_REFUNDS_CARD, key="pay")
    assert paid.status_code == 201, paid.text
    orders = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    assert len(orders) == 1, "the pipeline did not persist the order within 10 s"
    refunded = await http.post(
        f"/api/orders/{orders[0]['id']}/refund",
        headers={**seller.headers, "Idempotency-Key": "wh-" + secrets.token_hex(4)},
        json={"reason": "webhook test"},
    )
    assert refunded.status_code == 200, refunded.text
    refund: dict[str, Any] = refunded.json()["refund"]
    assert refund["status"] == RefundStatus.PENDING and refund["provider_ref"]
    return refund


async def events_of(sandbox: SandboxProvider, *object_ids: str) -> list[ProviderEvent]:
    return [e for e in await sandbox.events("") if e.object.get("id") in object_ids]


async def refund_row(db: Database, refund_id: int) -> Refund:
    async with db.session() as session:
        row = await session.get(Refund, refund_id)
        assert row is not None
        return row


async def order_row(db: Database, order_id: int) -> Order:
    async with db.session() as session:
        row = await session.get(Order, order_id)
        assert row is not None
        return row


async def ledger_lines(db: Database, txn: str) -> int:
    async with db.session() as session:
        conn = await session.connection()
        found = await conn.execute(
            core_select(func.count()).select_from(LedgerEntry).where(col(LedgerEntry.txn) == txn)
        )
        return int(found.scalar_one())


async def recorded(db: Database, event_id: str) -> bool:
    async with db.session() as session:
        return await session.get(PaymentEvent, event_id) is not None


@pytest.mark.storage
async def test_a_delivered_event_finishes_a_pending_refund_once_however_often_it_comes(
    hook_http: httpx.AsyncClient,
    sandbox: SandboxProvider,
    db: Database,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    refund = await pending_refund(hook_http, seller, sessions)
    assert await sandbox.finish_refund(refund["provider_ref"], RefundStatus.SUCCEEDED)
    [updated] = [
        e for e in await events_of(sandbox, refund["provider_ref"]) if e.object["version"] == 2
    ]
    assert updated.type == "refund.updated"
    # The provider sends at least once: eight deliveries at once are one application.
    answers = await asyncio.gather(*(deliver(hook_http, updated) for _ in range(8)))
    assert (
        sorted(answers, key=len)
        == [{"received": True}] + [{"received": True, "replayed": True}] * 7
    )
    row = await refund_row(db, refund["id"])
    assert (row.status, row.version) == (RefundStatus.SUCCEEDED, 2)
    assert await ledger_lines(db, f"refund:{row.id}:succeeded") == 2
    # Again later: still a replay, and nothing moves.
    assert await deliver(hook_http, updated) == {"received": True, "replayed": True}
    again = await refund_row(db, refund["id"])
    assert again.updated_ms == row.updated_ms
    assert await ledger_lines(db, f"refund:{row.id}:succeeded") == 2


@pytest.mark.storage
async def test_a_refused_signature_records_nothing_and_a_rotated_secret_still_works(
    hook_http: httpx.AsyncClient,
    sandbox: SandboxProvider,
    db: Database,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    refund = await pending_refund(hook_http, seller, sessions)
    assert await sandbox.finish_refund(refund["provider_ref"], RefundStatus.SUCCEEDED)
    [updated] = [
        e for e in await events_of(sandbox, refund["provider_ref"]) if e.object["version"] == 2
    ]
    body = envelope(updated)
    now = int(time.time())
    forged = body.replace(b'"succeeded"', b'"failed"')
    refusals = [
        (await post(hook_http, body, sign(body, "whsec_guess", now)), "invalid_signature"),
        (await post(hook_http, forged, sign(body, SECRET, now)), "invalid_signature"),
        (await post(hook_http, body, ""), "invalid_signature"),
        (await post(hook_http, body, f"t={now}"), "invalid_signature"),
        (await post(hook_http, body, sign(body, SECRET, now - 301)), "signature_expired"),
        (await post(hook_http, body, sign(body, SECRET, now + 400)), "signature_expired"),
    ]
    for answer, code in refusals:
        assert_error(answer, 400, code)
    assert not await recorded(db, updated.id)
    assert (await refund_row(db, refund["id"])).status == RefundStatus.PENDING
    # Signed with the previous secret (the provider has not switched yet): accepted, applied.
    answer = await post(hook_http, body, sign(body, OLD_SECRET, now))
    assert answer.status_code == 200 and answer.json() == {"received": True}, answer.text
    assert await recorded(db, updated.id)
    assert (await refund_row(db, refund["id"])).status == RefundStatus.SUCCEEDED


@pytest.mark.storage
async def test_a_signed_body_that_is_no_event_is_refused_and_an_unknown_type_only_recorded(
    hook_http: httpx.AsyncClient, db: Database
) -> None:
    assert_error(await post(hook_http, b'{"id": "evt_'), 400, "malformed_json")
    no_object = orjson.dumps({"id": "evt_x" + secrets.token_hex(4), "type": "t", "created_ms": 1})
    assert_error(await post(hook_http, no_object), 422, "invalid_request")
    assert not await recorded(db, orjson.loads(no_object)["id"])
    unknown = ProviderEvent(
        "evt_u" + secrets.token_hex(6), "customer.created", {"id": "cus_1", "version": 1}, 1
    )
    assert await deliver(hook_http, unknown) == {"received": True}
    assert await recorded(db, unknown.id)
    assert await deliver(hook_http, unknown) == {"received": True, "replayed": True}


@pytest.mark.storage
async def test_a_stale_snapshot_changes_nothing(
    hook_http: httpx.AsyncClient,
    sandbox: SandboxProvider,
    db: Database,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    # A pending refund the server knows at version 1 (the provider's first answer): a snapshot
    # below it, even one saying failed, changes nothing.
    waiting = await pending_refund(hook_http, seller, sessions)
    before = await refund_row(db, waiting["id"])
    assert before.version == 1
    below = ProviderEvent(
        "evt_stale" + secrets.token_hex(6),
        "refund.updated",
        {"id": waiting["provider_ref"], "key": before.key, "status": "failed", "version": 0},
        1,
    )
    assert await deliver(hook_http, below) == {"received": True}
    after = await refund_row(db, waiting["id"])
    assert (after.status, after.version, after.updated_ms) == (
        RefundStatus.PENDING,
        1,
        before.updated_ms,
    )
    assert (await order_row(db, before.order_id)).refunded == before.amount
    assert await ledger_lines(db, f"refund:{before.id}:failed") == 0
    # Finished at version 2; the version-1 snapshot (refund.created, pending) delivered late.
    assert await sandbox.finish_refund(waiting["provider_ref"], RefundStatus.SUCCEEDED)
    created, updated = await events_of(sandbox, waiting["provider_ref"])
    assert (created.type, created.object["version"]) == ("refund.created", 1)
    assert await deliver(hook_http, updated) == {"received": True}
    done = await refund_row(db, waiting["id"])
    assert await deliver(hook_http, created) == {"received": True}  # new to us, but stale
    late = await refund_row(db, waiting["id"])
    assert (late.status, late.version, late.updated_ms) == (
        RefundStatus.SUCCEEDED,
        2,
        done.updated_ms,
    )
    assert await ledger_lines(db, f"refund:{done.id}:succeeded") == 2


@pytest.mark.storage
async def test_events_in_any_order_end_in_the_same_state(
    hook_http: httpx.AsyncClient,
    sandbox: SandboxProvider,
    db: Database,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    refund = await pending_refund(hook_http, seller, sessions)
    row = await refund_row(db, refund["id"])
    charge = (await order_row(db, row.order_id)).payment_ref
    # The provider refuses the refund after all; its refund.updated arrives before anything.
    assert await sandbox.finish_refund(refund["provider_ref"], RefundStatus.FAILED)
    events = await events_of(sandbox, refund["provider_ref"], charge)
    assert [e.type for e in events] == [
        "charge.succeeded",
        "charge.refunded",
        "refund.created",
        "charge.refunded",
        "refund.updated",
    ]
    assert await deliver(hook_http, events[-1]) == {"received": True}
    failed = await refund_row(db, refund["id"])
    assert failed.status == RefundStatus.FAILED
    assert (await order_row(db, row.order_id)).refunded == 0  # the grant was taken back
    assert await ledger_lines(db, f"refund:{row.id}:failed") > 0
    # The rest, newest first: each new to us, none changes anything.
    for event in reversed(events[:-1]):
        assert await deliver(hook_http, event) == {"received": True}
    after = await refund_row(db, refund["id"])
    assert (after.status, after.version, after.updated_ms) == (
        RefundStatus.FAILED,
        2,
        failed.updated_ms,
    )
    assert (await order_row(db, row.order_id)).refunded == 0
    assert await ledger_lines(db, f"refund:{row.id}:succeeded") == 0


# -- the reconciler's pull ------------------------------------------------------------------------


async def sold_order(stores: Stores, provider: SandboxProvider) -> Order:
    """One unit of a live deal, charged by ``provider`` with the card whose refunds stay pending,
    sold, and persisted by the pipeline."""
    deal = await stores.live_deal(quantity=10)
    buyer = secrets.token_hex(6)
    hold = await stores.holds.reserve(deal.id or 0, ReserveRequest(buyer, 1))
    terms = await stores.holds.begin_payment(hold.id, buyer, "a1")
    charge = await provider.charge(
        key=f"{hold.id}:k", amount=terms.amount, currency="USD", card=PENDING_REFUNDS_CARD
    )
    await stores.holds.commit(hold.id, buyer, charge.id, "a1")
    await drain(stores.pipeline())
    async with stores.db.session() as session:
        found = await session.exec(select(Order).where(col(Order.hold_id) == hold.id))
        return found.one()


async def cursor_of(db: Database, keyspace: str) -> str | None:
    async with db.session() as session:
        row = await session.get(MoneyCursor, cursor_name(keyspace))
        return None if row is None else row.value


@pytest.mark.storage
async def test_the_reconciler_pulls_the_events_no_webhook_brought(
    stores: Stores, private_keys: Keyspace
) -> None:
    # A sandbox of this test's own, so its event list and cursor are this test's alone.
    mine = Keyspace(f"{private_keys.prefix}-{secrets.token_hex(4)}")
    provider = SandboxProvider(stores.redis, mine.sandbox)
    refunds = Refunds(stores.db, stores.holds, provider, mine.prefix)
    first, second = [await sold_order(stores, provider) for _ in range(2)]
    granted = [
        await refunds.refund(o.id or 0, RefundAsk(key=refund_key(o.id or 0, "k"), actor="t"))
        for o in (first, second)
    ]
    assert [r.status for r in granted] == [RefundStatus.PENDING] * 2
    for refund in granted:
        assert await provider.finish_refund(refund.provider_ref, RefundStatus.SUCCEEDED)
    everything = await provider.events("")
    # One of the refunds' webhooks arrived; the other was lost.
    [delivered] = [
        e
        for e in everything
        if e.type == "refund.updated" and e.object["id"] == granted[0].provider_ref
    ]
    assert await apply_event(stores.db, refunds, delivered) == EventOutcome.APPLIED
    assert (await refunds.get(granted[1].id or 0)).status == RefundStatus.PENDING
    # The order rules' pass (now=0: no deadline is due; the refunds are not stale) pulls.
    report = await sweep_orders_once(refunds, lease_ms=60_000, now=0)
    assert report.refunds_finished == 0 and report.cancelled == 0
    # Every event acted on but the one already delivered (a charge's are skipped, not recorded).
    acted = [e for e in everything if e.type in ACTED_ON]
    assert report.events == len(acted) - 1
    lost = await refunds.get(granted[1].id or 0)
    assert (lost.status, lost.version) == (RefundStatus.SUCCEEDED, 2)
    assert await ledger_lines(stores.db, f"refund:{lost.id}:succeeded") == 2
    assert await cursor_of(stores.db, mine.prefix) == everything[-1].id
    # Nothing new: nothing applied, the cursor stays.
    assert await pull_events(stores.db, refunds, provider) == 0
    assert await cursor_of(stores.db, mine.prefix) == everything[-1].id
    # A later event is read from the cursor on, alone.
    third = await sold_order(stores, provider)
    late = await refunds.refund(
        third.id or 0, RefundAsk(key=refund_key(third.id or 0, "k"), actor="t")
    )
    await provider.finish_refund(late.provider_ref, RefundStatus.FAILED)
    newer = await provider.events(everything[-1].id)
    assert await pull_events(stores.db, refunds, provider) == len(
        [e for e in newer if e.type in ACTED_ON]
    )
    assert (await refunds.get(late.id or 0)).status == RefundStatus.FAILED
    assert await cursor_of(stores.db, mine.prefix) == newer[-1].id


@pytest.mark.storage
async def test_concurrent_pulls_apply_each_event_once(
    stores: Stores, private_keys: Keyspace
) -> None:
    mine = Keyspace(f"{private_keys.prefix}-{secrets.token_hex(4)}")
    provider = SandboxProvider(stores.redis, mine.sandbox)
    refunds = Refunds(stores.db, stores.holds, provider, mine.prefix)
    order = await sold_order(stores, provider)
    refund = await refunds.refund(
        order.id or 0, RefundAsk(key=refund_key(order.id or 0, "k"), actor="t")
    )
    await provider.finish_refund(refund.provider_ref, RefundStatus.SUCCEEDED)
    everything = await provider.events("")
    # Several nodes' reconcilers at once: between them, each event is new exactly once.
    pulled = await asyncio.gather(*(pull_events(stores.db, refunds, provider) for _ in range(5)))
    assert sum(pulled) == len([e for e in everything if e.type in ACTED_ON])
    assert (await refunds.get(refund.id or 0)).status == RefundStatus.SUCCEEDED
    assert await ledger_lines(stores.db, f"refund:{refund.id}:succeeded") == 2
    assert await cursor_of(stores.db, mine.prefix) == everything[-1].id
