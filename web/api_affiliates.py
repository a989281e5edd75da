"""Affiliate creators over HTTP (decision 0046): a shop's plans and the creators selling for it;
a creator's offers, commissions and rooms; the creator marketplace. A creator's figures are read
by the caller's own seller id and a shop's by its own shops: no parameter names whose figures
to show, so none can name another's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from catalog import affiliates
from catalog import service as catalog
from catalog.error_codes import CatalogErrorCode
from catalog.models import AffiliatePlan, Product, Seller, Shop
from checkout import commissions
from live import affiliate_reports
from people.roles import Duty
from web import responses as out
from web.auth import seller
from web.http import JSONResponse, json_body
from web.routing import Api
from web.schemas import PlanIn
from web.services import services

api = Api()


async def _plans_json(session: Any, plans: Sequence[AffiliatePlan]) -> list[dict[str, Any]]:
    ids = [plan.id for plan in plans if plan.id is not None]
    products = await affiliates.products_of(session, ids)
    creators = await affiliates.creators_of(session, ids)
    return [
        {
            "id": plan.id,
            "shop_id": plan.shop_id,
            "name": plan.name,
            "open_to_all": plan.open_to_all,
            "creator_ids": creators[plan.id],
            "products": [
                {
                    "product_id": p.product_id,
                    "rate_bp": p.rate_bp,
                    "max_discount_bp": p.max_discount_bp,
                }
                for p in products[plan.id]
            ],
            "created_ms": plan.created_ms,
            "ended_ms": plan.ended_ms,
        }
        for plan in plans
        if plan.id is not None
    ]


@api.route(
    "POST",
    "/api/affiliate/plans",
    "Publish an affiliate plan for one of your shops",
    body=PlanIn,
    auth="seller",
    duty=Duty.CATALOG,
    tag="affiliates",
    ok={201: out.PlanAnswer},
    errors=(
        CatalogErrorCode.SHOP_NOT_FOUND,
        CatalogErrorCode.PRODUCT_NOT_FOUND,
        CatalogErrorCode.INVALID_PLAN,
    ),
)
async def create_plan(request: Request) -> Response:
    me = await seller(request)
    body = await json_body(request, PlanIn)
    async with services(request).db.session() as session:
        plan = await affiliates.create_plan(
            session,
            me,
            body.shop_id,
            body.name,
            [
                affiliates.PlanProduct(p.product_id, p.rate_bp, p.max_discount_bp)
                for p in body.products
            ],
            open_to_all=body.open_to_all,
            creator_ids=body.creator_ids,
        )
        (answer,) = await _plans_json(session, [plan])
    return JSONResponse({"plan": answer}, status_code=201)


@api.route(
    "GET",
    "/api/affiliate/plans",
    "Your shops' affiliate plans, newest first",
    auth="seller",
    duty=Duty.CATALOG,
    tag="affiliates",
    ok={200: out.PlanList},
)
async def list_plans(request: Request) -> Response:
    me = await seller(request)
    async with services(request).db.session() as session:
        plans = await _plans_json(session, await affiliates.plans_of(session, me))
    return JSONResponse({"plans": plans})


@api.route(
    "POST",
    "/api/affiliate/plans/{plan_id:id}/end",
    "End a plan: no new bags or deals under it",
    auth="seller",
    duty=Duty.CATALOG,
    tag="affiliates",
    ok={200: out.PlanAnswer},
    errors=(CatalogErrorCode.PLAN_NOT_FOUND, CatalogErrorCode.PLAN_ENDED),
)
async def end_plan(request: Request) -> Response:
    me = await seller(request)
    async with services(request).db.session() as session:
        plan = await affiliates.end_plan(session, me, request.path_params["plan_id"])
        (answer,) = await _plans_json(session, [plan])
    return JSONResponse({"plan": answer})


@api.route(
    "GET",
    "/api/affiliate/offers",
    "Other shops' products you may sell in your rooms, and at what commission",
    auth="seller",
    duty=Duty.LIVE,
    tag="affiliates",
    ok={200: out.OfferList},
)
async def offers(request: Request) -> Response:
    me = await seller(request)
    async with services(request).db.session() as session:
        found = await affiliates.offers_to(session, me)
        products = {o.product_id: await session.get(Product, o.product_id) for o in found}
        shops = {o.shop_id: await session.get(Shop, o.shop_id) for o in found}
    seen: set[int] = set()
    answer = []
    for offer in found:  # best first: the one a deal would be made under
        product, shop = products[offer.product_id], shops[offer.shop_id]
        if offer.product_id in seen or product is None or shop is None:
            continue
        seen.add(offer.product_id)
        answer.append(
            {
                "plan_id": offer.plan_id,
                "shop_id": offer.shop_id,
                "shop_name": shop.name,
                "product_id": offer.product_id,
                "title": product.title,
                "rate_bp": offer.rate_bp,
                "max_discount_bp": offer.max_discount_bp,
            }
        )
    return JSONResponse({"offers": answer})


@api.route(
    "GET",
    "/api/affiliate/commissions",
    "Your commissions as a creator, and your rooms' sales",
    auth="seller",
    duty=Duty.MONEY,
    tag="affiliates",
    ok={200: out.MyCommissions},
)
async def my_commissions(request: Request) -> Response:
    me = await seller(request)
    assert me.id is not None
    async with services(request).db.session() as session:
        totals = await commissions.totals(session, creator_id=me.id)
        rooms = await affiliate_reports.creator_rooms(session, me.id)
    ordered = sorted(totals.values(), key=lambda t: t.currency)
    return JSONResponse({"commissions": [t.json() for t in ordered], "rooms": rooms})


@api.route(
    "GET",
    "/api/affiliate/creators",
    "The creators selling your shops' products: their sales and the commissions owed",
    auth="seller",
    duty=Duty.MONEY,
    tag="affiliates",
    ok={200: out.ShopCreators},
)
async def shop_creators(request: Request) -> Response:
    me = await seller(request)
    async with services(request).db.session() as session:
        shop_ids = [s.id for s in await catalog.shops_of(session, me) if s.id is not None]
        totals = await commissions.totals(session, shop_ids=shop_ids)
        names = {
            creator_id: (await session.get(Seller, creator_id))
            for creator_id in {creator_id for creator_id, _ in totals}
        }
    by_creator: dict[int, list[dict[str, Any]]] = {}
    for (creator_id, _), row in sorted(totals.items()):
        by_creator.setdefault(creator_id, []).append(row.json())
    return JSONResponse(
        {
            "creators": [
                {
                    "creator_id": creator_id,
                    "name": getattr(names[creator_id], "name", ""),
                    "commissions": rows,
                }
                for creator_id, rows in by_creator.items()
            ]
        }
    )


@api.route(
    "GET",
    "/api/affiliate/marketplace",
    "Creators who host live rooms: their rooms, followers and past live GMV",
    auth="seller",
    duty=Duty.READ,
    tag="affiliates",
    ok={200: out.Marketplace},
)
async def marketplace(request: Request) -> Response:
    await seller(request)
    async with services(request).db.session() as session:
        creators = await affiliate_reports.marketplace(session)
    return JSONResponse({"creators": creators})
