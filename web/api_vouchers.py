"""Vouchers over HTTP (decision 0028): a seller makes them, anyone lists a shop's, a buyer
claims one. Each claim is decided by one function call on the shop's shelf in Redis."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from catalog import service as catalog
from catalog.error_codes import CatalogErrorCode
from checkout import vouchers
from checkout.error_codes import CheckoutErrorCode
from checkout.pricing import VoucherKind
from kernel.clock import now_ms
from kernel.errors import NotFound
from live import service as live_service
from live.error_codes import LiveErrorCode
from live.room_states import RoomStatus
from people.roles import Duty
from web import responses as out
from web.auth import seller, viewer
from web.http import JSONResponse, json_body
from web.routing import Api, Param
from web.schemas import VoucherIn
from web.services import services

api = Api()
CODE = Param(
    "code", "The voucher's code", {"type": "string", "pattern": "^[A-Z0-9][A-Z0-9-]{1,31}$"}
)


@api.route(
    "POST",
    "/api/shops/{shop_id:id}/vouchers",
    "Make a voucher for your shop",
    body=VoucherIn,
    auth="seller",
    duty=Duty.CATALOG,
    tag="vouchers",
    ok={201: out.VoucherAnswer},
    errors=(
        CatalogErrorCode.SHOP_NOT_FOUND,
        LiveErrorCode.ROOM_NOT_FOUND,
        CheckoutErrorCode.INVALID_VOUCHER,
        CheckoutErrorCode.VOUCHER_EXISTS,
    ),
)
async def create_voucher(request: Request) -> Response:
    me = await seller(request)
    body = await json_body(request, VoucherIn)
    svc = services(request)
    shop_id: int = request.path_params["shop_id"]
    async with svc.db.session() as session:
        await catalog.owned_shop(session, me, shop_id)
        if body.room_id is not None:
            room = await live_service.owned_room(session, me, body.room_id)
            if room.shop_id != shop_id:  # another of your shops' room: as missing as a stranger's
                raise NotFound(
                    "No such room among this shop's.",
                    code=LiveErrorCode.ROOM_NOT_FOUND,
                    room_id=body.room_id,
                )
        terms = vouchers.VoucherTerms(
            code=body.code,
            kind=VoucherKind(body.kind),
            value=body.value,
            currency=body.currency,
            budget=body.budget,
            per_buyer=body.per_buyer,
            starts_ms=now_ms() if body.starts_ms is None else body.starts_ms,
            ends_ms=body.ends_ms,
            min_spend=body.min_spend,
            max_discount=body.max_discount,
            room_id=body.room_id,
            products=None if body.products is None else tuple(body.products),
        )
        voucher = await vouchers.create(session, shop_id, terms)
    await vouchers.put_on_shelf(svc.holds.shelf, voucher)
    return JSONResponse({"voucher": vouchers.voucher_json(voucher, None)}, status_code=201)


@api.route(
    "GET",
    "/api/shops/{shop_id:id}/vouchers",
    "A shop's vouchers, with the uses each has left",
    tag="vouchers",
    ok={200: out.VoucherList},
)
async def list_vouchers(request: Request) -> Response:
    svc = services(request)
    shop_id: int = request.path_params["shop_id"]
    async with svc.db.session() as session:
        found = await vouchers.of_shop(session, shop_id)
    left = await svc.holds.shelf.vouchers_left(shop_id, [v.code for v in found])
    body = [vouchers.voucher_json(v, left.get(v.code)) for v in found]
    return JSONResponse({"vouchers": body})


@api.route(
    "POST",
    "/api/shops/{shop_id:id}/vouchers/{code}/claim",
    "Claim one use of a voucher",
    auth="viewer",
    tag="vouchers",
    path_params=(CODE,),
    ok={201: out.ClaimAnswer},
    errors=(
        CheckoutErrorCode.VOUCHER_NOT_FOUND,
        CheckoutErrorCode.VOUCHER_NOT_STARTED,
        CheckoutErrorCode.VOUCHER_ENDED,
        CheckoutErrorCode.VOUCHER_ROOM_NOT_LIVE,
        CheckoutErrorCode.VOUCHER_CLAIMED,
        CheckoutErrorCode.VOUCHER_EXHAUSTED,
    ),
)
async def claim_voucher(request: Request) -> Response:
    svc = services(request)
    buyer = viewer(request)
    shop_id: int = request.path_params["shop_id"]
    async with svc.db.session() as session:
        voucher = await vouchers.get(session, shop_id, request.path_params["code"])
    room_live = False
    if voucher.room_id is not None:
        snap = await svc.rooms.read(voucher.room_id)
        room_live = snap is not None and snap.room["status"] == RoomStatus.LIVE
    claimed = await vouchers.claim(svc.holds.shelf, voucher, buyer, room_live)
    body = {"code": claimed.code, "left": claimed.left, "claimed": claimed.mine}
    return JSONResponse({"claim": body}, status_code=201)
