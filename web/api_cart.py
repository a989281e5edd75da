"""The buyer's cart: add, change and remove items, and check one shop's items out into one
hold (decision 0028), which is paid like any hold (POST /api/holds/{hold_id}/checkout)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from catalog import service as catalog
from catalog.error_codes import CatalogErrorCode
from checkout.cart import CartHold, for_sale
from checkout.error_codes import CheckoutErrorCode
from kernel.errors import CommonErrorCode, Invalid
from live.analytics import Tally
from web import responses as out
from web.api_checkout import address_of
from web.auth import viewer, viewer_and_kind
from web.http import JSONResponse, json_body
from web.routing import Answer, Api, Param
from web.schemas import CartCheckoutIn, CartItem, CartItemIn
from web.services import services

api = Api()
MAX_PRODUCTS = 100  # a room's bag holds fewer
PRODUCT_IDS = Param(
    "product_id",
    "A product's id; repeat it for each product (at most 100)",
    {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": MAX_PRODUCTS},
)


def _merged(items: list[CartItem]) -> dict[int, int]:
    """Buy-now items by SKU (one SKU named twice is one line of both quantities)."""
    units: dict[int, int] = {}
    for item in items:
        units[item.sku_id] = units.get(item.sku_id, 0) + item.qty
    return units


@api.route(
    "GET",
    "/api/stock",
    "Units of each SKU of some products buyable at list price now",
    tag="cart",
    query=(PRODUCT_IDS,),
    ok={200: out.StockAnswer},
    errors=(CommonErrorCode.INVALID_REQUEST,),
)
async def stock(request: Request) -> Response:
    svc = services(request)
    ids = _product_ids(request)
    async with svc.db.session() as session:
        skus = [sku for product_id in ids for sku in await catalog.skus_of(session, product_id)]
    left = await for_sale(svc.holds.shelf, skus)
    return JSONResponse({"stock": {str(sku_id): n for sku_id, n in left.items()}})


def _product_ids(request: Request) -> list[int]:
    raw = request.query_params.getlist("product_id")
    if len(raw) > MAX_PRODUCTS or not all(r.isascii() and r.isdigit() and len(r) < 10 for r in raw):
        raise Invalid(
            f"Give 0 to {MAX_PRODUCTS} product_id values, each a whole number.",
            code=CommonErrorCode.INVALID_REQUEST,
        )
    return sorted({int(r) for r in raw})


@api.route("GET", "/api/cart", "Your cart", auth="viewer", tag="cart", ok={200: out.CartAnswer})
async def get_cart(request: Request) -> Response:
    svc = services(request)
    async with svc.db.session() as session:
        cart = svc.carts
        view = await cart.view(session, viewer(request))
    return JSONResponse({"cart": view})


@api.route(
    "PUT",
    "/api/cart/items/{sku_id:id}",
    "Set how many units of a SKU are in your cart (0 takes it out)",
    body=CartItemIn,
    auth="viewer",
    tag="cart",
    ok={200: out.CartAnswer},
    errors=(
        CatalogErrorCode.SKU_NOT_FOUND,
        CatalogErrorCode.INVALID_QUANTITY,
        CheckoutErrorCode.CART_FULL,
    ),
)
async def put_item(request: Request) -> Response:
    svc = services(request)
    buyer = viewer(request)
    body = await json_body(request, CartItemIn)
    cart = svc.carts
    async with svc.db.session() as session:
        await cart.put(session, buyer, request.path_params["sku_id"], body.qty)
        view = await cart.view(session, buyer)
    return JSONResponse({"cart": view})


@api.route(
    "PUT",
    "/api/cart/deals/{deal_id:id}",
    "Set how many units of a flash deal's item are in your cart, at the deal's price (0 takes "
    "it out); checkout holds them by the deal's own reserve, per-buyer limit and all",
    body=CartItemIn,
    auth="viewer",
    tag="cart",
    ok={200: out.CartAnswer},
    errors=(
        CatalogErrorCode.DEAL_NOT_FOUND,
        CatalogErrorCode.DEAL_ENDED,
        CheckoutErrorCode.AUCTION_LOT,
        CheckoutErrorCode.LIMIT_EXCEEDED,
        CheckoutErrorCode.CART_FULL,
    ),
)
async def put_deal(request: Request) -> Response:
    svc = services(request)
    buyer = viewer(request)
    body = await json_body(request, CartItemIn)
    cart = svc.carts
    async with svc.db.session() as session:
        room_id = await cart.put_deal(session, buyer, request.path_params["deal_id"], body.qty)
        view = await cart.view(session, buyer)
    if room_id is not None:
        svc.analytics.count(room_id, Tally.CARTS)
    return JSONResponse({"cart": view})


@api.route(
    "DELETE",
    "/api/cart",
    "Empty your cart",
    auth="viewer",
    tag="cart",
    ok={204: Answer(description="Emptied")},
)
async def clear_cart(request: Request) -> Response:
    svc = services(request)
    await svc.carts.store.clear(viewer(request))
    return Response(status_code=204)


@api.route(
    "POST",
    "/api/cart/checkout",
    "Hold your cart's items, all or none: one hold per shop (or one shop's, or the items "
    "named); pay them with POST /api/cart/pay",
    body=CartCheckoutIn,
    auth="viewer",
    tag="cart",
    ok={
        201: Answer(out.CartHoldAnswer, "A new hold of every line"),
        200: Answer(out.CartHoldAnswer, "The hold this request_id made before"),
    },
    errors=(
        CheckoutErrorCode.CART_EMPTY,
        CheckoutErrorCode.CART_SPANS_SHOPS,
        CheckoutErrorCode.MIXED_CURRENCIES,
        CheckoutErrorCode.QUOTE_CHANGED,
        CheckoutErrorCode.INSUFFICIENT_STOCK,
        CheckoutErrorCode.ADDRESS_HOLD_LIMIT,
        CheckoutErrorCode.ACCOUNT_REQUIRED,
        CheckoutErrorCode.VOUCHER_NOT_FOUND,
        CheckoutErrorCode.VOUCHER_NOT_STARTED,
        CheckoutErrorCode.VOUCHER_ENDED,
        CheckoutErrorCode.VOUCHER_EXHAUSTED,
        CheckoutErrorCode.VOUCHER_NOT_CLAIMED,
        CheckoutErrorCode.VOUCHER_USED,
        CheckoutErrorCode.VOUCHER_MIN_SPEND,
        CheckoutErrorCode.VOUCHER_NOT_APPLICABLE,
    ),
)
async def checkout_cart(request: Request) -> Response:
    svc = services(request)
    buyer, account = viewer_and_kind(request)
    body = await json_body(request, CartCheckoutIn)
    one_shop = body.shop_id is not None or body.items is not None
    if body.vouchers is not None and (body.voucher is not None or one_shop):
        raise Invalid(
            "Name vouchers per shop (vouchers) or one voucher (voucher), not both; for one "
            "shop's items, use voucher.",
            code=CommonErrorCode.INVALID_REQUEST,
        )
    if body.items is None and body.shop_id is None:
        held = await svc.carts.checkout_every_shop(
            svc.db,
            buyer,
            request_id=body.request_id or "",
            expected_total=body.expected_total,
            voucher=body.voucher,
            vouchers={v.shop_id: v.code for v in body.vouchers or ()},
            address=address_of(request),
            account=account,
        )
    else:
        one = await svc.carts.checkout(
            svc.db,
            buyer,
            request_id=body.request_id or "",
            shop_id=body.shop_id,
            expected_total=body.expected_total,
            items=_merged(body.items) if body.items else None,
            voucher=body.voucher,
            address=address_of(request),
        )
        held = [CartHold.of_shelf(one)]
    answer: dict[str, Any] = {
        "holds": [hold.body for hold in held],
        "total": sum(hold.total for hold in held),
        "currency": held[0].currency,
    }
    if len(held) == 1:
        answer["hold"] = answer["holds"][0]
    replayed = all(hold.replayed for hold in held)
    return JSONResponse(answer, status_code=200 if replayed else 201)
