"""Catalog operations over SQL: sellers and their tokens, shops, products, SKUs and deals.

Every write takes the acting seller and checks ownership here, so the HTTP layer cannot forget.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Update, exists, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import variants
from catalog.deal_status import DealStatus, refused, sources
from catalog.error_codes import CatalogErrorCode
from catalog.models import Deal, Product, Seller, Shop, Sku
from catalog.rules import DealTerms, check_deal_terms, handle_for
from kernel.clock import now_ms
from kernel.errors import CommonErrorCode, Conflict, Invalid, NotFound, Unauthorized
from people.auth_stamps import AuthStamps
from people.staff import TOKEN_PREFIX, hash_token, new_token

# A started deal has units allocated and may be selling: its product stays on sale. (A deal
# only scheduled can be left: starting it is refused once its product is archived.)
SELLING_DEAL_STATUSES = (DealStatus.LIVE,)

# Passes at making a shop when racing requests take its handle: the first retry already draws
# a random suffix, so a fourth clash would take three draws of 16.7 M values colliding.
HANDLE_TRIES = 4


async def rotate_token(session: AsyncSession, stamps: AuthStamps, seller: Seller) -> str:
    """Give the seller a new API token; the old one (and every browser signed in with it)
    stops working on every node. Returns the token, which is not stored anywhere."""
    assert seller.id is not None
    token = new_token()
    async with stamps.changing([seller.id]):
        seller.token_hash = hash_token(token)
        session.add(seller)
        await session.commit()
    return token


async def create_seller(
    session: AsyncSession, name: str, email: str, shop_name: str | None = None
) -> tuple[Seller, Shop, str]:
    """Create a seller with one shop; return the API token, which is not stored anywhere."""
    shop_name = shop_name or f"{name}'s shop"
    for _ in range(HANDLE_TRIES):
        await _refuse_taken_email(session, email)
        token = new_token()
        seller = Seller(name=name, email=email, token_hash=hash_token(token), created_ms=now_ms())
        session.add(seller)
        try:
            await session.flush()
            assert seller.id is not None
            shop = await _add_shop(session, seller.id, shop_name)
            await session.commit()
        except IntegrityError:
            # A sign-up racing this one took the e-mail (refused on the next pass) or the
            # shop's handle (the next pass sees it taken and draws another).
            await session.rollback()
            continue
        return seller, shop, token
    await _refuse_taken_email(session, email)  # the last clash may have been the e-mail
    raise _handle_race(shop_name)


async def _refuse_taken_email(session: AsyncSession, email: str) -> None:
    existing = await session.exec(select(Seller.id).where(Seller.email == email))
    if existing.first() is not None:
        raise Conflict(
            "A seller with this email already exists.", code=CatalogErrorCode.SELLER_EXISTS
        )


async def seller_for_token(session: AsyncSession, token: str) -> Seller:
    if not token.startswith(TOKEN_PREFIX):
        raise Unauthorized("That is not a seller token.", code=CommonErrorCode.INVALID_TOKEN)
    found = await session.exec(select(Seller).where(Seller.token_hash == hash_token(token)))
    seller = found.first()
    if seller is None:
        raise Unauthorized("Unknown seller token.", code=CommonErrorCode.INVALID_TOKEN)
    return seller


async def shops_of(session: AsyncSession, seller: Seller) -> Sequence[Shop]:
    found = await session.exec(select(Shop).where(Shop.seller_id == seller.id).order_by("id"))
    return found.all()


async def create_shop(session: AsyncSession, seller: Seller, name: str) -> Shop:
    assert seller.id is not None
    seller_id = seller.id  # read before a rollback expires the seller
    for _ in range(HANDLE_TRIES):
        shop = await _add_shop(session, seller_id, name)
        try:
            await session.commit()
        except IntegrityError:  # a racing request took the handle: the next pass draws another
            await session.rollback()
            continue
        return shop
    raise _handle_race(name)


async def _add_shop(session: AsyncSession, seller_id: int, name: str) -> Shop:
    shop = Shop(
        seller_id=seller_id,
        name=name,
        handle=await _free_handle(session, name),
        created_ms=now_ms(),
    )
    session.add(shop)
    return shop


async def _free_handle(session: AsyncSession, name: str) -> str:
    """The name's handle, or, taken, the name's with a random suffix. Only the unique index
    decides: a racing request may take it before this one commits (callers draw again)."""
    base = handle_for(name) or "shop"
    handle = base
    while (await session.exec(select(Shop.id).where(Shop.handle == handle))).first() is not None:
        handle = f"{base}-{secrets.token_hex(3)}"
    return handle


def _handle_race(name: str) -> Conflict:
    return Conflict(
        "Other shops took this name's address while it was being made; try again.",
        code=CatalogErrorCode.HANDLE_TAKEN,
        name=name[:60],
    )


async def shop_by_handle(session: AsyncSession, handle: str) -> Shop:
    found = (await session.exec(select(Shop).where(Shop.handle == handle))).first()
    if found is None:
        raise NotFound("No such shop.", code=CatalogErrorCode.SHOP_NOT_FOUND, handle=handle[:60])
    return found


async def foreign_products(
    session: AsyncSession, shop_id: int, product_ids: Sequence[int]
) -> list[int]:
    """Those of ``product_ids`` that are not the shop's (another's, or none at all)."""
    found = await session.exec(
        select(Product.id).where(col(Product.id).in_(product_ids), col(Product.shop_id) == shop_id)
    )
    return sorted(set(product_ids) - set(found.all()))


async def get_shop(session: AsyncSession, shop_id: int) -> Shop:
    shop = await session.get(Shop, shop_id)
    if shop is None:
        raise NotFound("No such shop.", code=CatalogErrorCode.SHOP_NOT_FOUND, shop_id=shop_id)
    return shop


async def owned_shop(session: AsyncSession, seller: Seller, shop_id: int) -> Shop:
    shop = await session.get(Shop, shop_id)
    if shop is None or shop.seller_id != seller.id:
        raise NotFound(
            "No such shop among yours.", code=CatalogErrorCode.SHOP_NOT_FOUND, shop_id=shop_id
        )
    return shop


async def set_payout_method(
    session: AsyncSession, seller: Seller, shop_id: int, payout_method: str
) -> Shop:
    """Where the shop's withdrawals go from now on ("" removes it: no withdrawal until one is
    set again). A payout already requested keeps the destination it was made with."""
    shop = await owned_shop(session, seller, shop_id)
    shop.payout_method = payout_method
    session.add(shop)
    await session.commit()
    await session.refresh(shop)
    return shop


async def set_shipping(
    session: AsyncSession, seller: Seller, shop_id: int, kind: str, fee: int, free_over: int
) -> Shop:
    """The shop's shipping rule from now on (checkout.pricing.ShippingKind). A hold already
    made keeps the fee it was quoted; the caller pushes the rule to the shop's shelf."""
    shop = await owned_shop(session, seller, shop_id)
    if (kind == "free_over") != (free_over > 0):
        raise Invalid(
            "free_over is 1 or more for a free_over rule, and 0 for the others.",
            code=CatalogErrorCode.INVALID_SHIPPING_RULE,
            field="free_over",
        )
    shop.shipping_kind, shop.shipping_fee, shop.shipping_free_over = kind, fee, free_over
    session.add(shop)
    await session.commit()
    await session.refresh(shop)
    return shop


def shipping_json(shop: Shop) -> dict[str, Any]:
    return {
        "kind": shop.shipping_kind,
        "fee": shop.shipping_fee,
        "free_over": shop.shipping_free_over,
    }


async def create_product(
    session: AsyncSession, seller: Seller, shop_id: int, fields: dict[str, Any]
) -> Product:
    await owned_shop(session, seller, shop_id)
    fields = {**fields, "options": variants.checked_options(fields.get("options") or [])}
    product = Product(shop_id=shop_id, created_ms=now_ms(), **fields)
    session.add(product)
    await session.commit()
    return product


async def in_shop_of(session: AsyncSession, seller: Seller, shop_id: int) -> bool:
    """Whether a shop is the seller's. Callers answer a foreign product, SKU or deal exactly as
    a missing one: no existence leak."""
    shop = await session.get(Shop, shop_id)
    return shop is not None and shop.seller_id == seller.id


def _no_product(product_id: int) -> NotFound:
    return NotFound(
        "No such product.", code=CatalogErrorCode.PRODUCT_NOT_FOUND, product_id=product_id
    )


async def get_product(session: AsyncSession, product_id: int) -> Product:
    product = await session.get(Product, product_id)
    if product is None:
        raise _no_product(product_id)
    return product


async def owned_product(session: AsyncSession, seller: Seller, product_id: int) -> Product:
    product = await get_product(session, product_id)
    if not await in_shop_of(session, seller, product.shop_id):
        raise _no_product(product_id)
    return product


async def sellable_product(session: AsyncSession, seller: Seller, product_id: int) -> Product:
    """One of the seller's products that may go into a room's bag or a new deal."""
    product = await owned_product(session, seller, product_id)
    _refuse_archived(product)
    return product


def _refuse_archived(product: Product) -> None:
    if product.archived:
        raise Conflict(
            "The product is archived; unarchive it to sell it again.",
            code=CatalogErrorCode.PRODUCT_ARCHIVED,
            product_id=product.id,
        )


async def list_products(
    session: AsyncSession, shop_id: int | None = None, *, archived: bool | None = False
) -> Sequence[Product]:
    """Products on sale (the default), archived ones (``archived=True``) or all (``None``)."""
    query = select(Product).order_by(col(Product.id))
    if shop_id is not None:
        query = query.where(Product.shop_id == shop_id)
    if archived is not None:
        archived_ms = col(Product.archived_ms)
        query = query.where(archived_ms.is_not(None) if archived else archived_ms.is_(None))
    return (await session.exec(query)).all()


async def update_product(
    session: AsyncSession, seller: Seller, product_id: int, fields: dict[str, Any]
) -> Product:
    product = await owned_product(session, seller, product_id)
    await _set_fields(session, product, fields)
    await session.commit()
    return product


async def _set_fields(session: AsyncSession, product: Product, fields: Mapping[str, Any]) -> None:
    """Set a product's fields in the open transaction; options only as catalog/variants.py
    allows them to change under the product's SKUs (the row is locked first on PostgreSQL,
    so a SKU added meanwhile is seen)."""
    if "options" in fields:
        await _lock(session, product)
        new = variants.checked_options(fields["options"])
        used = [sku.options for sku in await skus_of(session, product.id or 0)]
        variants.check_change(product.options, new, used)
        fields = {**fields, "options": new}
    for name, value in fields.items():
        setattr(product, name, value)
    session.add(product)


async def _lock(session: AsyncSession, product: Product) -> None:
    # SQLite has no row locks (its one writer serialises the transactions that write).
    await session.exec(select(Product.id).where(Product.id == product.id).with_for_update())


async def edit_product(
    session: AsyncSession,
    seller: Seller,
    product_id: int,
    fields: dict[str, Any],
    sku_fields: Mapping[int, dict[str, Any]],
) -> Product:
    """Change a product and some of its SKUs in one transaction: all of it, or (when a SKU's
    stock is refused, as ``update_sku`` refuses it) none of it."""
    product = await owned_product(session, seller, product_id)
    skus = {sku.id: sku for sku in await skus_of(session, product_id)}
    for sku_id in sku_fields:
        if sku_id not in skus:
            raise NotFound(
                "No such SKU on this product.", code=CatalogErrorCode.SKU_NOT_FOUND, sku_id=sku_id
            )
    await _set_fields(session, product, fields)
    for sku_id, changes in sku_fields.items():
        await _change_sku(session, skus[sku_id], changes)
    await session.commit()
    await session.refresh(product)
    return product


async def archive_product(session: AsyncSession, seller: Seller, product_id: int) -> Product:
    """Take the product off sale, keeping it (its orders and deals point at it). Refused while
    one of its SKUs has a live deal: stop the deal first. Idempotent."""
    product = await owned_product(session, seller, product_id)
    running = exists().where(
        col(Deal.sku_id) == col(Sku.id),
        col(Sku.product_id) == product_id,
        col(Deal.status).in_(SELLING_DEAL_STATUSES),
    )
    # One guarded UPDATE: a deal that starts meanwhile cannot slip under the check.
    moved = await session.exec(
        update(Product)
        .where(col(Product.id) == product_id, col(Product.archived_ms).is_(None), ~running)
        .values(archived_ms=now_ms())
    )
    await session.commit()
    await session.refresh(product)
    if moved.rowcount != 1 and not product.archived:
        deal_ids = await _running_deal_ids(session, product_id)
        raise Conflict(
            "A deal on this product is live; stop it before archiving.",
            code=CatalogErrorCode.PRODUCT_HAS_LIVE_DEAL,
            product_id=product_id,
            deal_ids=deal_ids,
        )
    return product


async def _running_deal_ids(session: AsyncSession, product_id: int) -> list[int]:
    query = (
        select(Deal.id)
        .join(Sku, col(Sku.id) == col(Deal.sku_id))
        .where(col(Sku.product_id) == product_id, col(Deal.status).in_(SELLING_DEAL_STATUSES))
    )
    return [deal_id for deal_id in (await session.exec(query)).all() if deal_id is not None]


async def unarchive_product(session: AsyncSession, seller: Seller, product_id: int) -> Product:
    """Put an archived product back on sale. Idempotent."""
    product = await owned_product(session, seller, product_id)
    product.archived_ms = None
    session.add(product)
    await session.commit()
    await session.refresh(product)
    return product


async def delete_product(session: AsyncSession, seller: Seller, product_id: int) -> None:
    product = await owned_product(session, seller, product_id)
    if (await session.exec(select(Sku.id).where(Sku.product_id == product_id))).first():
        raise Conflict("Delete the product's SKUs first.", code=CatalogErrorCode.PRODUCT_HAS_SKUS)
    await session.delete(product)
    await session.commit()


async def create_sku(
    session: AsyncSession, seller: Seller, product_id: int, fields: dict[str, Any]
) -> Sku:
    product = await owned_product(session, seller, product_id)
    assert product.id is not None
    await _lock(session, product)
    named = _named(product, fields.pop("options", None), fields.pop("variant", ""))
    sku = Sku(product_id=product.id, shop_id=product.shop_id, **fields, **named)
    session.add(sku)
    await _commit_variant(session, product.id, named)
    return sku


def _named(product: Product, values: Mapping[str, str] | None, variant: str) -> dict[str, Any]:
    """A SKU's variant, options and combination: from its values when the product has
    options (a free-text name is refused then), else its free-text name."""
    if not product.options:
        if values:
            raise Invalid(
                "The product has no options: name the SKU with `variant`, or give the product "
                "options first.",
                code=CatalogErrorCode.INVALID_VARIANT,
            )
        return {"variant": variant, "options": {}, "combination": None}
    if variant:
        raise Invalid(
            "The SKU's name comes from its options: send `options`, not `variant`.",
            code=CatalogErrorCode.INVALID_VARIANT,
            options=[o["name"] for o in product.options],
        )
    chosen = variants.sku_values(product.options, values or {})
    name = variants.label(product.options, chosen)
    return {"variant": name, "options": chosen, "combination": name.casefold()}


async def _commit_variant(session: AsyncSession, product_id: int, named: Mapping[str, Any]) -> None:
    """Commit; the unique (product, combination) refuses a second SKU of the same values,
    however the two requests interleave."""
    try:
        await session.commit()
    except IntegrityError as error:
        await _refuse_twin(session, product_id, named, error)


async def _refuse_twin(
    session: AsyncSession, product_id: int, named: Mapping[str, Any], error: IntegrityError
) -> None:
    """After an integrity error: roll back, and refuse with the SKU that has these values."""
    await session.rollback()
    if named.get("combination") is not None:
        twin = (
            await session.exec(
                select(Sku.id).where(
                    Sku.product_id == product_id, Sku.combination == named["combination"]
                )
            )
        ).first()
        if twin is not None:
            raise Conflict(
                f"The product already has a SKU {named['variant']!r}.",
                code=CatalogErrorCode.VARIANT_EXISTS,
                sku_id=twin,
            )
    raise error  # not the combination: a bug, not the seller's mistake


def _no_sku(sku_id: int) -> NotFound:
    return NotFound("No such SKU.", code=CatalogErrorCode.SKU_NOT_FOUND, sku_id=sku_id)


async def get_sku(session: AsyncSession, sku_id: int) -> Sku:
    sku = await session.get(Sku, sku_id)
    if sku is None:
        raise _no_sku(sku_id)
    return sku


async def owned_sku(session: AsyncSession, seller: Seller, sku_id: int) -> Sku:
    sku = await get_sku(session, sku_id)
    if not await in_shop_of(session, seller, sku.shop_id):
        raise _no_sku(sku_id)
    return sku


async def skus_of(session: AsyncSession, product_id: int) -> Sequence[Sku]:
    query = select(Sku).where(Sku.product_id == product_id).order_by(col(Sku.id))
    return (await session.exec(query)).all()


async def update_sku(
    session: AsyncSession, seller: Seller, sku_id: int, fields: dict[str, Any]
) -> Sku:
    sku = await owned_sku(session, seller, sku_id)
    await _change_sku(session, sku, fields)
    await _commit_variant(
        session, sku.product_id, {"variant": sku.variant, "combination": sku.combination}
    )
    await session.refresh(sku)
    return sku


async def _change_sku(session: AsyncSession, sku: Sku, fields: Mapping[str, Any]) -> None:
    """Set a SKU's fields in the open transaction; on a refused stock, roll the whole
    transaction back and raise. With ``expected_stock`` the stock is set only if it still is
    that (a page's edit: units sold while it was open are not put back)."""
    changes = dict(fields)
    stock = changes.pop("stock", None)
    expected = changes.pop("expected_stock", None)
    sku_id, product_id = sku.id, sku.product_id
    if "options" in changes or "variant" in changes:
        product = await session.get(Product, sku.product_id)
        assert product is not None
        values = changes.pop("options", None)
        if product.options:  # the name comes from the values: the ones given, or its own
            variant = changes.pop("variant", "")
            values = sku.options if values is None else values
        else:
            variant = changes.pop("variant", sku.variant)
        changes.update(_named(product, values, variant))
    for name, value in changes.items():
        setattr(sku, name, value)
    session.add(sku)
    try:
        await session.flush()
    except IntegrityError as error:
        await _refuse_twin(session, product_id, changes, error)
    if stock is None:
        return
    # Guarded: stock may not drop below what started deals were promised and the shelf holds
    # (the caller takes units off the shelf first: checkout.shelving.Shelving.free).
    guard = [col(Sku.id) == sku_id, col(Sku.allocated) + col(Sku.shelved) <= stock]
    if expected is not None:
        guard.append(col(Sku.stock) == expected)
    moved = await session.exec(update(Sku).where(*guard).values(stock=stock))
    if moved.rowcount != 1:
        await session.rollback()
        await session.refresh(sku)
        if expected is not None and sku.stock != expected:
            raise Conflict(
                f"The stock changed while you edited it (orders came in): it is {sku.stock} now.",
                code=CatalogErrorCode.STOCK_CHANGED,
                stock=sku.stock,
                expected=expected,
                sku_id=sku_id,
            )
        raise Conflict(
            "Live deals were promised more units than that, or buyers hold them in carts.",
            code=CatalogErrorCode.STOCK_ALLOCATED,
            allocated=sku.allocated,
            shelved=sku.shelved,
            stock=stock,
            sku_id=sku_id,
        )


async def delete_sku(session: AsyncSession, seller: Seller, sku_id: int) -> None:
    sku = await owned_sku(session, seller, sku_id)
    if (await session.exec(select(Deal.id).where(Deal.sku_id == sku_id))).first():
        # Deals and their orders point at the SKU: it stays as their record.
        raise Conflict(
            "A deal was made on this SKU; set its stock to 0 instead.",
            code=CatalogErrorCode.SKU_IN_USE,
            sku_id=sku_id,
        )
    await session.delete(sku)
    try:
        await session.commit()
    except IntegrityError:
        # Orders, their lines or the shelf's moves point at it (it was sold or put on sale at
        # list price): the database refuses, and the SKU stays as their record.
        await session.rollback()
        raise Conflict(
            "This SKU was sold or put on sale; set its stock to 0 instead.",
            code=CatalogErrorCode.SKU_IN_USE,
            sku_id=sku_id,
        ) from None


async def create_deal(
    session: AsyncSession,
    seller: Seller,
    sku_id: int,
    terms: DealTerms,
    room_id: int | None = None,
) -> Deal:
    sku = await owned_sku(session, seller, sku_id)
    _refuse_archived(await get_product(session, sku.product_id))
    deal = new_deal(sku, terms, room_id)
    session.add(deal)
    await session.commit()
    return deal


def new_deal(sku: Sku, terms: DealTerms, room_id: int | None) -> Deal:
    """A deal on ``sku`` with checked terms, not yet added to a session."""
    assert sku.id is not None
    check_deal_terms(terms, list_price=sku.list_price, stock=sku.stock - sku.allocated)
    return Deal(
        shop_id=sku.shop_id,
        sku_id=sku.id,
        deal_price=terms.deal_price,
        currency=sku.currency,
        quantity=terms.quantity,
        per_buyer_limit=terms.per_buyer_limit,
        starts_ms=terms.starts_ms,
        ends_ms=terms.ends_ms,
        created_ms=now_ms(),
        room_id=room_id,
        accounts_only=terms.accounts_only,
    )


async def create_lot(
    session: AsyncSession,
    seller: Seller,
    sku_id: int,
    start_price: int,
    *,
    starts_ms: int,
    ends_ms: int,
    room_id: int,
) -> Deal:
    """An auction's lot (decision 0031): a deal of one unit of the SKU, priced at the starting
    bid until the hammer falls (which may be above the list price). Its window only bounds
    the auction and the winners' pay windows; the auction ends it."""
    sku = await owned_sku(session, seller, sku_id)
    _refuse_archived(await get_product(session, sku.product_id))
    deal = Deal(
        shop_id=sku.shop_id,
        sku_id=sku_id,
        deal_price=start_price,
        currency=sku.currency,
        quantity=1,
        per_buyer_limit=1,
        starts_ms=starts_ms,
        ends_ms=ends_ms,
        created_ms=now_ms(),
        room_id=room_id,
        kind="lot",
    )
    session.add(deal)
    await session.commit()
    return deal


def _no_deal(deal_id: int) -> NotFound:
    return NotFound("No such deal.", code=CatalogErrorCode.DEAL_NOT_FOUND, deal_id=deal_id)


async def get_deal(session: AsyncSession, deal_id: int) -> Deal:
    deal = await session.get(Deal, deal_id)
    if deal is None:
        raise _no_deal(deal_id)
    return deal


async def owned_deal(session: AsyncSession, seller: Seller, deal_id: int) -> Deal:
    deal = await get_deal(session, deal_id)
    if not await in_shop_of(session, seller, deal.shop_id):
        raise _no_deal(deal_id)
    return deal


async def deals_of_shops(
    session: AsyncSession, shop_ids: Sequence[int], limit: int = 100
) -> list[tuple[Deal, Sku, Product]]:
    """The shops' newest deals, each with its SKU and product."""
    query = (
        select(Deal, Sku, Product)
        .join(Sku, col(Sku.id) == col(Deal.sku_id))
        .join(Product, col(Product.id) == col(Sku.product_id))
        .where(col(Deal.shop_id).in_(shop_ids))
        .order_by(col(Deal.id).desc())
        .limit(limit)
    )
    return [(deal, sku, product) for deal, sku, product in (await session.exec(query)).all()]


async def lots_of_rooms(
    session: AsyncSession, room_ids: Sequence[int], limit: int = 100
) -> list[tuple[Deal, Sku, Product]]:
    """The rooms' auction and giveaway lots (decision 0031), newest first, each with its SKU
    and product."""
    query = (
        select(Deal, Sku, Product)
        .join(Sku, col(Sku.id) == col(Deal.sku_id))
        .join(Product, col(Product.id) == col(Sku.product_id))
        .where(col(Deal.kind) == "lot", col(Deal.room_id).in_(room_ids))
        .order_by(col(Deal.id).desc())
        .limit(limit)
    )
    return [(deal, sku, product) for deal, sku, product in (await session.exec(query)).all()]


async def list_deals(session: AsyncSession, status: DealStatus | None = None) -> Sequence[Deal]:
    query = select(Deal).order_by(col(Deal.id))
    if status is not None:
        query = query.where(Deal.status == status)
    return (await session.exec(query)).all()


async def end_deal(session: AsyncSession, deal: Deal) -> Deal:
    """live -> ended: the seller, or the end of its room, stopped it. Guarded: of concurrent
    stops one wins, and the others are refused (409 deal_not_live)."""
    moved = await session.exec(_move(deal.id, DealStatus.ENDED))
    await session.commit()
    if moved.rowcount != 1:
        raise refused(deal.id, DealStatus.ENDED)
    await session.refresh(deal)
    return deal


def _move(deal_id: int | None, target: DealStatus) -> Update:
    """A move's guarded UPDATE: it changes the row only from a state ``target`` may be reached
    from (``catalog.deal_status.TRANSITIONS``), so of two racing moves one wins."""
    return (
        update(Deal)
        .where(col(Deal.id) == deal_id, col(Deal.status).in_(sources(target)))
        .values(status=target)
    )


async def start_deal(session: AsyncSession, deal: Deal) -> Deal:
    """scheduled -> live, allocating the deal's units on its SKU in the same transaction.

    Both updates are guarded, so concurrent starts of deals on one SKU can never promise more
    units than the SKU has, and a deal starts once.
    """
    # Read before any rollback: a rollback expires the ORM object.
    deal_id, sku_id, quantity = deal.id, deal.sku_id, deal.quantity
    on_sale = exists().where(
        col(Product.id) == col(Sku.product_id), col(Product.archived_ms).is_(None)
    )
    allocated = await session.exec(
        update(Sku)
        .where(col(Sku.id) == sku_id, _free(quantity), on_sale)
        .values(allocated=col(Sku.allocated) + quantity)
    )
    if allocated.rowcount != 1:
        await session.rollback()
        sku = await get_sku(session, sku_id)
        _refuse_archived(await get_product(session, sku.product_id))
        raise Conflict(
            "The SKU no longer has the units this deal promises.",
            code=CatalogErrorCode.STOCK_UNAVAILABLE,
            quantity=quantity,
            unallocated=sku.stock - sku.allocated - sku.shelved,
        )
    moved = await session.exec(_move(deal_id, DealStatus.LIVE))
    if moved.rowcount != 1:
        await session.rollback()
        raise refused(deal_id, DealStatus.LIVE)
    await session.commit()
    await session.refresh(deal)
    return deal


def _free(units: int) -> Any:
    """The SKU has ``units`` free: neither promised to a started deal nor on the shelf."""
    return col(Sku.stock) - col(Sku.allocated) - col(Sku.shelved) >= units


async def settle_deal(session: AsyncSession, deal: Deal, sold: int) -> bool:
    """The deal is over and no hold is left: give its unsold units back to the SKU, once.

    Returns whether this call settled it (several sweepers may try at the same time).
    """
    moved = await session.exec(_move(deal.id, DealStatus.SETTLED))
    if moved.rowcount != 1:
        await session.rollback()
        return False
    await session.exec(
        update(Sku)
        .where(col(Sku.id) == deal.sku_id)
        .values(allocated=col(Sku.allocated) - (deal.quantity - sold))
    )
    await session.commit()
    return True
