"""Seller-facing catalog API: shops, products, SKUs and deals; public reads for viewers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from catalog import service
from catalog.deal_status import DealStatus
from catalog.error_codes import CatalogErrorCode
from catalog.models import Deal, Product, Shop, Sku
from catalog.rules import DealTerms
from checkout import deals
from checkout.deals import deal_json, started_state
from checkout.error_codes import CheckoutErrorCode
from checkout.shelving import Shelving
from kernel.clock import now_ms
from kernel.errors import Invalid
from people.roles import Duty
from web import responses as out
from web.auth import seller
from web.error_codes import WebErrorCode
from web.http import JSONResponse, json_body
from web.routing import ID_SCHEMA, Answer, Api, Param
from web.schemas import (
    MAX_ID,
    DealIn,
    PayoutMethodIn,
    ProductIn,
    ProductPatch,
    ShippingRuleIn,
    ShopIn,
    SkuIn,
    SkuPatch,
)
from web.services import Services, services

api = Api()
DEAL_STATUSES = sorted(s.value for s in DealStatus)


def shop_json(shop: Shop) -> dict[str, Any]:
    return {"id": shop.id, "name": shop.name, "handle": shop.handle}


def sku_json(sku: Sku) -> dict[str, Any]:
    return {
        "id": sku.id,
        "product_id": sku.product_id,
        "variant": sku.variant,
        "options": sku.options,
        "image_url": sku.image_url,
        "list_price": sku.list_price,
        "currency": sku.currency,
        "stock": sku.stock,
        "allocated": sku.allocated,
    }


def product_json(product: Product, skus: list[Sku] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": product.id,
        "shop_id": product.shop_id,
        "title": product.title,
        "description": product.description,
        "category": product.category,
        "image_urls": product.image_urls,
        "options": product.options,
        "archived": product.archived,
        "archived_ms": product.archived_ms,
    }
    if skus is not None:
        body["skus"] = [sku_json(s) for s in skus]
    return body


@api.route(
    "GET",
    "/api/shops",
    "List your shops",
    auth="seller",
    duty=Duty.READ,
    tag="catalog",
    ok={200: out.ShopList},
)
async def list_shops(request: Request) -> Response:
    me = await seller(request)
    async with services(request).db.session() as session:
        shops = await service.shops_of(session, me)
    return JSONResponse({"shops": [shop_json(s) for s in shops]})


@api.route(
    "POST",
    "/api/shops",
    "Open another shop",
    body=ShopIn,
    auth="seller",
    duty=Duty.CATALOG,
    tag="catalog",
    ok={201: out.ShopAnswer},
)
async def create_shop(request: Request) -> Response:
    me = await seller(request)
    body = await json_body(request, ShopIn)
    async with services(request).db.session() as session:
        shop = await service.create_shop(session, me, body.name)
    return JSONResponse({"shop": shop_json(shop)}, status_code=201)


@api.route(
    "PUT",
    "/api/shops/{shop_id:id}/shipping",
    "Set your shop's shipping fee: flat, free over an amount, or per item",
    body=ShippingRuleIn,
    auth="seller",
    duty=Duty.CATALOG,
    tag="catalog",
    ok={200: out.ShippingRuleAnswer},
    errors=(CatalogErrorCode.SHOP_NOT_FOUND, CatalogErrorCode.INVALID_SHIPPING_RULE),
)
async def set_shipping(request: Request) -> Response:
    me = await seller(request)
    body = await json_body(request, ShippingRuleIn)
    svc = services(request)
    async with svc.db.session() as session:
        shop = await service.set_shipping(
            session, me, request.path_params["shop_id"], body.kind, body.fee, body.free_over
        )
        # A push lost here (a crash after the commit) is made good by the order sweep's resync.
        await Shelving(svc.holds.shelf).publish_shipping(session, shop.id or 0)
    return JSONResponse({"shop_id": shop.id, "shipping": service.shipping_json(shop)})


@api.route(
    "GET",
    "/api/shops/{shop_id:id}/shipping",
    "A shop's shipping fee rule",
    tag="catalog",
    ok={200: out.ShippingRuleAnswer},
    errors=(CatalogErrorCode.SHOP_NOT_FOUND,),
)
async def get_shipping(request: Request) -> Response:
    async with services(request).db.session() as session:
        shop = await service.get_shop(session, request.path_params["shop_id"])
    return JSONResponse({"shop_id": shop.id, "shipping": service.shipping_json(shop)})


@api.route(
    "PUT",
    "/api/shops/{shop_id:id}/payout-method",
    "Set where your shop's withdrawals go (an account reference the payment provider "
    'understands), or remove it with ""',
    body=PayoutMethodIn,
    auth="seller",
    duty=Duty.MONEY,
    tag="finance",
    ok={200: out.PayoutMethodAnswer},
    errors=(CatalogErrorCode.SHOP_NOT_FOUND,),
)
async def set_payout_method(request: Request) -> Response:
    me = await seller(request)
    body = await json_body(request, PayoutMethodIn)
    async with services(request).db.session() as session:
        shop = await service.set_payout_method(
            session, me, request.path_params["shop_id"], body.payout_method
        )
    return JSONResponse({"shop_id": shop.id, "payout_method": shop.payout_method})


@api.route(
    "GET",
    "/api/products",
    "List products on sale (optionally ?shop_id=)",
    tag="catalog",
    query=(Param("shop_id", "Only this shop's (no such shop: none)", ID_SCHEMA),),
    ok={200: out.ProductList},
)
async def list_products(request: Request) -> Response:
    raw = request.query_params.get("shop_id")
    shop_id = int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) <= 15 else None
    if raw is not None and (shop_id is None or shop_id > MAX_ID):
        return JSONResponse({"products": []})
    async with services(request).db.session() as session:
        products = await service.list_products(session, shop_id)
    return JSONResponse({"products": [product_json(p) for p in products]})


@api.route(
    "POST",
    "/api/shops/{shop_id:id}/products",
    "Add a product to your shop",
    body=ProductIn,
    auth="seller",
    duty=Duty.CATALOG,
    tag="catalog",
    ok={201: out.ProductAnswer},
    errors=(CatalogErrorCode.SHOP_NOT_FOUND, CatalogErrorCode.INVALID_VARIANT),
)
async def create_product(request: Request) -> Response:
    me = await seller(request)
    body = await json_body(request, ProductIn)
    async with services(request).db.session() as session:
        product = await service.create_product(
            session, me, request.path_params["shop_id"], body.model_dump()
        )
    return JSONResponse({"product": product_json(product, [])}, status_code=201)


@api.route(
    "GET",
    "/api/products/{product_id:id}",
    "A product with its SKUs",
    tag="catalog",
    ok={200: out.ProductAnswer},
    errors=(CatalogErrorCode.PRODUCT_NOT_FOUND,),
)
async def get_product(request: Request) -> Response:
    async with services(request).db.session() as session:
        product = await service.get_product(session, request.path_params["product_id"])
        skus = await service.skus_of(session, request.path_params["product_id"])
    return JSONResponse({"product": product_json(product, list(skus))})


@api.route(
    "PATCH",
    "/api/products/{product_id:id}",
    "Edit your product",
    body=ProductPatch,
    auth="seller",
    duty=Duty.CATALOG,
    tag="catalog",
    ok={200: out.ProductAnswer},
    errors=(
        CatalogErrorCode.PRODUCT_NOT_FOUND,
        CatalogErrorCode.INVALID_VARIANT,
        CatalogErrorCode.OPTIONS_IN_USE,
    ),
)
async def update_product(request: Request) -> Response:
    me = await seller(request)
    body = await json_body(request, ProductPatch)
    async with services(request).db.session() as session:
        product = await service.update_product(
            session, me, request.path_params["product_id"], body.model_dump(exclude_unset=True)
        )
    return JSONResponse({"product": product_json(product)})


@api.route(
    "DELETE",
    "/api/products/{product_id:id}",
    "Delete your product (no SKUs left)",
    auth="seller",
    duty=Duty.CATALOG,
    tag="catalog",
    ok={204: Answer(description="Deleted")},
    errors=(CatalogErrorCode.PRODUCT_NOT_FOUND, CatalogErrorCode.PRODUCT_HAS_SKUS),
)
async def delete_product(request: Request) -> Response:
    me = await seller(request)
    async with services(request).db.session() as session:
        await service.delete_product(session, me, request.path_params["product_id"])
    return Response(status_code=204)


@api.route(
    "POST",
    "/api/products/{product_id:id}/archive",
    "Take your product off sale (no live deal on it); undo with /unarchive",
    auth="seller",
    duty=Duty.CATALOG,
    tag="catalog",
    ok={200: out.ProductAnswer},
    errors=(CatalogErrorCode.PRODUCT_NOT_FOUND, CatalogErrorCode.PRODUCT_HAS_LIVE_DEAL),
)
async def archive_product(request: Request) -> Response:
    me = await seller(request)
    async with services(request).db.session() as session:
        product = await service.archive_product(session, me, request.path_params["product_id"])
        await Shelving(services(request).holds.shelf).publish_product(session, product.id or 0)
    return JSONResponse({"product": product_json(product)})


@api.route(
    "POST",
    "/api/products/{product_id:id}/unarchive",
    "Put your archived product back on sale",
    auth="seller",
    duty=Duty.CATALOG,
    tag="catalog",
    ok={200: out.ProductAnswer},
    errors=(CatalogErrorCode.PRODUCT_NOT_FOUND,),
)
async def unarchive_product(request: Request) -> Response:
    me = await seller(request)
    async with services(request).db.session() as session:
        product = await service.unarchive_product(session, me, request.path_params["product_id"])
        await Shelving(services(request).holds.shelf).publish_product(session, product.id or 0)
    return JSONResponse({"product": product_json(product)})


@api.route(
    "POST",
    "/api/products/{product_id:id}/skus",
    "Add a SKU to your product",
    body=SkuIn,
    auth="seller",
    duty=Duty.CATALOG,
    tag="catalog",
    ok={201: out.SkuAnswer},
    errors=(
        CatalogErrorCode.PRODUCT_NOT_FOUND,
        CatalogErrorCode.INVALID_VARIANT,
        CatalogErrorCode.VARIANT_EXISTS,
    ),
)
async def create_sku(request: Request) -> Response:
    me = await seller(request)
    body = await json_body(request, SkuIn)
    async with services(request).db.session() as session:
        sku = await service.create_sku(
            session, me, request.path_params["product_id"], body.model_dump()
        )
    return JSONResponse({"sku": sku_json(sku)}, status_code=201)


@api.route(
    "PATCH",
    "/api/skus/{sku_id:id}",
    "Change a SKU's price, stock, picture, name or option values",
    body=SkuPatch,
    auth="seller",
    duty=Duty.CATALOG,
    tag="catalog",
    ok={200: out.SkuAnswer},
    errors=(
        CatalogErrorCode.SKU_NOT_FOUND,
        CatalogErrorCode.STOCK_ALLOCATED,
        CatalogErrorCode.INVALID_VARIANT,
        CatalogErrorCode.VARIANT_EXISTS,
    ),
)
async def update_sku(request: Request) -> Response:
    me = await seller(request)
    body = await json_body(request, SkuPatch)
    svc = services(request)
    async with svc.db.session() as session:
        if body.stock is not None:
            await service.owned_sku(session, me, request.path_params["sku_id"])
            await Shelving(svc.holds.shelf).lower_to(
                session, request.path_params["sku_id"], body.stock
            )
        sku = await service.update_sku(
            session, me, request.path_params["sku_id"], body.model_dump(exclude_unset=True)
        )
        # Its price may have changed: holds price their lines on the shelf.
        shelving = Shelving(svc.holds.shelf)
        await shelving.publish(session, [sku.id or 0])
        if body.stock is not None and await shelving.shelf.waiting_for(sku.shop_id, sku.id or 0):
            # Buyers wait for it: new units go on the shelf now, to them first (decision 0036).
            await shelving.fill(session, [sku.id or 0])
    return JSONResponse({"sku": sku_json(sku)})


@api.route(
    "DELETE",
    "/api/skus/{sku_id:id}",
    "Delete a SKU no deal was made on",
    auth="seller",
    duty=Duty.CATALOG,
    tag="catalog",
    ok={204: Answer(description="Deleted")},
    errors=(CatalogErrorCode.SKU_NOT_FOUND, CatalogErrorCode.SKU_IN_USE),
)
async def delete_sku(request: Request) -> Response:
    me = await seller(request)
    async with services(request).db.session() as session:
        sku = await service.owned_sku(session, me, request.path_params["sku_id"])
        shop_id, sku_id = sku.shop_id, sku.id or 0
        await service.delete_sku(session, me, sku_id)
        await Shelving(services(request).holds.shelf).withdraw(shop_id, sku_id)
    return Response(status_code=204)


@api.route(
    "GET",
    "/api/deals",
    f"List deals (optionally ?status={'|'.join(DealStatus)})",
    tag="deals",
    query=(Param("status", "Only deals in this status", {"enum": DEAL_STATUSES}),),
    ok={200: out.DealList},
    errors=(WebErrorCode.INVALID_STATUS,),
)
async def list_deals(request: Request) -> Response:
    svc = services(request)
    status = request.query_params.get("status")
    if status is not None and status not in DEAL_STATUSES:
        raise Invalid(
            "Unknown deal status.", code=WebErrorCode.INVALID_STATUS, allowed=DEAL_STATUSES
        )
    async with svc.db.session() as session:
        deals = await service.list_deals(session, None if status is None else DealStatus(status))
    states = [await started_state(svc.holds, d) for d in deals]
    return JSONResponse(
        {
            "deals": [deal_json(d, s) for d, s in zip(deals, states, strict=True)],
            "server_ms": now_ms(),
        }
    )


async def _with_stock(svc: Services, deal: Deal) -> Response:
    """A deal's answer with its live stock counts from the hold store."""
    return JSONResponse({"deal": deal_json(deal, await svc.holds.snapshot(deal.id or 0))})


@api.route(
    "GET",
    "/api/deals/{deal_id:id}",
    "A deal with its live stock counts",
    tag="deals",
    ok={200: out.DealAnswer},
    errors=(CatalogErrorCode.DEAL_NOT_FOUND,),
)
async def get_deal(request: Request) -> Response:
    svc = services(request)
    async with svc.db.session() as session:
        deal = await service.get_deal(session, request.path_params["deal_id"])
    return await _with_stock(svc, deal)


@api.route(
    "POST",
    "/api/deals",
    "Schedule a flash deal on one of your SKUs",
    body=DealIn,
    auth="seller",
    duty=Duty.LIVE,
    tag="deals",
    ok={201: out.DealAnswer},
    errors=(
        CatalogErrorCode.SKU_NOT_FOUND,
        CatalogErrorCode.PRODUCT_ARCHIVED,
        CatalogErrorCode.INVALID_PRICE,
        CatalogErrorCode.DEAL_PRICE_NOT_BELOW_LIST,
        CatalogErrorCode.DEAL_QUANTITY_ABOVE_STOCK,
        CatalogErrorCode.LIMIT_ABOVE_QUANTITY,
        CatalogErrorCode.INVALID_WINDOW,
    ),
)
async def create_deal(request: Request) -> Response:
    me = await seller(request)
    body = await json_body(request, DealIn)
    starts = body.starts_ms if body.starts_ms is not None else now_ms()
    terms = DealTerms(
        deal_price=body.deal_price,
        quantity=body.quantity,
        per_buyer_limit=body.per_buyer_limit,
        starts_ms=starts,
        ends_ms=starts + body.duration_s * 1000,
        accounts_only=body.accounts_only,
    )
    async with services(request).db.session() as session:
        deal = await service.create_deal(session, me, body.sku_id, terms)
    return JSONResponse({"deal": deal_json(deal, None)}, status_code=201)


@api.route(
    "POST",
    "/api/deals/{deal_id:id}/start",
    "Load the deal's stock and open it",
    auth="seller",
    duty=Duty.LIVE,
    tag="deals",
    ok={200: out.DealAnswer},
    errors=(
        CatalogErrorCode.DEAL_NOT_FOUND,
        CatalogErrorCode.DEAL_NOT_SCHEDULED,
        CatalogErrorCode.STOCK_UNAVAILABLE,
        CatalogErrorCode.PRODUCT_ARCHIVED,
        CheckoutErrorCode.DEAL_STATE_MISMATCH,
    ),
)
async def start_deal(request: Request) -> Response:
    me = await seller(request)
    svc = services(request)
    async with svc.db.session() as session:
        deal = await service.owned_deal(session, me, request.path_params["deal_id"])
        deal = await deals.start(
            session,
            svc.holds,
            deal,
            hold_ttl_ms=svc.settings.hold_ttl_s * 1000,
            pay_ttl_ms=svc.settings.pay_ttl_s * 1000,
        )
    return await _with_stock(svc, deal)


@api.route(
    "POST",
    "/api/deals/{deal_id:id}/stop",
    "Stop a live deal early",
    auth="seller",
    duty=Duty.LIVE,
    tag="deals",
    ok={200: out.DealAnswer},
    errors=(CatalogErrorCode.DEAL_NOT_FOUND, CatalogErrorCode.DEAL_NOT_LIVE),
)
async def stop_deal(request: Request) -> Response:
    me = await seller(request)
    svc = services(request)
    async with svc.db.session() as session:
        deal = await service.owned_deal(session, me, request.path_params["deal_id"])
        # Redis first, and on every call: stopping there is idempotent, so a stop that failed
        # half-way (Redis unreachable) is completed by asking again, even once SQL says ended.
        deal = await deals.stop(session, svc.holds, deal)
    return await _with_stock(svc, deal)
