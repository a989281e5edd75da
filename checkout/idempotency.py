"""Idempotency keys for checkout, scoped to the buyer and a hash of the request body.

The first request with a key takes a "pending" marker (SET NX) with a short lease that it renews
while it runs (``held``); when it finishes, the response is stored for a day and every replay
gets exactly that response back. The same key with a different body is refused, as is a replay
while the first is still running. A request that dies stops renewing, so its key is free again
within one lease and the buyer's retry finishes the purchase (decision 0017).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError

from checkout.error_codes import CheckoutErrorCode
from checkout.keys import IDEMPOTENCY_TTL_S, Keyspace
from kernel.errors import Conflict, Invalid


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


log = logging.getLogger("livecart.idempotency")

# Renewers told to stop and not yet ended (a task nobody references may be collected).
_RENEWERS: set[asyncio.Task[None]] = set()

# Extend a pending marker only while it is still the caller's own.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class IdempotencyStore:
    def __init__(self, redis: Redis, keyspace: Keyspace, lease_ms: int) -> None:
        self.redis = redis
        self.keys = keyspace
        # A checkout's claim on its key (LIVECART_CHECKOUT_LEASE_S).
        # Renewed every third of it while the request runs; a dead request's key is free again
        # within one lease. A living request that misses its renewals (a stalled process) may
        # see a retry run beside it: harmless, since every checkout step is idempotent.
        self.lease_ms = lease_ms
        self._renew = redis.register_script(RENEW)

    async def begin(self, buyer: str, key: str, digest: str) -> StoredResponse | Claim:
        """Claim the key, or return the response already stored for it."""
        redis_key = self.keys.idempotency(buyer, key)
        marker = orjson.dumps({"hash": digest, "state": "pending", "claim": secrets.token_hex(8)})
        for _ in range(3):
            if await self.redis.set(redis_key, marker, nx=True, px=self.lease_ms):
                return Claim(redis_key, marker)
            raw = await self.redis.get(redis_key)
            if raw is None:
                continue  # the pending marker lapsed between SET and GET; try to claim again
            record = orjson.loads(raw)
            # An empty hash is the reconciler's claim (see ``claim_for_settling``): any body.
            if record["hash"] not in (digest, ""):
                raise Invalid(
                    "This Idempotency-Key was used with a different request.",
                    code=CheckoutErrorCode.IDEMPOTENCY_KEY_REUSED,
                )
            if record["state"] == "pending":
                raise Conflict(
                    "A request with this Idempotency-Key is still running; retry shortly.",
                    code=CheckoutErrorCode.REQUEST_IN_PROGRESS,
                )
            return StoredResponse(status=record["status"], body=record["body"].encode())
        raise Conflict(
            "Could not claim the Idempotency-Key; retry.",
            code=CheckoutErrorCode.REQUEST_IN_PROGRESS,
        )

    @contextlib.asynccontextmanager
    async def held(self, claim: Claim) -> AsyncIterator[None]:
        """Keep the claim's lease alive while the body runs."""
        stop = asyncio.Event()

        async def renew() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):  # the next renewal, or told to stop
                    await asyncio.wait_for(stop.wait(), self.lease_ms / 3000)
                if stop.is_set():
                    return
                try:
                    await self._renew(keys=[claim.redis_key], args=[claim.marker, self.lease_ms])
                except Exception:  # one failed renewal must not end the lease for good
                    log.warning("could not renew the claim on %s", claim.redis_key, exc_info=True)

        renewing = asyncio.create_task(renew())
        try:
            yield
        finally:
            # Told to stop, not cancelled and awaited: a cancellation that reached the renewer
            # inside its Redis call was once lost there, the renewer ran on, and the paid
            # checkout waiting for it went unanswered for minutes. A renewal under way finishes
            # on its own; a late one is harmless (it extends only a marker still ours).
            stop.set()
            _RENEWERS.add(renewing)
            renewing.add_done_callback(_RENEWERS.discard)

    async def claim_for_settling(self, buyer: str, key: str) -> Claim | None:
        """Take a key whose request died, so no retry runs while the reconciler settles its
        attempt (a retry gets ``request_in_progress`` meanwhile). None while a request holds it.

        A key whose response is stored needs no marker: no request runs under it again (a
        replay gets the stored response), yet its attempt may still be pending (a retry that
        answered from a dead request's state). The claim returned then was never written, so
        renewing and abandoning it leave the stored response alone."""
        redis_key = self.keys.idempotency(buyer, key)
        marker = orjson.dumps({"hash": "", "state": "pending", "claim": secrets.token_hex(8)})
        if await self.redis.set(redis_key, marker, nx=True, px=self.lease_ms):
            return Claim(redis_key, marker)
        raw = await self.redis.get(redis_key)
        if raw is not None and orjson.loads(raw)["state"] == "done":
            return Claim(redis_key, marker)
        return None

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
