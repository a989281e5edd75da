"""Idempotency keys for checkout, scoped to the buyer and a hash of the request body.

The first request with a key takes a short "pending" marker (SET NX); when it finishes, the
response is stored for a day and every replay gets exactly that response back. The same key
with a different body is refused, as is a replay while the first is still running.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError

from catalog.errors import Conflict, Invalid
from checkout.keys import IDEMPOTENCY_PENDING_TTL_S, IDEMPOTENCY_TTL_S, Keyspace


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes


def body_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


@dataclass(frozen=True)
class Claim:
    """This request's hold on a key: the pending marker it wrote, unique to it."""

    redis_key: str
    marker: bytes


class IdempotencyStore:
    def __init__(
        self, redis: Redis, keyspace: Keyspace, pending_ttl_s: int = IDEMPOTENCY_PENDING_TTL_S
    ) -> None:
        self.redis = redis
        self.keys = keyspace
        # Must outlast the slowest checkout (the payment window), or a replay would run again.
        self.pending_ttl_s = pending_ttl_s

    async def begin(self, buyer: str, key: str, digest: str) -> StoredResponse | Claim:
        """Claim the key, or return the response already stored for it."""
        redis_key = self.keys.idempotency(buyer, key)
        marker = orjson.dumps({"hash": digest, "state": "pending", "claim": secrets.token_hex(8)})
        for _ in range(3):
            if await self.redis.set(redis_key, marker, nx=True, ex=self.pending_ttl_s):
                return Claim(redis_key, marker)
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

    async def finish(self, claim: Claim, digest: str, response: StoredResponse) -> None:
        record = {
            "hash": digest,
            "state": "done",
            "status": response.status,
            "body": response.body.decode(),
        }
        await self.redis.set(claim.redis_key, orjson.dumps(record), ex=IDEMPOTENCY_TTL_S)

    async def abandon(self, claim: Claim) -> None:
        """Drop our pending marker after a failure so a retry can run; never someone else's
        record (ours may have lapsed and another request may own the key now)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(claim.redis_key)
                current = await pipe.get(claim.redis_key)
                if current is None or current != claim.marker.decode():
                    return
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.delete(claim.redis_key)
                await pipe.execute()
            except WatchError:
                return  # it changed under us, so it is no longer ours
