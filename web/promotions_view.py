"""What the seller center's Promotions section shows (decision 0028): a shop's shipping rule as
its form fields show it, its vouchers with the uses each has left on the shop's shelf and the
paid orders that redeemed each, and the open rooms a live-only voucher may be bound to."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy import select as core_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request

from catalog.models import Product, Seller, Shop
from checkout import promotions, vouchers
from checkout.models import Order, Promotion, Voucher
from checkout.pricing import VoucherKind
from checkout.shelf import ShelfStore
from kernel.clock import now_ms
from live import service as live_service
from live.models import LiveRoom
from live.room_states import RoomStatus
from web.finance_view import chosen_shop
from web.l10n import major_units


@dataclass(frozen=True)
class VoucherRow:
    voucher: Voucher
    left: int  # uses of the budget not yet claimed
    redeemed: int  # paid orders that used it
    running: bool

    @property
    def ends(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.voucher.ends_ms / 1000))

    def offer(self) -> str:
        v = self.voucher
        if v.kind == VoucherKind.PERCENT:
            return f"{v.value / 100:g} % off"
        amount = major_units(v.value, v.currency)
        return f"{amount} {v.currency} off" + (
            " shipping" if v.kind == VoucherKind.SHIPPING else ""
        )


@dataclass(frozen=True)
class PromotionRow:
    promotion: Promotion
    running: bool
    ended: bool

    def offer(self, titles: dict[int, str]) -> str:
        p = self.promotion
        names = ", ".join(titles.get(product, f"#{product}") for product in p.products)
        if p.kind == promotions.DISCOUNT:
            return f"{p.bps / 100:g} % off {names}"
        return f"any {p.size} of {names} for {major_units(p.price, p.currency)} {p.currency}"

    @property
    def ends(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.promotion.ends_ms / 1000))


@dataclass(frozen=True)
class PromotionsView:
    shop: Shop
    shops: Sequence[Shop]
    currency: str
    fee: str  # the shipping fee as the field shows it
    free_over: str
    vouchers: list[VoucherRow]
    rooms: list[LiveRoom]  # open rooms a live-only voucher may be bound to
    promotions: list[PromotionRow]
    products: dict[int, str]  # the shop's products on sale: id -> title, for the forms


async def promotions_view(
    request: Request,
    session: AsyncSession,
    shelf: ShelfStore,
    shops: Sequence[Shop],
    currency: str,
    me: Seller,
) -> PromotionsView | None:
    shop = chosen_shop(shops, request.query_params.get("promo_shop"))
    if shop is None or shop.id is None:
        return None
    made = list(await vouchers.of_shop(session, shop.id))
    left = await shelf.vouchers_left(shop.id, [v.code for v in made])
    redeemed = dict(
        (
            await (await session.connection()).execute(
                core_select(col(Order.voucher), func.count())
                .where(col(Order.shop_id) == shop.id, col(Order.voucher) != "")
                .group_by(col(Order.voucher))
            )
        ).all()
    )
    now = now_ms()
    rows = [
        VoucherRow(
            v,
            v.budget if left.get(v.code) is None else left[v.code] or 0,
            int(redeemed.get(v.code, 0)),
            v.starts_ms <= now < v.ends_ms,
        )
        for v in made
    ]
    rooms = [
        row
        for row in await live_service.list_rooms(session, seller_id=me.id, shop_id=shop.id)
        if row.status != RoomStatus.ENDED
    ]
    made_promotions = [
        PromotionRow(p, p.starts_ms <= now < p.ends_ms, p.ends_ms <= now)
        for p in await promotions.of_shop(session, shop.id)
    ]
    products = (
        await session.exec(
            select(Product)
            .where(col(Product.shop_id) == shop.id, col(Product.archived_ms).is_(None))
            .order_by(col(Product.id))
        )
    ).all()
    return PromotionsView(
        promotions=made_promotions,
        products={p.id or 0: p.title for p in products},
        shop=shop,
        shops=shops,
        currency=currency,
        fee=major_units(shop.shipping_fee, currency),
        free_over=major_units(shop.shipping_free_over, currency),
        vouchers=rows,
        rooms=rooms,
    )
