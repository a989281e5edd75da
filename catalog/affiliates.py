"""Affiliate plans (decision 0046): a shop offers products to creators at a commission rate, and
the one check of whether a creator may sell a product of another shop, and at what rate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import and_, col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import service as catalog
from catalog.error_codes import CatalogErrorCode
from catalog.models import (
    AffiliateDeal,
    AffiliatePlan,
    AffiliatePlanCreator,
    AffiliatePlanProduct,
    Deal,
    Product,
    Seller,
    Shop,
)
from catalog.rules import DealTerms
from kernel.clock import now_ms
from kernel.errors import Conflict, Invalid, NotFound

MAX_RATE_BP = 8000
MAX_DISCOUNT_BP = 9000
MAX_PLAN_PRODUCTS = 100
MAX_PLAN_CREATORS = 100


@dataclass(frozen=True)
class PlanProduct:
    product_id: int
    rate_bp: int
    max_discount_bp: int = 0


@dataclass(frozen=True)
class Offer:
    """A product a creator may sell, under the plan that lets them, at the plan's rate."""

    plan_id: int
    shop_id: int
    product_id: int
    rate_bp: int
    max_discount_bp: int


def _invalid(message: str, field: str) -> Invalid:
    return Invalid(message, code=CatalogErrorCode.INVALID_PLAN, field=field)


async def create_plan(
    session: AsyncSession,
    seller: Seller,
    shop_id: int,
    name: str,
    products: Sequence[PlanProduct],
    *,
    open_to_all: bool,
    creator_ids: Sequence[int] = (),
) -> AffiliatePlan:
    shop = await catalog.owned_shop(session, seller, shop_id)
    name = name.strip()
    if not 1 <= len(name) <= 120:
        raise _invalid("A plan's name is 1 to 120 characters.", "name")
    if not 1 <= len(products) <= MAX_PLAN_PRODUCTS:
        raise _invalid(f"A plan has 1 to {MAX_PLAN_PRODUCTS} products.", "products")
    if len({p.product_id for p in products}) != len(products):
        raise _invalid("A product appears twice in the plan.", "products")
    for p in products:
        if not 1 <= p.rate_bp <= MAX_RATE_BP:
            raise _invalid(f"A rate is 1 to {MAX_RATE_BP} basis points.", "rate_bp")
        if not 0 <= p.max_discount_bp <= MAX_DISCOUNT_BP:
            raise _invalid(
                f"A deal discount is 0 to {MAX_DISCOUNT_BP} basis points.", "max_discount_bp"
            )
        product = await session.get(Product, p.product_id)
        if product is None or product.shop_id != shop.id:
            raise NotFound(
                "No such product in this shop.",
                code=CatalogErrorCode.PRODUCT_NOT_FOUND,
                product_id=p.product_id,
            )
    creators = sorted(set(creator_ids))
    if open_to_all and creators:
        raise _invalid("A plan open to all creators lists none.", "creator_ids")
    if not open_to_all and not 1 <= len(creators) <= MAX_PLAN_CREATORS:
        raise _invalid(f"A targeted plan lists 1 to {MAX_PLAN_CREATORS} creators.", "creator_ids")
    for creator_id in creators:
        if creator_id == seller.id or await session.get(Seller, creator_id) is None:
            raise _invalid(f"No creator {creator_id} to offer the plan to.", "creator_ids")
    plan = AffiliatePlan(shop_id=shop_id, name=name, open_to_all=open_to_all, created_ms=now_ms())
    session.add(plan)
    await session.flush()
    assert plan.id is not None
    session.add_all(
        AffiliatePlanProduct(
            plan_id=plan.id,
            product_id=p.product_id,
            rate_bp=p.rate_bp,
            max_discount_bp=p.max_discount_bp,
        )
        for p in products
    )
    session.add_all(AffiliatePlanCreator(plan_id=plan.id, creator_id=c) for c in creators)
    await session.commit()
    await session.refresh(plan)
    return plan


async def plans_of(session: AsyncSession, seller: Seller) -> Sequence[AffiliatePlan]:
    query = (
        select(AffiliatePlan)
        .join(Shop, col(Shop.id) == col(AffiliatePlan.shop_id))
        .where(col(Shop.seller_id) == seller.id)
        .order_by(col(AffiliatePlan.id).desc())
        .limit(200)
    )
    return (await session.exec(query)).all()


async def products_of(
    session: AsyncSession, plan_ids: Sequence[int]
) -> dict[int, list[AffiliatePlanProduct]]:
    found: dict[int, list[AffiliatePlanProduct]] = {plan_id: [] for plan_id in plan_ids}
    rows = await session.exec(
        select(AffiliatePlanProduct)
        .where(col(AffiliatePlanProduct.plan_id).in_(plan_ids))
        .order_by(col(AffiliatePlanProduct.product_id))
    )
    for row in rows.all():
        found[row.plan_id].append(row)
    return found


async def creators_of(session: AsyncSession, plan_ids: Sequence[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {plan_id: [] for plan_id in plan_ids}
    rows = await session.exec(
        select(AffiliatePlanCreator)
        .where(col(AffiliatePlanCreator.plan_id).in_(plan_ids))
        .order_by(col(AffiliatePlanCreator.creator_id))
    )
    for row in rows.all():
        found[row.plan_id].append(row.creator_id)
    return found


async def end_plan(session: AsyncSession, seller: Seller, plan_id: int) -> AffiliatePlan:
    plan = await session.get(AffiliatePlan, plan_id)
    shop = None if plan is None else await session.get(Shop, plan.shop_id)
    if plan is None or shop is None or shop.seller_id != seller.id:
        raise NotFound("No such plan among yours.", code=CatalogErrorCode.PLAN_NOT_FOUND)
    # Guarded: two ends race to one ended_ms, and the loser is told.
    ended = await session.exec(
        update(AffiliatePlan)
        .where(col(AffiliatePlan.id) == plan_id, col(AffiliatePlan.ended_ms).is_(None))
        .values(ended_ms=now_ms())
    )
    if ended.rowcount != 1:
        await session.rollback()
        raise Conflict("The plan has already ended.", code=CatalogErrorCode.PLAN_ENDED)
    await session.commit()
    await session.refresh(plan)
    return plan


def _open_to(creator_id: int) -> object:
    targeted = select(AffiliatePlanCreator.plan_id).where(
        col(AffiliatePlanCreator.creator_id) == creator_id
    )
    return and_(
        col(AffiliatePlan.ended_ms).is_(None),
        or_(col(AffiliatePlan.open_to_all), col(AffiliatePlan.id).in_(targeted)),
    )


async def offers_to(
    session: AsyncSession, creator: Seller, product_id: int | None = None
) -> list[Offer]:
    """The running plans' products open to ``creator``, from other sellers' shops, best rate
    first (then the oldest plan): the first offer of a product is the one a sale is made under."""
    assert creator.id is not None
    query = (
        select(AffiliatePlan, AffiliatePlanProduct)
        .join(AffiliatePlanProduct, col(AffiliatePlanProduct.plan_id) == col(AffiliatePlan.id))
        .join(Shop, col(Shop.id) == col(AffiliatePlan.shop_id))
        .join(Product, col(Product.id) == col(AffiliatePlanProduct.product_id))
        .where(
            _open_to(creator.id),  # type: ignore[arg-type]
            col(Shop.seller_id) != creator.id,
            col(Product.archived_ms).is_(None),
        )
        .order_by(
            col(AffiliatePlanProduct.product_id),
            col(AffiliatePlanProduct.rate_bp).desc(),
            col(AffiliatePlan.id),
        )
        .limit(500)
    )
    if product_id is not None:
        query = query.where(col(AffiliatePlanProduct.product_id) == product_id)
    rows = (await session.exec(query)).all()
    return [
        Offer(plan.id or 0, plan.shop_id, item.product_id, item.rate_bp, item.max_discount_bp)
        for plan, item in rows
    ]


async def offer_for(session: AsyncSession, creator: Seller, product_id: int) -> Offer | None:
    """The plan under which ``creator`` may sell ``product_id``, or None: a product the creator
    may not sell is answered as a missing one by the callers."""
    offers = await offers_to(session, creator, product_id)
    return offers[0] if offers else None


async def offered_product(session: AsyncSession, creator: Seller, product_id: int) -> Product:
    """A product of another shop that ``creator`` may put in a room's bag, or ``NotFound``
    (as for a product that does not exist: a creator learns nothing of plans not open to them)."""
    if await offer_for(session, creator, product_id) is None:
        raise NotFound(
            "No such product.", code=CatalogErrorCode.PRODUCT_NOT_FOUND, product_id=product_id
        )
    return await catalog.get_product(session, product_id)


async def create_affiliate_deal(
    session: AsyncSession,
    creator: Seller,
    sku_id: int,
    terms: DealTerms,
    room_id: int,
    room_shop_id: int,
) -> Deal:
    """A creator's deal on another shop's SKU: the shop's deal (its stock, its price floor, its
    order), with the attribution's source written in the same commit. ``room_shop_id``: the
    creator's shop the room belongs to, which the commissions are paid into (decision 0054)."""
    assert creator.id is not None
    sku = await catalog.get_sku(session, sku_id)
    offer = await offer_for(session, creator, sku.product_id)
    if offer is None:
        raise NotFound("No such SKU.", code=CatalogErrorCode.SKU_NOT_FOUND, sku_id=sku_id)
    floor = sku.list_price - sku.list_price * offer.max_discount_bp // 10_000
    if terms.deal_price < floor:
        raise Invalid(
            "The shop's plan does not let a deal go this far below the list price.",
            code=CatalogErrorCode.DEAL_PRICE_BELOW_PLAN,
            deal_price=terms.deal_price,
            lowest=floor,
        )
    deal = catalog.new_deal(sku, terms, room_id)
    session.add(deal)
    await session.flush()
    assert deal.id is not None
    session.add(
        AffiliateDeal(
            deal_id=deal.id,
            room_id=room_id,
            creator_id=creator.id,
            creator_shop_id=room_shop_id,
            plan_id=offer.plan_id,
            rate_bp=offer.rate_bp,
        )
    )
    await session.commit()
    await session.refresh(deal)
    return deal
