"""The Redis side of passkey ceremonies: challenges waiting for their answer, each under a
random id, taken once (GETDEL) or gone after ``CHALLENGE_TTL_S``. A store: the only code that
reads or writes those keys (tests/test_store_boundaries.py)."""

from __future__ import annotations

import enum
import json
import secrets

from redis.asyncio import Redis
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from kernel.errors import Invalid
from people.error_codes import PeopleErrorCode
from people.keys import CHALLENGE_TTL_S, PeopleKeys


class Purpose(enum.StrEnum):
    REGISTER = "register"
    SIGN_IN = "sign_in"


class Challenges:
    """Challenges waiting for their ceremony's answer, each under a random id, taken once."""

    def __init__(self, redis: Redis, keys: PeopleKeys) -> None:
        self.redis = redis
        self.keys = keys

    async def issue(self, purpose: Purpose, challenge: bytes, account_id: int | None) -> str:
        challenge_id = secrets.token_urlsafe(24)
        value = {
            "challenge": bytes_to_base64url(challenge),
            "purpose": purpose.value,
            "account_id": account_id,
        }
        key = self.keys.passkey_challenge(challenge_id)
        await self.redis.set(key, json.dumps(value), ex=CHALLENGE_TTL_S)
        return challenge_id

    async def take(self, challenge_id: str, purpose: Purpose, account_id: int | None) -> bytes:
        """The challenge's bytes; it is gone after this whatever the answer, so a response can
        be tried against it once."""
        raw = None
        if 0 < len(challenge_id) <= 64 and challenge_id.isascii():
            raw = await self.redis.getdel(self.keys.passkey_challenge(challenge_id))
        if raw is None:
            raise _challenge_invalid()
        stored = json.loads(raw)
        if stored["purpose"] != purpose or stored["account_id"] != account_id:
            raise _challenge_invalid()
        return base64url_to_bytes(stored["challenge"])


def _challenge_invalid() -> Invalid:
    return Invalid(
        "This passkey request is used, expired or not yours; start again.",
        code=PeopleErrorCode.PASSKEY_CHALLENGE_INVALID,
    )
