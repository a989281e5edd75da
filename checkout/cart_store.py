"""A buyer's cart in Redis: SKU id -> units, one hash per buyer (guest session now, an account
later), and a flash deal's item at the deal price as ``d<deal id>`` -> units. A cart promises
nothing: stock is held only at checkout (checkout/shelf.py, and the deal's own reserve)."""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis

from checkout.keys import Keyspace

# A cart nobody touched for this long is gone, like an abandoned guest session.
DEAL = "d"  # a deal item's field: d<deal id>
CART_TTL_S = 30 * 24 * 3600


class CartStore:
    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self.redis = redis
        self.keys = keyspace

    async def units(self, buyer: str) -> dict[int, int]:
        """SKU id -> units at list price."""
        return (await self.contents(buyer))[0]

    async def contents(self, buyer: str) -> tuple[dict[int, int], dict[int, int]]:
        """SKU id -> units at list price, and deal id -> units at the deal's price."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.cart(buyer)))
        skus, deals = {}, {}
        for field, qty in raw.items():
            if int(qty) <= 0:
                continue
            if field.startswith(DEAL):
                deals[int(field[len(DEAL) :])] = int(qty)
            else:
                skus[int(field)] = int(qty)
        return skus, deals

    async def put_deal(self, buyer: str, deal_id: int, qty: int) -> None:
        """Set the deal item's units (0 takes it out)."""
        await self._set(buyer, f"{DEAL}{deal_id}", qty)

    async def take_out_deal(self, buyer: str, deal_id: int, qty: int) -> None:
        """Units of the deal bought (from the cart or the room) leave the cart."""
        key = self.keys.cart(buyer)
        if await self.redis.hincrby(key, f"{DEAL}{deal_id}", -qty) <= 0:
            await self.redis.hdel(key, f"{DEAL}{deal_id}")

    async def put(self, buyer: str, sku_id: int, qty: int) -> None:
        """Set the SKU's units (0 takes it out)."""
        await self._set(buyer, str(sku_id), qty)

    async def _set(self, buyer: str, field: str, qty: int) -> None:
        key = self.keys.cart(buyer)
        async with self.redis.pipeline(transaction=True) as pipe:
            if qty > 0:
                pipe.hset(key, field, qty)
            else:
                pipe.hdel(key, field)
            pipe.expire(key, CART_TTL_S)
            await pipe.execute()

    async def take_out(self, buyer: str, bought: dict[int, int]) -> None:
        """Units bought leave the cart (what was added meanwhile stays)."""
        key = self.keys.cart(buyer)
        for sku_id, qty in bought.items():
            if await self.redis.hincrby(key, str(sku_id), -qty) <= 0:
                await self.redis.hdel(key, str(sku_id))

    async def merge(self, from_buyer: str, to_buyer: str) -> None:
        """A guest's cart joins an account's at sign-in: lines the account's cart lacks are
        added, lines it has keep its units; the guest's cart is gone. Two keys of two slots,
        so not one atomic step: a cart promises nothing, and a line added to the guest's cart
        meanwhile is lost at worst, never a unit of stock."""
        if not from_buyer or from_buyer == to_buyer:
            return
        lines = cast(dict[str, str], await self.redis.hgetall(self.keys.cart(from_buyer)))
        target = self.keys.cart(to_buyer)
        for field, qty in lines.items():
            await self.redis.hsetnx(target, field, qty)
        if lines:
            await self.redis.expire(target, CART_TTL_S)
        await self.clear(from_buyer)

    async def clear(self, buyer: str) -> None:
        await self.redis.delete(self.keys.cart(buyer))
