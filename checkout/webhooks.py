"""Payment webhooks (decision 0027, section 1; docs/money.md, "Payment webhook contract"): the
signature that says a body came from the provider, and applying an event exactly once.

An event is recorded in ``payment_events`` (key: its id) in the same SQL transaction that applies
it, so a replay (the provider sends at least once) finds the row and changes nothing, and a
failure records nothing (the provider sends it again). Events arrive in any order: each carries
its object whole, and the local row is guarded by the object's ``version`` and by its state
moving only forward, so a late or stale snapshot changes nothing.

Webhooks are the fast path; the reconciler is the guarantee: ``pull_events`` reads the provider's
event list after a cursor kept in SQL and applies each through the same function, so a lost
webhook costs time, not money.

A dispute can come before its order: the charge is made, then the pipeline writes the order a
moment later (the sandbox's dispute card disputes at once). Such an event is deferred, recorded
nowhere: the webhook answers 503 so the provider sends it again, and ``pull_events`` keeps its
cursor before it. Past ``ORDER_WAIT_MS`` a charge no order has is not livecart's to act on (a
lapsed hold's): the event is recorded only.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select as core_select
from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from checkout import disputes
from checkout.error_codes import CheckoutErrorCode
from checkout.models import MoneyCursor, PaymentEvent, Refund
from checkout.payments import PaymentProvider, ProviderEvent, RefundStatus
from checkout.refunds import Refunds, write_outcome
from kernel.clock import now_ms
from kernel.db import Database
from kernel.errors import DomainError

log = logging.getLogger("livecart.webhooks")

SIGNATURE_HEADER = "Livecart-Signature"
SCHEME = "v1"
# A Unix time in seconds has 10 digits until the year 2286; more is not a time.
MAX_TIME_DIGITS = 12
PAGE = 500  # events read from the provider at once
MAX_PAGES = 20  # per pass: a long backlog is worked off over several passes, not in one
# How long a dispute waits for its order to be written. The pipeline takes moments and an
# unsettled payment attempt one lease; this is far beyond both.
ORDER_WAIT_MS = 10 * 60_000


class EventType(enum.StrEnum):
    """The events acted on; every other type is recorded and otherwise ignored."""

    REFUND_CREATED = "refund.created"
    REFUND_UPDATED = "refund.updated"
    DISPUTE_CREATED = "charge.dispute.created"
    DISPUTE_CLOSED = "charge.dispute.closed"


ACTED_ON = frozenset(EventType)


class EventOutcome(enum.StrEnum):
    APPLIED = "applied"  # recorded, and it changed what livecart knows
    RECORDED = "recorded"  # recorded only: an ignored type, a stale snapshot, no local object
    REPLAYED = "replayed"  # its id was recorded before: nothing changed
    DEFERRED = "deferred"  # not recorded: it needs what is not written yet; send it again


class SignatureRefused(DomainError):
    """The body cannot be believed to come from the provider. Not one of the kinds of
    kernel/errors.py: a refusal of the message itself, which web/http.py answers 400."""


# -- the signature ------------------------------------------------------------------------------


def sign(body: bytes, secret: str, now_s: int) -> str:
    """The ``Livecart-Signature`` header for ``body`` signed with ``secret`` at ``now_s``."""
    return f"t={now_s},{SCHEME}={_digest(secret, now_s, body)}"


def verify(header: str, body: bytes, secrets: Sequence[str], now_s: int, tolerance_s: int) -> int:
    """Check that ``body`` was signed with one of ``secrets`` (several ``v1`` are allowed, so a
    provider rotating its secret can sign with both) within ``tolerance_s`` of ``now_s``, either
    way. The signature's time on success; ``SignatureRefused`` otherwise.

    The signature is checked before the time, so ``signature_expired`` says the message is
    genuine but old (a replay, or a clock adrift), never something about a forgery."""
    signed_at, offered = _parse(header)
    expected = [_digest(secret, signed_at, body) for secret in secrets]
    # Every pair is compared, in constant time, so the answer's timing tells nothing.
    matches = [hmac.compare_digest(e, o) for e in expected for o in offered]
    if not any(matches):
        raise SignatureRefused(
            "The Livecart-Signature does not match the body under any webhook secret.",
            code=CheckoutErrorCode.INVALID_SIGNATURE,
        )
    if abs(now_s - signed_at) > tolerance_s:
        raise SignatureRefused(
            f"The signature was made {now_s - signed_at} s from the server's clock; at most "
            f"{tolerance_s} s is accepted.",
            code=CheckoutErrorCode.SIGNATURE_EXPIRED,
            tolerance_s=tolerance_s,
        )
    return signed_at


def _digest(secret: str, signed_at: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{signed_at}.".encode() + body, hashlib.sha256).hexdigest()


def _parse(header: str) -> tuple[int, list[str]]:
    """``t=<unix s>,v1=<hex>[,v1=<hex>…]``: the time and the signatures offered. Other schemes
    (a provider's ``v0``) are ignored; no ``t`` or no ``v1`` is a refusal."""
    signed_at: int | None = None
    offered: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            if not (value.isascii() and value.isdigit() and len(value) <= MAX_TIME_DIGITS):
                raise _malformed("t is not a Unix time in seconds")
            signed_at = int(value)
        elif name == SCHEME:
            offered.append(value)
    if signed_at is None or not offered:
        raise _malformed(f"expected t=<unix seconds>,{SCHEME}=<hex HMAC-SHA256>")
    return signed_at, offered


def _malformed(why: str) -> SignatureRefused:
    return SignatureRefused(
        f"Malformed or missing {SIGNATURE_HEADER} header: {why}.",
        code=CheckoutErrorCode.INVALID_SIGNATURE,
    )


# -- applying an event --------------------------------------------------------------------------


async def apply_event(db: Database, refunds: Refunds, event: ProviderEvent) -> EventOutcome:
    """Record ``event`` and act on it in one SQL transaction; a known id changes nothing.
    ``refunds``: whose refunds (its keyspace) the provider's objects are matched with."""
    async with db.session() as session:
        conn = await session.connection()
        if not await _record(conn, db.dialect, event):
            await session.rollback()
            return EventOutcome.REPLAYED
        changed = False
        if event.type in (EventType.REFUND_CREATED, EventType.REFUND_UPDATED):
            changed = await _refund_changed(conn, refunds.keyspace, event)
        elif event.type in (EventType.DISPUTE_CREATED, EventType.DISPUTE_CLOSED):
            applied = await _dispute_changed(conn, db.dialect, refunds.keyspace, event)
            if applied is disputes.Applied.NO_ORDER and _young(event):
                await session.rollback()
                return EventOutcome.DEFERRED
            changed = applied is disputes.Applied.CHANGED
        await session.commit()
    return EventOutcome.APPLIED if changed else EventOutcome.RECORDED


async def _record(conn: AsyncConnection, dialect: str, event: ProviderEvent) -> bool:
    """Insert the event's row; False when its id is known (a concurrent delivery of the same
    event waits on the primary key, then finds it)."""
    statement: Any = (
        postgresql.insert(PaymentEvent) if dialect == "postgresql" else sqlite.insert(PaymentEvent)
    )
    object_id = event.object.get("id")
    inserted = await conn.execute(
        statement.values(
            id=event.id,
            type=event.type[:60],
            # Kept for people reading the table; a provider's odd id must not fail the insert.
            object_id=str(object_id).replace("\x00", "")[:64] if object_id is not None else "",
            received_ms=now_ms(),
        ).on_conflict_do_nothing(index_elements=["id"])
    )
    return bool(inserted.rowcount == 1)


async def _refund_changed(conn: AsyncConnection, keyspace: str, event: ProviderEvent) -> bool:
    """A refund's snapshot: finish the local refund it was asked under (found by the key it
    carries) if the provider decided it. A refund with no local row (made in the provider's
    dashboard, or giving back a charge that sold nothing, decision 0017) is recorded only."""
    snapshot = _refund_snapshot(event.object)
    if snapshot is None:
        log.warning("refund event %s without a usable key, status or version", event.id)
        return False
    key, status, provider_ref, version = snapshot
    found = (
        await conn.execute(
            core_select(col(Refund.id)).where(
                col(Refund.key) == key, col(Refund.keyspace) == keyspace
            )
        )
    ).scalar_one_or_none()
    if found is None:
        return False
    return await write_outcome(conn, int(found), status, provider_ref, version)


async def _dispute_changed(
    conn: AsyncConnection, dialect: str, keyspace: str, event: ProviderEvent
) -> disputes.Applied:
    snapshot = disputes.snapshot_of(event.object)
    if snapshot is None:
        log.warning("dispute event %s without a usable id, charge, amount or status", event.id)
        return disputes.Applied.UNCHANGED
    applied = await disputes.apply_snapshot(conn, dialect, keyspace, snapshot, now_ms())
    if applied is disputes.Applied.NO_ORDER and not _young(event):
        log.warning("dispute %s: no order has charge %s", snapshot.provider_id, snapshot.charge)
    return applied


def _young(event: ProviderEvent) -> bool:
    """Still within the time its order may take to be written."""
    return now_ms() - event.created_ms < ORDER_WAIT_MS


def _refund_snapshot(obj: dict[str, Any]) -> tuple[str, RefundStatus, str, int] | None:
    key, status, ref, version = (obj.get(k) for k in ("key", "status", "id", "version"))
    if not (isinstance(key, str) and 0 < len(key) <= 200 and "\x00" not in key):
        return None
    if status not in tuple(RefundStatus) or not isinstance(ref, str) or len(ref) > 64:
        return None
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        return None
    return key, RefundStatus(status), ref.replace("\x00", ""), version


# -- the reconciler's path ----------------------------------------------------------------------


def cursor_name(keyspace: str) -> str:
    """One cursor per sandbox: each Redis keyspace has its own provider records and events."""
    return f"sandbox:{keyspace}"


async def pull_events(db: Database, refunds: Refunds, provider: PaymentProvider) -> int:
    """Apply the provider's events after the cursor, oldest first, and move the cursor past
    them: what a lost webhook would have done (events of types not acted on are skipped, not
    recorded). The number of events that were new here.

    A deferred event holds the cursor before it: the events after it are applied all the same,
    and read again (as replays) with it on the next pass, until it can be applied."""
    name = cursor_name(refunds.keyspace)
    cursor = await _cursor(db, name)
    read_after = cursor
    held = False  # an event was deferred: the cursor stays before it
    new = 0
    for _ in range(MAX_PAGES):
        events = await provider.events(after=read_after or "", count=PAGE)
        done = cursor
        for event in events:
            if event.type not in ACTED_ON:
                # Nothing to act on (a charge's events: payment attempts learn their outcome
                # as decision 0017 says), so no SQL transaction either: one per charge would
                # hold SQLite's write lock against checkouts. The webhook still records them.
                if not held:
                    done = event.id
                continue
            outcome = await apply_event(db, refunds, event)
            held = held or outcome == EventOutcome.DEFERRED
            new += outcome in (EventOutcome.APPLIED, EventOutcome.RECORDED)
            if not held:
                done = event.id
        if done is not None and done != cursor:
            await _advance(db, name, cursor, done)
            cursor = done
        if events:
            read_after = events[-1].id
        if len(events) < PAGE:
            break
    return new


async def _cursor(db: Database, name: str) -> str | None:
    async with db.session() as session:
        conn = await session.connection()
        found = await conn.execute(
            core_select(col(MoneyCursor.value)).where(col(MoneyCursor.name) == name)
        )
        value: str | None = found.scalar_one_or_none()
        return value


async def _advance(db: Database, name: str, old: str | None, new: str) -> None:
    """Move the cursor from ``old`` to ``new`` unless another node moved it meanwhile (then
    it is at least as far along; going back would only replay events, harmlessly, but why)."""
    async with db.session() as session:
        conn = await session.connection()
        if old is None:
            statement: Any = (
                postgresql.insert(MoneyCursor)
                if db.dialect == "postgresql"
                else sqlite.insert(MoneyCursor)
            )
            await conn.execute(
                statement.values(name=name, value=new).on_conflict_do_nothing(
                    index_elements=["name"]
                )
            )
        else:
            await conn.execute(
                update(MoneyCursor)
                .where(col(MoneyCursor.name) == name, col(MoneyCursor.value) == old)
                .values(value=new)
            )
        await session.commit()
