"""A buyer's cart in Redis: SKU id -> units, one hash per buyer (guest session now, an account
later). A cart promises nothing: stock is held only at checkout (checkout/shelf.py)."""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis

from checkout.keys import Keyspace

# A cart nobody touched for this long is gone, like an abandoned guest session.
CART_TTL_S = 30 * 24 * 3600


class CartStore:
    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self.redis = redis
        self.keys = keyspace

    async def units(self, buyer: str) -> dict[int, int]:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.cart(buyer)))
        return {int(sku): int(qty) for sku, qty in raw.items() if int(qty) > 0}

    async def put(self, buyer: str, sku_id: int, qty: int) -> None:
        """Set the SKU's units (0 takes it out)."""
        key = self.keys.cart(buyer)
        async with self.redis.pipeline(transaction=True) as pipe:
            if qty > 0:
                pipe.hset(key, str(sku_id), qty)
            else:
                pipe.hdel(key, str(sku_id))
            pipe.expire(key, CART_TTL_S)
            await pipe.execute()

    async def take_out(self, buyer: str, bought: dict[int, int]) -> None:
        """Units bought leave the cart (what was added meanwhile stays)."""
        key = self.keys.cart(buyer)
        for sku_id, qty in bought.items():
            if await self.redis.hincrby(key, str(sku_id), -qty) <= 0:
                await self.redis.hdel(key, str(sku_id))

    async def clear(self, buyer: str) -> None:
        await self.redis.delete(self.keys.cart(buyer))
