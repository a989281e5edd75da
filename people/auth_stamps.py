"""Sellers' sign-in stamps (decision 0049): a random value per seller in Redis, renewed by
every change to who may act for it (roles, members, tokens, passwords), so each node's cache of
``Acting`` can be checked with one GET. A store: the only code that reads or writes those keys."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisClusterException, RedisError

from people.keys import PENDING_STAMP_TTL_S, PeopleKeys

PENDING = "~"


class AuthStamps:
    def __init__(self, redis: Redis, keys: PeopleKeys) -> None:
        self.redis = redis
        self.keys = keys

    async def read(self, seller_id: int) -> str | None:
        """The seller's stamp; None when a change is committing or Redis cannot answer (then
        nothing may be taken from a cache or put in one)."""
        key = self.keys.seller_auth_stamp(seller_id)
        try:
            stamp = await self.redis.get(key)
            if stamp is None:  # never changed, or Redis lost it: a fresh one matches no cache
                fresh = secrets.token_hex(8)
                old = await self.redis.set(key, fresh, nx=True, get=True)
                stamp = old if isinstance(old, (str, bytes)) else fresh
        except (RedisError, RedisClusterException):
            return None
        text = stamp.decode() if isinstance(stamp, bytes) else str(stamp)
        return None if text.startswith(PENDING) else text

    @asynccontextmanager
    async def changing(self, seller_ids: Iterable[int]) -> AsyncIterator[None]:
        """Around a commit that changes who may act for these sellers: marked pending before
        (a failure here stops the change), renewed after, so what a cache took before or
        during the commit never matches again."""
        ids = sorted(set(seller_ids))
        for seller_id in ids:
            pending = PENDING + secrets.token_hex(8)
            key = self.keys.seller_auth_stamp(seller_id)
            await self.redis.set(key, pending, ex=PENDING_STAMP_TTL_S)
        try:
            yield
        finally:
            await self.renew(ids)

    async def renew(self, seller_ids: Iterable[int]) -> None:
        for seller_id in seller_ids:
            await self.redis.set(self.keys.seller_auth_stamp(seller_id), secrets.token_hex(8))
