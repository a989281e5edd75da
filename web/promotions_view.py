"""What the seller center's Promotions section shows (decision 0028): a shop's shipping rule as
its form fields show it, its vouchers with the uses each has left on the shop's shelf and the
paid orders that redeemed each, and the open rooms a live-only voucher may be bound to."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy import select as core_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request

from catalog.models import Seller, Shop
from checkout import vouchers
from checkout.models import Order, Voucher
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
class PromotionsView:
    shop: Shop
    shops: Sequence[Shop]
    currency: str
    fee: str  # the shipping fee as the field shows it
    free_over: str
    vouchers: list[VoucherRow]
    rooms: list[LiveRoom]  # open rooms a live-only voucher may be bound to


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
    return PromotionsView(
        shop=shop,
        shops=shops,
        currency=currency,
        fee=major_units(shop.shipping_fee, currency),
        free_over=major_units(shop.shipping_free_over, currency),
        vouchers=rows,
        rooms=rooms,
    )
