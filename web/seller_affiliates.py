"""The seller center's affiliate sections (decision 0046): the shop's plans and the creators
selling for it, the creator dashboard (offers, rooms' GMV, commissions) and the creator
marketplace; and the forms that publish and end a plan, answering ``303`` back to the section
or the seller center again with the reason, having changed nothing (``form_action``)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from catalog import affiliates
from catalog.models import Seller
from kernel.errors import CommonErrorCode, Invalid
from people.roles import Duty
from web.http import parse
from web.schemas import PlanIn
from web.seller_pages import form_action
from web.services import services


def _number(form: dict[str, str], name: str, default: str = "") -> int:
    raw = form.get(name, default).strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        raise Invalid(f"{name} is a whole number.", code=CommonErrorCode.INVALID_REQUEST)
    return int(raw)


def _back() -> Response:
    return RedirectResponse("/seller#affiliate-plans", status_code=303)


@form_action(duty=Duty.CATALOG)
async def create_plan(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """One product per form (the API takes up to 100): creator ids, comma separated, target the
    plan; none opens it to every creator."""
    creators = [c.strip() for c in form.get("creator_ids", "").split(",") if c.strip()]
    body = parse(
        PlanIn,
        orjson.dumps(
            {
                "shop_id": _number(form, "shop_id"),
                "name": form.get("name", ""),
                "open_to_all": not creators,
                "creator_ids": [_number({"creator": c}, "creator") for c in creators],
                "products": [
                    {
                        "product_id": _number(form, "product_id"),
                        "rate_bp": _number(form, "rate_bp"),
                        "max_discount_bp": _number(form, "max_discount_bp", "0"),
                    }
                ],
            }
        ),
    )
    async with services(request).db.session() as session:
        await affiliates.create_plan(
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
    return _back()


@form_action(duty=Duty.CATALOG)
async def end_plan(request: Request, me: Seller, form: dict[str, str]) -> Response:
    async with services(request).db.session() as session:
        await affiliates.end_plan(session, me, request.path_params["plan_id"])
    return _back()
