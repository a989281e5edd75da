"""Seeds a demo shop: a seller, two products with SKUs, one live flash deal and one scheduled,
and a live room with both products in its bag and the jacket pinned."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlmodel import select

from catalog import service
from catalog.clock import now_ms
from catalog.db import Database
from catalog.models import Seller
from catalog.rules import DealTerms
from checkout import deals
from checkout.holds import HoldStore
from checkout.keys import Keyspace
from live import rules
from live import service as live_rooms
from live.keys import LiveKeys
from live.store import RoomStore
from web.settings import Settings

DEMO_EMAIL = "demo@livecart.local"


@dataclass(frozen=True)
class DemoShop:
    seller_token: str
    live_deal_id: int
    scheduled_deal_id: int
    room_id: int
    shop_handle: str


async def seed_demo(settings: Settings) -> DemoShop:
    assert settings.database_url and settings.redis_url
    db = Database(settings.database_url)
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        async with db.session() as session:
            found = await session.exec(select(Seller).where(Seller.email == DEMO_EMAIL))
            existing = found.first()
            if existing is not None:
                # A rerun rotates the token: the old one was only ever printed.
                token = service.TOKEN_PREFIX + "demo-" + str(now_ms())
                existing.token_hash = service.hash_token(token)
                session.add(existing)
                await session.commit()
                me = existing
                shop = (await service.shops_of(session, me))[0]
            else:
                me, shop, token = await service.create_seller(
                    session, "Demo Seller", DEMO_EMAIL, "Mika's Live Closet"
                )
            assert shop.id is not None
            jacket = await service.create_product(
                session,
                me,
                shop.id,
                {
                    "title": "Puffer jacket",
                    "category": "Apparel",
                    "description": "Warm, light, packs into its own pocket.",
                    "image_urls": ["/static/img/jacket.svg"],
                },
            )
            sku = await service.create_sku(
                session,
                me,
                jacket.id or 0,
                {"variant": "Black / M", "list_price": 8900, "currency": "USD", "stock": 500},
            )
            mug = await service.create_product(
                session,
                me,
                shop.id,
                {
                    "title": "Stoneware mug",
                    "category": "Home",
                    "description": "350 ml.",
                    "image_urls": ["/static/img/mug.svg"],
                },
            )
            mug_sku = await service.create_sku(
                session,
                me,
                mug.id or 0,
                {"variant": "Sand", "list_price": 2400, "currency": "USD", "stock": 200},
            )
            now = now_ms()
            live = await service.create_deal(
                session,
                me,
                sku.id or 0,
                DealTerms(
                    deal_price=4900,
                    quantity=100,
                    per_buyer_limit=2,
                    starts_ms=now,
                    ends_ms=now + 24 * 3600 * 1000,
                ),
            )
            scheduled = await service.create_deal(
                session,
                me,
                mug_sku.id or 0,
                DealTerms(
                    deal_price=1200,
                    quantity=50,
                    per_buyer_limit=1,
                    starts_ms=now + 3600 * 1000,
                    ends_ms=now + 2 * 3600 * 1000,
                ),
            )
            holds = HoldStore(redis, Keyspace(settings.redis_prefix))
            await holds.install()
            live = await deals.start(
                session,
                holds,
                live,
                hold_ttl_ms=settings.hold_ttl_s * 1000,
                pay_ttl_ms=settings.pay_ttl_s * 1000,
            )
            rooms = RoomStore(redis, LiveKeys(settings.redis_prefix), settings.room_log_maxlen)
            await rooms.install()
            room = await live_rooms.create_room(session, rooms, me, shop.id, "Friday night drop")
            for product in (jacket, mug):
                await live_rooms.add_product(session, rooms, me, room["id"], product.id or 0)
            await live_rooms.go_live(session, rooms, room["id"])
            pin = jacket.id or 0
            await rooms.update(room["id"], lambda r: rules.pin(r, pin, now_ms()))
        return DemoShop(
            seller_token=token,
            live_deal_id=live.id or 0,
            scheduled_deal_id=scheduled.id or 0,
            room_id=room["id"],
            shop_handle=shop.handle,
        )
    finally:
        await redis.aclose()
        await db.close()
