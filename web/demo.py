"""Seeds a demo shop: a seller, two products (a jacket in colours and sizes, a mug), and a live
room with both products in its bag, the jacket pinned, a live flash deal on its first SKU and
a scheduled one on the mug; shipping at 4.99, free from 150.00; a shop voucher (WELCOME5, 5.00
off from 30.00) and a live-only one for the room (LIVE10, 10 % off, 100 uses) for the creator to
drop from the studio.

Seeding is idempotent: a rerun on the same data directory finds the demo seller, shop,
products and open room and only adds what is missing (a deal that ended is started afresh; a
room that ended is replaced). Only the seller token changes: just its hash is kept, so a
rerun issues a new random one to print.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import service
from catalog.models import Deal, Product, Seller, Shop
from catalog.rules import DealTerms
from checkout import vouchers
from checkout.holds import HoldStore
from checkout.keys import Keyspace
from checkout.pricing import VoucherKind
from checkout.shelf import ShelfStore
from checkout.shelving import Shelving
from kernel.clock import now_ms
from kernel.db import Database
from kernel.redis_client import connect
from live import rules
from live import service as live_service
from live.keys import LiveKeys
from live.room_states import RUNNING, RoomStatus
from live.store import RoomStore
from people.auth_stamps import AuthStamps
from people.keys import PeopleKeys
from web.settings import Settings

DEMO_EMAIL = "demo@livecart.local"
ROOM_TITLE = "Friday night drop"
HOUR_MS = 3600 * 1000


@dataclass(frozen=True)
class DemoSku:
    name: str  # its values in the options' order ("Black / M"), or a free-text variant
    stock: int


@dataclass(frozen=True)
class DemoProduct:
    title: str
    category: str
    description: str
    image: str
    list_price: int
    skus: tuple[DemoSku, ...]  # the first is the one the demo's deal sells
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (name, values), in order


# Variants (decision 0028): a colour and a size, a SKU per combination but one (Sand / L is
# not made, so the seller center's "Add a variant" has something to add).
JACKET = DemoProduct(
    "Puffer jacket",
    "Apparel",
    "Warm, light, packs into its own pocket.",
    "/static/img/jacket.svg",
    8900,
    (
        DemoSku("Black / M", 500),
        *(DemoSku(f"Black / {size}", 40) for size in ("S", "L")),
        *(DemoSku(f"Sand / {size}", 25) for size in ("S", "M")),
    ),
    (("Colour", ("Black", "Sand")), ("Size", ("S", "M", "L"))),
)
MUG = DemoProduct(
    "Stoneware mug", "Home", "350 ml.", "/static/img/mug.svg", 2400, (DemoSku("Sand", 200),)
)


@dataclass(frozen=True)
class DemoShop:
    seller_token: str
    live_deal_id: int
    scheduled_deal_id: int
    room_id: int
    shop_handle: str
    live_voucher: str  # the room's live-only voucher's code, to drop from the studio


@dataclass(frozen=True)
class Stores:
    holds: HoldStore
    rooms: RoomStore
    hold_ttl_ms: int
    pay_ttl_ms: int
    shelf: ShelfStore


async def seed_demo(settings: Settings) -> DemoShop:
    assert settings.database_url and settings.redis_url
    db = Database(settings.database_url)
    redis = connect(settings.redis_url)
    stores = Stores(
        HoldStore(redis, Keyspace(settings.redis_prefix)),
        RoomStore(redis, LiveKeys(settings.redis_prefix), settings.room_log_maxlen),
        settings.hold_ttl_s * 1000,
        settings.pay_ttl_s * 1000,
        ShelfStore(
            redis,
            Keyspace(settings.redis_prefix),
            hold_ttl_ms=settings.hold_ttl_s * 1000,
            pay_ttl_ms=settings.pay_ttl_s * 1000,
        ),
    )
    await stores.holds.install()
    await stores.rooms.install()
    await stores.shelf.install()
    try:
        async with db.session() as session:
            me, shop, token = await _seller(
                session, AuthStamps(redis, PeopleKeys(settings.redis_prefix))
            )
            assert shop.id is not None
            jacket = await _product(session, me, shop, JACKET)
            mug = await _product(session, me, shop, MUG)
            room = await _room(session, stores.rooms, me, shop.id, (jacket, mug))
            now = await stores.rooms.server_ms()
            live = await _deal(
                session,
                stores,
                me,
                room,
                jacket,
                DealTerms(
                    deal_price=4900,
                    quantity=100,
                    per_buyer_limit=2,
                    starts_ms=now,
                    ends_ms=now + 24 * HOUR_MS,
                ),
            )
            scheduled = await _deal(
                session,
                stores,
                me,
                room,
                mug,
                DealTerms(
                    deal_price=1200,
                    quantity=50,
                    per_buyer_limit=1,
                    starts_ms=now + HOUR_MS,
                    ends_ms=now + 2 * HOUR_MS,
                ),
            )
            await service.set_shipping(session, me, shop.id, "free_over", 499, 15000)
            await Shelving(stores.shelf).publish_shipping(session, shop.id)
            await _voucher(session, stores.shelf, shop.id, "WELCOME5", WELCOME, room_id=None)
            live_voucher = await _voucher(
                session, stores.shelf, shop.id, "LIVE10", LIVE10, room_id=room["id"]
            )
        return DemoShop(
            seller_token=token,
            live_deal_id=live,
            scheduled_deal_id=scheduled,
            room_id=room["id"],
            shop_handle=shop.handle,
            live_voucher=live_voucher,
        )
    finally:
        await redis.aclose()
        await db.close()


async def _seller(session: AsyncSession, stamps: AuthStamps) -> tuple[Seller, Shop, str]:
    found = (await session.exec(select(Seller).where(Seller.email == DEMO_EMAIL))).first()
    if found is None:
        return await service.create_seller(session, "Demo Seller", DEMO_EMAIL, "Mika's Live Closet")
    shop = (await service.shops_of(session, found))[0]
    return found, shop, await service.rotate_token(session, stamps, found)


async def _product(session: AsyncSession, me: Seller, shop: Shop, spec: DemoProduct) -> Product:
    """The shop's product of this title (back on sale if it was archived), made (with its
    SKUs) if the shop has none."""
    for product in await service.list_products(session, shop.id, archived=None):
        if product.title == spec.title:
            if product.archived:
                return await service.unarchive_product(session, me, product.id or 0)
            return product
    assert shop.id is not None
    product = await service.create_product(
        session,
        me,
        shop.id,
        {
            "title": spec.title,
            "category": spec.category,
            "description": spec.description,
            "image_urls": [spec.image],
            "options": [{"name": name, "values": list(values)} for name, values in spec.options],
        },
    )
    for sku in spec.skus:
        named: dict[str, object] = {"variant": sku.name}
        if spec.options:
            values = sku.name.split(" / ")
            named = {
                "options": {name: v for (name, _), v in zip(spec.options, values, strict=True)}
            }
        await service.create_sku(
            session,
            me,
            product.id or 0,
            {**named, "list_price": spec.list_price, "currency": "USD", "stock": sku.stock},
        )
    return product


async def _room(
    session: AsyncSession,
    store: RoomStore,
    me: Seller,
    shop_id: int,
    products: Sequence[Product],
) -> rules.Room:
    """The demo's open room (a new one if the last has ended): live, with the products in its
    bag and the first one pinned."""
    for row in await live_service.list_rooms(session, seller_id=me.id, shop_id=shop_id):
        snap = await store.read(row.id or 0)
        if row.title == ROOM_TITLE and snap is not None and snap.room["status"] != RoomStatus.ENDED:
            room_id = snap.room["id"]
            break
    else:
        room_id = (await live_service.create_room(session, store, me, shop_id, ROOM_TITLE))["id"]
    for product in products:
        await live_service.add_product(session, store, me, room_id, product.id or 0)
    await live_service.go_live(session, store, room_id)
    first = products[0].id or 0
    done = await store.update(
        room_id, lambda r: rules.pin(r, first, now_ms()) if r["pinned"] is None else rules.Change(r)
    )
    return done.change.room


WELCOME = dict(kind=VoucherKind.FIXED, value=500, min_spend=3000, budget=1000, per_buyer=1)
LIVE10 = dict(kind=VoucherKind.PERCENT, value=1000, min_spend=0, budget=100, per_buyer=1)
VOUCHER_DAYS = 30


async def _voucher(
    session: AsyncSession,
    shelf: ShelfStore,
    shop_id: int,
    code: str,
    terms: dict[str, Any],
    room_id: int | None,
) -> str:
    """The shop's running voucher of these terms (for ``room_id``, if one), or a new one. A
    room's voucher stays with its room: a new room gets its own code (LIVE10-<room>)."""
    now = now_ms()
    for voucher in await vouchers.of_shop(session, shop_id):
        if voucher.code.startswith(code) and voucher.room_id == room_id and now < voucher.ends_ms:
            await vouchers.put_on_shelf(shelf, voucher)
            return voucher.code
    taken = {v.code for v in await vouchers.of_shop(session, shop_id)}
    if code in taken:
        code = f"{code}-{room_id}" if room_id is not None else f"{code}-{now // 1000}"
    made = await vouchers.create(
        session,
        shop_id,
        vouchers.VoucherTerms(
            code=code,
            currency="USD",
            starts_ms=now,
            ends_ms=now + VOUCHER_DAYS * 24 * HOUR_MS,
            room_id=room_id,
            **terms,
        ),
    )
    await vouchers.put_on_shelf(shelf, made)
    return made.code


async def _deal(
    session: AsyncSession,
    stores: Stores,
    me: Seller,
    room: rules.Room,
    product: Product,
    terms: DealTerms,
) -> int:
    """The room's open deal on the product's SKU, or a new one on these terms."""
    for card in room["deals"]:
        if card["product_id"] == product.id and card["status"] in RUNNING:
            return int(card["deal_id"])
    sku = (await service.skus_of(session, product.id or 0))[0]
    deal: Deal = await service.create_deal(session, me, sku.id or 0, terms, room_id=room["id"])
    await live_service.open_deal(
        session,
        stores.rooms,
        stores.holds,
        room["id"],
        deal,
        hold_ttl_ms=stores.hold_ttl_ms,
        pay_ttl_ms=stores.pay_ttl_ms,
    )
    return deal.id or 0
