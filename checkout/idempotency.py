"""Idempotency keys for checkout, scoped to the buyer and a hash of the request body.

The first request with a key takes a short "pending" marker (SET NX); when it finishes, the
response is stored for a day and every replay gets exactly that response back. The same key
with a different body is refused, as is a replay while the first is still running.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from catalog.errors import Conflict, Invalid
from checkout.keys import IDEMPOTENCY_PENDING_TTL_S, IDEMPOTENCY_TTL_S, Keyspace


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes


def body_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


class IdempotencyStore:
    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self.redis = redis
        self.keys = keyspace

    async def begin(self, buyer: str, key: str, digest: str) -> StoredResponse | None:
        """Claim the key, or return the response already stored for it."""
        redis_key = self.keys.idempotency(buyer, key)
        pending = orjson.dumps({"hash": digest, "state": "pending"})
        for _ in range(3):
            if await self.redis.set(redis_key, pending, nx=True, ex=IDEMPOTENCY_PENDING_TTL_S):
                return None
            raw = await self.redis.get(redis_key)
            if raw is None:
                continue  # the pending marker lapsed between SET and GET; try to claim again
            record = orjson.loads(raw)
            if record["hash"] != digest:
                raise Invalid(
                    "This Idempotency-Key was used with a different request.",
                    code="idempotency_key_reused",
                )
            if record["state"] == "pending":
                raise Conflict(
                    "A request with this Idempotency-Key is still running; retry shortly.",
                    code="request_in_progress",
                )
            return StoredResponse(status=record["status"], body=record["body"].encode())
        raise Conflict("Could not claim the Idempotency-Key; retry.", code="request_in_progress")

    async def finish(self, buyer: str, key: str, digest: str, response: StoredResponse) -> None:
        record = {
            "hash": digest,
            "state": "done",
            "status": response.status,
            "body": response.body.decode(),
        }
        await self.redis.set(
            self.keys.idempotency(buyer, key), orjson.dumps(record), ex=IDEMPOTENCY_TTL_S
        )

    async def abandon(self, buyer: str, key: str) -> None:
        """Drop the pending marker after an unexpected failure so a retry can run."""
        await self.redis.delete(self.keys.idempotency(buyer, key))
