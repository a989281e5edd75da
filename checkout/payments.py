"""Payment providers. ``SandboxProvider`` is built in: outcomes are decided by the test card
number, charges are idempotent per provider key, and its ledger lives in Redis so every node
(and every test) sees the same charges."""

from __future__ import annotations

import asyncio
import enum
import secrets
from dataclasses import asdict, dataclass
from typing import Protocol

import orjson
from redis.asyncio import Redis

from checkout.error_codes import CheckoutErrorCode
from kernel.errors import Invalid


class ChargeStatus(enum.StrEnum):
    APPROVED = "approved"
    DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"


@dataclass(frozen=True)
class Charge:
    id: str
    key: str
    status: ChargeStatus
    amount: int
    currency: str
    refunded: bool = False


class PaymentProvider(Protocol):
    async def charge(self, *, key: str, amount: int, currency: str, card: str) -> Charge:
        """Charge once per ``key``: a repeated key returns the first charge, never a second."""
        ...

    async def refund(self, charge: Charge) -> None: ...

    async def find(self, key: str) -> Charge | None:
        """The charge made under ``key``, if any."""
        ...


SANDBOX_CARDS = {
    "4242424242424242": ChargeStatus.APPROVED,
    "4000000000000002": ChargeStatus.DECLINED,
    "4000000000009995": ChargeStatus.INSUFFICIENT_FUNDS,
}


class SandboxProvider:
    def __init__(self, redis: Redis, ledger_key: str, delay_ms: int = 0) -> None:
        self.redis = redis
        self.ledger_key = ledger_key
        self.delay_ms = delay_ms

    async def charge(self, *, key: str, amount: int, currency: str, card: str) -> Charge:
        status = SANDBOX_CARDS.get(card)
        if status is None:
            raise Invalid(
                "Unknown sandbox card. Use 4242424242424242 (approved), 4000000000000002 "
                "(declined) or 4000000000009995 (insufficient funds).",
                code=CheckoutErrorCode.INVALID_CARD,
            )
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        charge = Charge(
            id="ch_" + secrets.token_hex(12),
            key=key,
            status=status,
            amount=amount,
            currency=currency,
        )
        # HSETNX makes "charge once per key" hold across concurrent requests and nodes.
        created = await self.redis.hsetnx(self.ledger_key, key, _dump(charge))
        if created:
            return charge
        raw = await self.redis.hget(self.ledger_key, key)
        assert raw is not None  # HSETNX refused, so the field exists; charges are never deleted
        return _load(raw)

    async def find(self, key: str) -> Charge | None:
        raw = await self.redis.hget(self.ledger_key, key)
        return None if raw is None else _load(raw)

    async def refund(self, charge: Charge) -> None:
        refunded = Charge(**{**asdict(charge), "refunded": True})
        await self.redis.hset(self.ledger_key, charge.key, _dump(refunded))

    async def charges(self) -> list[Charge]:
        raw = await self.redis.hvals(self.ledger_key)
        return [_load(item) for item in raw]


def _dump(charge: Charge) -> bytes:
    return orjson.dumps(asdict(charge))


def _load(raw: str | bytes) -> Charge:
    data = orjson.loads(raw)
    data["status"] = ChargeStatus(data["status"])
    return Charge(**data)
