"""Payment providers, shaped like Stripe (decision 0027). ``SandboxProvider`` is built in: a
charge's outcome is decided by the test card number, every call is idempotent per key, and its
records live in Redis (``lua/sandbox.lua``) so every node and every test sees the same ones.

Each object (charge, refund, payout, dispute) has a provider id, minor-unit amounts, a status and
a ``version`` raised by one on each change (all but disputes, which the buyer's bank opens, also
the caller's key); every change also appends the event a real provider would send as a webhook
(``events``).
"""

from __future__ import annotations

import asyncio
import enum
import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol, cast

import orjson
from redis.asyncio import Redis

from checkout.error_codes import CheckoutErrorCode
from checkout.keys import SandboxKeys
from kernel.errors import Conflict, Invalid

LIBRARY = resources.files("checkout").joinpath("lua/sandbox.lua").read_text()


class ChargeStatus(enum.StrEnum):
    APPROVED = "approved"
    DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"


class RefundStatus(enum.StrEnum):
    PENDING = "pending"  # asked for; the provider has not confirmed (nor refused) yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PayoutStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


class DisputeStatus(enum.StrEnum):
    """A buyer's dispute of a charge with their bank (Stripe's words). The bank takes the money
    back when it opens; it comes back if the dispute is won."""

    NEEDS_RESPONSE = "needs_response"  # open
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True)
class Charge:
    id: str
    key: str
    status: ChargeStatus
    amount: int
    currency: str
    amount_refunded: int = 0
    version: int = 1
    dispute: str | None = None  # the provider id of its dispute, if the buyer disputed it

    @property
    def refunded(self) -> bool:
        """Given back in full."""
        return self.amount_refunded >= self.amount


@dataclass(frozen=True)
class ProviderRefund:
    id: str
    key: str
    charge: str
    amount: int
    currency: str
    status: RefundStatus
    version: int = 1


@dataclass(frozen=True)
class ProviderPayout:
    id: str
    key: str
    destination: str
    amount: int
    currency: str
    status: PayoutStatus
    version: int = 1


@dataclass(frozen=True)
class ProviderDispute:
    id: str
    charge: str
    amount: int
    currency: str
    status: DisputeStatus
    version: int = 1


@dataclass(frozen=True)
class ProviderEvent:
    id: str
    type: str
    object: dict[str, Any]
    created_ms: int


class PaymentProvider(Protocol):
    async def charge(self, *, key: str, amount: int, currency: str, card: str) -> Charge:
        """Charge once per ``key``: a repeated key returns the first charge, never a second."""
        ...

    async def find(self, key: str) -> Charge | None:
        """The charge made under ``key``, if any."""
        ...

    async def refund(self, *, key: str, charge_id: str, amount: int, reason: str) -> ProviderRefund:
        """Refund ``amount`` of a charge once per ``key``. Refuses more than is left."""
        ...

    async def find_refund(self, key: str) -> ProviderRefund | None: ...

    async def payout(
        self, *, key: str, destination: str, amount: int, currency: str
    ) -> ProviderPayout: ...

    async def find_payout(self, key: str) -> ProviderPayout | None: ...

    async def events(self, after: str, count: int = 500) -> list[ProviderEvent]:
        """Events after the one with id ``after`` ("" for the first), oldest first."""
        ...

    async def save_method(self, customer: str, card: str, shipping: str = "") -> PaymentMethod:
        """Keep ``card`` on file for ``customer`` (replacing theirs), with where to ship what
        it pays for (JSON text, or empty): later charges may name the method's id instead of
        a card. Refuses a card the provider does not take."""
        ...

    async def method_of(self, customer: str) -> PaymentMethod | None: ...


@dataclass(frozen=True)
class PaymentMethod:
    """A card kept on file (decision 0031: a bidder's, charged when they win)."""

    id: str  # "pm_...": charge(card=id) charges the card behind it
    last4: str
    shipping: str = ""  # the address (JSON text) orders paid this way are shipped to


# The key of a refund giving back a charge that sold nothing: "void:<charge key>".
VOID_KEY_PREFIX = "void:"


async def refund_whole(provider: PaymentProvider, charge: Charge) -> ProviderRefund:
    """Give back what is left of a charge that sold nothing (decision 0017), under a key of its
    own: a repeat (the reconciler after a crash) finds the same refund."""
    key = VOID_KEY_PREFIX + charge.key
    # The charge is read before the key is looked up: a concurrent refund_whole that lands
    # after this read either shows up under the key next, or made the same refund (the same
    # amount, so the provider answers it). Read the other way round, a refund landing in between
    # would leave nothing to refund, and asking for 0 under the key would be refused.
    current = await provider.find(charge.key) or charge
    existing = await provider.find_refund(key)
    if existing is not None:
        return existing
    return await provider.refund(
        key=key,
        charge_id=current.id,
        amount=current.amount - current.amount_refunded,
        reason="sold nothing",
    )


SANDBOX_CARDS = {
    "4242424242424242": ChargeStatus.APPROVED,
    "4000000000000002": ChargeStatus.DECLINED,
    "4000000000009995": ChargeStatus.INSUFFICIENT_FUNDS,
    # Approved; its refunds stay pending until the sandbox finishes them (finish_refund).
    "4000000000007726": ChargeStatus.APPROVED,
    # Approved, then disputed at once for all of it (Stripe's dispute card): close_dispute
    # decides it.
    "4000000000000259": ChargeStatus.APPROVED,
}
PENDING_REFUNDS_CARD = "4000000000007726"
DISPUTE_CARD = "4000000000000259"
# A payout to a destination starting with this fails (the sandbox's closed bank account).
FAILING_DESTINATION = "fail:"


class SandboxProvider:
    def __init__(self, redis: Redis, keys: SandboxKeys, delay_ms: int = 0) -> None:
        """``keys``: where the sandbox's records live (Keyspace.sandbox)."""
        self.redis = redis
        self.keys = keys.function_keys()
        self.delay_ms = delay_ms
        self._installed = False

    async def _call(self, name: str, *args: Any) -> Any:
        if not self._installed:
            # REPLACE: a newer library wins after an upgrade.
            await self.redis.function_load(LIBRARY, replace=True)
            self._installed = True
        return await self.redis.fcall(name, len(self.keys), *self.keys, *args)

    async def charge(self, *, key: str, amount: int, currency: str, card: str) -> Charge:
        if card.startswith("pm_"):  # a card on file: the card behind it
            card = await self._card_of(card)
        status = SANDBOX_CARDS.get(card)
        if status is None:
            raise Invalid(
                "Unknown sandbox card. Use 4242424242424242 (approved), 4000000000000002 "
                "(declined) or 4000000000009995 (insufficient funds).",
                code=CheckoutErrorCode.INVALID_CARD,
            )
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        # Which card paid decides how its refunds behave: kept in the charge's id.
        prefix = "ch_p" if card == PENDING_REFUNDS_CARD else "ch_"
        new_id = prefix + secrets.token_hex(12)
        dispute_id = _new_dispute_id() if card == DISPUTE_CARD else ""
        answer = await self._call(
            "sb_charge", key, amount, currency, status.value, new_id, dispute_id
        )
        if answer[0] != "ok":
            raise _refusal(answer, key)
        return _charge(orjson.loads(answer[1]))

    async def save_method(self, customer: str, card: str, shipping: str = "") -> PaymentMethod:
        if card not in SANDBOX_CARDS:
            raise Invalid(
                "Unknown sandbox card. Use 4242424242424242 (approved), 4000000000000002 "
                "(declined) or 4000000000009995 (insufficient funds).",
                code=CheckoutErrorCode.INVALID_CARD,
            )
        method = PaymentMethod("pm_" + secrets.token_hex(12), card[-4:], shipping)
        # The method beside the other objects; the customer's method under its key.
        record = {
            "id": method.id,
            "object": "payment_method",
            "customer": customer,
            "card": card,
            "shipping": shipping,
        }
        await self.redis.hset(self.keys[0], method.id, orjson.dumps(record))
        await self.redis.hset(self.keys[1], f"method|{customer}", method.id)
        return method

    async def method_of(self, customer: str) -> PaymentMethod | None:
        found = await self.redis.hget(self.keys[1], f"method|{customer}")
        raw = await self.redis.hget(self.keys[0], found) if found else None
        if not raw:
            return None
        record = orjson.loads(raw)
        return PaymentMethod(record["id"], record["card"][-4:], record["shipping"])

    async def _card_of(self, method_id: str) -> str:
        raw = await self.redis.hget(self.keys[0], method_id)
        return str(orjson.loads(raw)["card"]) if raw else ""

    async def find(self, key: str) -> Charge | None:
        raw = await self._call("sb_find", "charge", key)
        return None if raw is None else _charge(orjson.loads(raw))

    async def refund(self, *, key: str, charge_id: str, amount: int, reason: str) -> ProviderRefund:
        status = RefundStatus.PENDING if charge_id.startswith("ch_p") else RefundStatus.SUCCEEDED
        new_id = "re_" + secrets.token_hex(12)
        answer = await self._call("sb_refund", key, charge_id, amount, reason, new_id, status.value)
        if answer[0] != "ok":
            raise _refusal(answer, key)
        return _refund(orjson.loads(answer[1]))

    async def find_refund(self, key: str) -> ProviderRefund | None:
        raw = await self._call("sb_find", "refund", key)
        return None if raw is None else _refund(orjson.loads(raw))

    async def finish_refund(self, refund_id: str, status: RefundStatus) -> ProviderRefund | None:
        """The sandbox's control for a pending refund: the provider decides it now. None when
        there is no such refund or it is not pending."""
        if status is RefundStatus.PENDING:
            raise ValueError("a pending refund finishes as succeeded or failed")
        answer = await self._call("sb_finish_refund", refund_id, status.value)
        return _refund(orjson.loads(answer[1])) if answer[0] == "ok" else None

    async def open_dispute(self, charge_id: str) -> ProviderDispute | None:
        """The sandbox's control: the buyer disputes an approved charge now, for all that is not
        refunded (what the dispute card does at once). A charge is disputed once: again, the same
        dispute. None when there is no such charge or nothing is left to dispute."""
        answer = await self._call("sb_open_dispute", charge_id, _new_dispute_id())
        return _dispute(orjson.loads(answer[1])) if answer[0] == "ok" else None

    async def close_dispute(self, dispute_id: str, won: bool) -> ProviderDispute | None:
        """The sandbox's control (like finish_refund): the bank decides an open dispute. None
        when there is no such dispute or it is closed already."""
        status = DisputeStatus.WON if won else DisputeStatus.LOST
        answer = await self._call("sb_close_dispute", dispute_id, status.value)
        return _dispute(orjson.loads(answer[1])) if answer[0] == "ok" else None

    async def payout(
        self, *, key: str, destination: str, amount: int, currency: str
    ) -> ProviderPayout:
        failing = destination.startswith(FAILING_DESTINATION)
        status = PayoutStatus.FAILED if failing else PayoutStatus.PAID
        new_id = "po_" + secrets.token_hex(12)
        answer = await self._call(
            "sb_payout", key, destination, amount, currency, new_id, status.value
        )
        if answer[0] != "ok":
            raise _refusal(answer, key)
        return _payout(orjson.loads(answer[1]))

    async def find_payout(self, key: str) -> ProviderPayout | None:
        raw = await self._call("sb_find", "payout", key)
        return None if raw is None else _payout(orjson.loads(raw))

    async def events(self, after: str, count: int = 500) -> list[ProviderEvent]:
        start = f"({after.removeprefix('evt_')}" if after else "-"
        entries = cast(
            list[tuple[str, dict[str, str]]],
            await self.redis.xrange(self.keys[2], min=start, max="+", count=count),
        )
        events = []
        for entry_id, raw_fields in entries:
            fields = {_text(k): _text(v) for k, v in raw_fields.items()}
            events.append(
                ProviderEvent(
                    id="evt_" + _text(entry_id),
                    type=fields["type"],
                    object=orjson.loads(fields["object"]),
                    created_ms=int(fields["created_ms"]),
                )
            )
        return events

    async def charges(self) -> list[Charge]:
        return [_charge(o) for o in await self._objects() if o["object"] == "charge"]

    async def refunds(self) -> list[ProviderRefund]:
        return [_refund(o) for o in await self._objects() if o["object"] == "refund"]

    async def payouts(self) -> list[ProviderPayout]:
        return [_payout(o) for o in await self._objects() if o["object"] == "payout"]

    async def disputes(self) -> list[ProviderDispute]:
        return [_dispute(o) for o in await self._objects() if o["object"] == "dispute"]

    async def _objects(self) -> list[dict[str, Any]]:
        return [orjson.loads(raw) for raw in await self.redis.hvals(self.keys[0])]


def _new_dispute_id() -> str:
    return "dp_" + secrets.token_hex(12)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _refusal(answer: list[str], key: str) -> Conflict | Invalid:
    word = answer[0]
    if word == "idempotency_key_reused":
        return Invalid(
            "This key was used with other parameters.",
            code=CheckoutErrorCode.IDEMPOTENCY_KEY_REUSED,
            key=key,
        )
    if word == "invalid_amount":
        return Invalid(
            "A refund is a positive whole number of minor units.",
            code=CheckoutErrorCode.INVALID_AMOUNT,
        )
    if word == "refund_exceeds_charge":
        return Conflict(
            "The charge has less left to refund.",
            code=CheckoutErrorCode.REFUND_EXCEEDS_PAID,
            refundable=int(answer[1]),
        )
    if word == "charge_disputed":
        return Conflict(
            "The buyer disputed the charge: nothing is refunded until the dispute closes.",
            code=CheckoutErrorCode.ORDER_DISPUTED,
        )
    return Conflict(f"The provider refused: {word}.", code=CheckoutErrorCode.PROVIDER_REFUSED)


def _charge(o: dict[str, Any]) -> Charge:
    return Charge(
        id=o["id"],
        key=o["key"],
        status=ChargeStatus(o["status"]),
        amount=int(o["amount"]),
        currency=o["currency"],
        amount_refunded=int(o["amount_refunded"]),
        version=int(o["version"]),
        dispute=o.get("dispute"),
    )


def _refund(o: dict[str, Any]) -> ProviderRefund:
    return ProviderRefund(
        id=o["id"],
        key=o["key"],
        charge=o["charge"],
        amount=int(o["amount"]),
        currency=o["currency"],
        status=RefundStatus(o["status"]),
        version=int(o["version"]),
    )


def _payout(o: dict[str, Any]) -> ProviderPayout:
    return ProviderPayout(
        id=o["id"],
        key=o["key"],
        destination=o["destination"],
        amount=int(o["amount"]),
        currency=o["currency"],
        status=PayoutStatus(o["status"]),
        version=int(o["version"]),
    )


def _dispute(o: dict[str, Any]) -> ProviderDispute:
    return ProviderDispute(
        id=o["id"],
        charge=o["charge"],
        amount=int(o["amount"]),
        currency=o["currency"],
        status=DisputeStatus(o["status"]),
        version=int(o["version"]),
    )
