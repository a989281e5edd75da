"""Promotions over HTTP (decision 0028): a seller makes product discounts and bundles and ends
them; anyone lists a shop's. Each change is pushed to the shop's shelf, which every checkout
prices with."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from catalog import service as catalog
from catalog.error_codes import CatalogErrorCode
from checkout import promotions
from checkout.error_codes import CheckoutErrorCode
from checkout.shelving import Shelving
from kernel.clock import now_ms
from people.roles import Duty
from web import responses as out
from web.auth import seller
from web.http import JSONResponse, json_body
from web.routing import Api
from web.schemas import PromotionIn
from web.services import services

api = Api()


@api.route(
    "POST",
    "/api/shops/{shop_id:id}/promotions",
    "Make a product discount or a bundle for your shop",
    body=PromotionIn,
    auth="seller",
    duty=Duty.CATALOG,
    tag="vouchers",
    ok={201: out.PromotionAnswer},
    errors=(CatalogErrorCode.SHOP_NOT_FOUND, CheckoutErrorCode.INVALID_PROMOTION),
)
async def create_promotion(request: Request) -> Response:
    me = await seller(request)
    body = await json_body(request, PromotionIn)
    svc = services(request)
    shop_id: int = request.path_params["shop_id"]
    terms = promotions.PromotionTerms(
        kind=body.kind,
        products=tuple(body.products),
        starts_ms=now_ms() if body.starts_ms is None else body.starts_ms,
        ends_ms=body.ends_ms,
        bps=body.bps or 0,
        size=body.size or 0,
        price=body.price or 0,
        currency=body.currency or "",
    )
    async with svc.db.session() as session:
        await catalog.owned_shop(session, me, shop_id)
        made = await promotions.create(session, shop_id, terms)
        # A push lost here (a crash after the commit) is made good by the sweep's resync.
        await Shelving(svc.holds.shelf).publish_promotions(session, shop_id)
    return JSONResponse({"promotion": promotions.promotion_json(made)}, status_code=201)


@api.route(
    "GET",
    "/api/shops/{shop_id:id}/promotions",
    "A shop's promotions, running, coming and ended",
    tag="vouchers",
    ok={200: out.PromotionList},
)
async def list_promotions(request: Request) -> Response:
    async with services(request).db.session() as session:
        found = await promotions.of_shop(session, request.path_params["shop_id"])
    return JSONResponse({"promotions": [promotions.promotion_json(p) for p in found]})


@api.route(
    "POST",
    "/api/shops/{shop_id:id}/promotions/{promotion_id:id}/end",
    "End one of your shop's promotions now",
    auth="seller",
    duty=Duty.CATALOG,
    tag="vouchers",
    ok={200: out.PromotionAnswer},
    errors=(CatalogErrorCode.SHOP_NOT_FOUND, CheckoutErrorCode.PROMOTION_NOT_FOUND),
)
async def end_promotion(request: Request) -> Response:
    me = await seller(request)
    svc = services(request)
    shop_id: int = request.path_params["shop_id"]
    async with svc.db.session() as session:
        await catalog.owned_shop(session, me, shop_id)
        ended = await promotions.end(session, shop_id, request.path_params["promotion_id"])
        await Shelving(svc.holds.shelf).publish_promotions(session, shop_id)
    return JSONResponse({"promotion": promotions.promotion_json(ended)})
