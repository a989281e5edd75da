"""What the seller center's Promotions section shows (decision 0028): a shop's shipping rule as
its form fields show it, its vouchers with the uses each has left on the shop's shelf and the
paid orders that redeemed each, and the open rooms a live-only voucher may be bound to."""

from __future__ import annotations

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
from web import i18n, l10n
from web.finance_view import chosen_shop
from web.l10n import major_units


@dataclass(frozen=True)
class VoucherRow:
    voucher: Voucher
    left: int  # uses of the budget not yet claimed
    redeemed: int  # paid orders that used it
    running: bool

    def offer(self, lang: str) -> str:
        """What the voucher takes off, in the page's language."""
        v = self.voucher
        if v.kind == VoucherKind.PERCENT:
            share = l10n.format_percent(v.value / 10000, lang)
            return i18n.translate(lang, "sc_offer_percent_off", share=share)
        amount = l10n.format_money(v.value, v.currency, lang)
        key = "sc_offer_shipping_off" if v.kind == VoucherKind.SHIPPING else "sc_offer_amount_off"
        return i18n.translate(lang, key, amount=amount)


@dataclass(frozen=True)
class PromotionRow:
    promotion: Promotion
    running: bool
    ended: bool

    def offer(self, titles: dict[int, str], lang: str) -> str:
        """What the promotion gives, in the page's language."""
        p = self.promotion
        names = ", ".join(titles.get(product, f"#{product}") for product in p.products)
        if p.kind == promotions.DISCOUNT:
            share = l10n.format_percent(p.bps / 10000, lang)
            return i18n.translate(lang, "sc_offer_discount", share=share, products=names)
        price = l10n.format_money(p.price, p.currency, lang)
        size = l10n.format_number(p.size, lang)
        return i18n.translate(lang, "sc_offer_bundle", size=size, products=names, price=price)


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
