"""Creator-facing room API (open, go live, bag, pin, flash deals, moderation, end) and public
room reads. Viewers follow the room over its websocket (docs/protocol.md, "Live rooms")."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from catalog.error_codes import CatalogErrorCode
from catalog.models import Seller
from checkout import vouchers
from checkout.error_codes import CheckoutErrorCode
from kernel.clock import now_ms
from kernel.errors import Invalid, NotFound
from live import figures, follows, rules
from live import service as live_service
from live.analytics import Tally
from live.comment_rules import check_keywords
from live.error_codes import LiveErrorCode
from live.models import LiveRoom
from live.room_states import RoomStatus
from live.store import Committed
from people.roles import Duty
from web import responses as out
from web.api_accounts import public_url
from web.auth import seller
from web.error_codes import WebErrorCode
from web.http import JSONResponse, json_body
from web.routing import Answer, Api, Param
from web.schemas import CommentBuyIn, FlashDealIn, ProductRef, RoomIn, VoucherRef
from web.services import Services, services

api = Api()
ROOM_STATUSES = sorted(s.value for s in RoomStatus)
# What any change to a room can meet: not yours, over, or changed 20 times under you.
CHANGE_ROOM = (LiveErrorCode.ROOM_NOT_FOUND, LiveErrorCode.ROOM_ENDED, LiveErrorCode.ROOM_BUSY)
USER = Param(
    "user",
    "A buyer id or `seller-<id>`: 1-64 letters, digits and dashes",
    {"type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$"},
)


def room_row_json(row: LiveRoom) -> dict[str, Any]:
    return {
        "id": row.id,
        "shop_id": row.shop_id,
        "title": row.title,
        "status": row.status,
        "created_ms": row.created_ms,
        "started_ms": row.started_ms,
        "ended_ms": row.ended_ms,
    }


def changed(done: Committed, status: int = 200) -> Response:
    return JSONResponse({"room": done.change.room, "seq": done.seq}, status_code=status)


async def _owned(request: Request) -> tuple[Services, Seller, int]:
    svc = services(request)
    me = await seller(request)
    room_id: int = request.path_params["room_id"]
    async with svc.db.session() as session:
        await live_service.owned_room(session, me, room_id)
    return svc, me, room_id


@api.route(
    "POST",
    "/api/rooms",
    "Open a room (scheduled)",
    body=RoomIn,
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={201: out.RoomAnswer},
    errors=(
        CatalogErrorCode.SHOP_NOT_FOUND,
        LiveErrorCode.INVALID_TITLE,
        LiveErrorCode.ROOM_STATE_MISMATCH,
    ),
)
async def create_room(request: Request) -> Response:
    svc = services(request)
    me = await seller(request)
    body = await json_body(request, RoomIn)
    async with svc.db.session() as session:
        room = await live_service.create_room(session, svc.rooms, me, body.shop_id, body.title)
    return JSONResponse({"room": room, "seq": 0}, status_code=201)


@api.route(
    "GET",
    "/api/rooms",
    "Rooms, newest first (?status=live)",
    tag="rooms",
    query=(Param("status", "Only rooms in this status", {"enum": ROOM_STATUSES}),),
    ok={200: out.RoomList},
    errors=(WebErrorCode.INVALID_STATUS,),
)
async def list_rooms(request: Request) -> Response:
    status = request.query_params.get("status")
    if status is not None and status not in ROOM_STATUSES:
        raise Invalid(
            f"status is one of {', '.join(RoomStatus)}.",
            code=WebErrorCode.INVALID_STATUS,
            status=status[:20],
        )
    async with services(request).db.session() as session:
        rows = await live_service.list_rooms(
            session, None if status is None else RoomStatus(status)
        )
    return JSONResponse({"rooms": [room_row_json(r) for r in rows]})


@api.route(
    "GET",
    "/api/rooms/{room_id:id}",
    "A room's current state, and its seller's followers",
    tag="rooms",
    ok={200: out.RoomRead},
    errors=(LiveErrorCode.ROOM_NOT_FOUND,),
)
async def get_room(request: Request) -> Response:
    svc = services(request)
    room_id: int = request.path_params["room_id"]
    snap = await svc.rooms.read(room_id)
    if snap is None:
        raise NotFound("No such room.", code=LiveErrorCode.ROOM_NOT_FOUND, room_id=room_id)
    async with svc.db.session() as session:
        followers = await follows.follower_count(session, snap.room["seller_id"])
    return JSONResponse({"room": snap.room, "seq": snap.seq, "followers": followers})


@api.route(
    "GET",
    "/api/rooms/{room_id:id}/figures",
    "Your room's figures: viewers (now, peak), units held, orders, units sold, GMV gross and "
    "net of refunds (per currency), conversion",
    auth="seller",
    duty=Duty.READ,
    tag="rooms",
    ok={200: out.FiguresAnswer},
    errors=(LiveErrorCode.ROOM_NOT_FOUND,),
)
async def room_figures(request: Request) -> Response:
    svc = services(request)
    me = await seller(request)
    async with svc.db.session() as session:
        row = await live_service.owned_room(session, me, request.path_params["room_id"])
        found = await figures.room_figures(session, svc.rooms, svc.holds, row)
    return JSONResponse({"figures": found.json(), "server_ms": now_ms()})


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/live",
    "Go live",
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={200: out.RoomAnswer},
    errors=CHANGE_ROOM,
)
async def go_live(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    async with svc.db.session() as session:
        done = await live_service.go_live(session, svc.rooms, room_id)
    await svc.news.room_went_live(room_id, public_url(svc, request))
    return changed(done)


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/voucher",
    "Drop one of your shop's vouchers into the live room for viewers to claim",
    body=VoucherRef,
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={200: out.RoomAnswer},
    errors=(
        *CHANGE_ROOM,
        LiveErrorCode.ROOM_NOT_LIVE,
        CheckoutErrorCode.VOUCHER_NOT_FOUND,
        CheckoutErrorCode.VOUCHER_NOT_STARTED,
        CheckoutErrorCode.VOUCHER_ENDED,
    ),
)
async def drop_voucher(request: Request) -> Response:
    svc = services(request)
    me = await seller(request)
    room_id: int = request.path_params["room_id"]
    body = await json_body(request, VoucherRef)
    async with svc.db.session() as session:
        room = await live_service.owned_room(session, me, room_id)
        voucher = await vouchers.get(session, room.shop_id, body.code)
    if voucher.room_id not in (None, room_id):  # bound to another room: not this room's
        raise NotFound(
            "No such voucher for this room.",
            code=CheckoutErrorCode.VOUCHER_NOT_FOUND,
            code_asked=body.code,
        )
    now = now_ms()
    vouchers.check_window(voucher, now)
    # A voucher whose put on the shelf was lost is put there now, before anyone claims it.
    await vouchers.put_on_shelf(svc.holds.shelf, voucher)
    card = vouchers.card_json(voucher)
    return changed(await svc.rooms.update(room_id, lambda r: rules.drop_voucher(r, card, now)))


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/end",
    "End the room (and its running deals)",
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={200: out.RoomAnswer},
    errors=(LiveErrorCode.ROOM_NOT_FOUND, LiveErrorCode.ROOM_BUSY),
)
async def end_room(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    async with svc.db.session() as session:
        done = await live_service.end(
            session, svc.rooms, svc.holds, room_id, formats=(svc.auctions, svc.giveaways)
        )
    # The room's video, if this node carries it, ends with the room.
    await request.app.state.broadcasts.end_room(room_id)
    return changed(done)


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/bag",
    "Add a product to the room's bag",
    body=ProductRef,
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={200: out.RoomAnswer},
    errors=(
        *CHANGE_ROOM,
        CatalogErrorCode.PRODUCT_NOT_FOUND,
        CatalogErrorCode.PRODUCT_ARCHIVED,
        LiveErrorCode.BAG_FULL,
    ),
)
async def add_to_bag(request: Request) -> Response:
    svc, me, room_id = await _owned(request)
    body = await json_body(request, ProductRef)
    async with svc.db.session() as session:
        return changed(
            await live_service.add_product(session, svc.rooms, me, room_id, body.product_id)
        )


@api.route(
    "DELETE",
    "/api/rooms/{room_id:id}/bag/{product_id:id}",
    "Take a product out of the bag",
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={200: out.RoomAnswer},
    errors=(*CHANGE_ROOM, LiveErrorCode.PRODUCT_NOT_IN_BAG),
)
async def remove_from_bag(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    product_id: int = request.path_params["product_id"]
    done = await svc.rooms.update(room_id, lambda r: rules.remove_from_bag(r, product_id, now_ms()))
    return changed(done)


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/pin",
    "Pin a product from the bag",
    body=ProductRef,
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={200: out.RoomAnswer},
    errors=(*CHANGE_ROOM, LiveErrorCode.PRODUCT_NOT_IN_BAG),
)
async def pin(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    body = await json_body(request, ProductRef)
    done = await svc.rooms.update(room_id, lambda r: rules.pin(r, body.product_id, now_ms()))
    if done.change.events:  # pinned now: every viewer there sees it (decision 0044)
        shown = await svc.rooms.viewers_now(room_id, now_ms())
        svc.analytics.count(room_id, Tally.IMPRESSIONS, shown)
    return changed(done)


@api.route(
    "DELETE",
    "/api/rooms/{room_id:id}/pin",
    "Unpin",
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={200: out.RoomAnswer},
    errors=CHANGE_ROOM,
)
async def unpin(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    return changed(await svc.rooms.update(room_id, lambda r: rules.unpin(r, now_ms())))


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/deals",
    "Schedule a flash deal with a countdown",
    body=FlashDealIn,
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={201: out.FlashDealAnswer},
    errors=(
        *CHANGE_ROOM,
        LiveErrorCode.ROOM_NOT_LIVE,
        LiveErrorCode.SKU_NOT_IN_BAG,
        CatalogErrorCode.SKU_NOT_FOUND,
        CatalogErrorCode.PRODUCT_ARCHIVED,
        CatalogErrorCode.INVALID_COUNTDOWN,
        CatalogErrorCode.INVALID_DURATION,
        CatalogErrorCode.INVALID_PRICE,
        CatalogErrorCode.DEAL_PRICE_NOT_BELOW_LIST,
        CatalogErrorCode.DEAL_PRICE_BELOW_PLAN,
        CatalogErrorCode.INVALID_QUANTITY,
        CatalogErrorCode.DEAL_QUANTITY_ABOVE_STOCK,
        CatalogErrorCode.INVALID_LIMIT,
        CatalogErrorCode.LIMIT_ABOVE_QUANTITY,
        CatalogErrorCode.STOCK_UNAVAILABLE,
        CatalogErrorCode.DEAL_NOT_SCHEDULED,
        CheckoutErrorCode.DEAL_STATE_MISMATCH,
    ),
)
async def schedule_deal(request: Request) -> Response:
    svc, me, room_id = await _owned(request)
    body = await json_body(request, FlashDealIn)
    terms = rules.FlashDealTerms(**body.model_dump())
    async with svc.db.session() as session:
        done = await live_service.schedule_deal(
            session,
            svc.rooms,
            svc.holds,
            me,
            room_id,
            terms,
            hold_ttl_ms=svc.settings.hold_ttl_s * 1000,
            pay_ttl_ms=svc.settings.pay_ttl_s * 1000,
        )
    deal = done.change.room["deals"][-1]
    return JSONResponse({"deal": deal, "room": done.change.room, "seq": done.seq}, 201)


@api.route(
    "POST",
    "/api/rooms/{room_id:id}/deals/{deal_id:id}/stop",
    "Stop a flash deal now",
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={200: out.RoomAnswer},
    errors=(*CHANGE_ROOM, CatalogErrorCode.DEAL_NOT_FOUND, CatalogErrorCode.DEAL_ENDED),
)
async def stop_deal(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    deal_id: int = request.path_params["deal_id"]
    async with svc.db.session() as session:
        return changed(
            await live_service.stop_deal(session, svc.rooms, svc.holds, room_id, deal_id)
        )


@api.route(
    "PUT",
    "/api/rooms/{room_id:id}/comment-to-buy",
    "Turn comment-to-buy on: a chat line starting with a keyword claims the pinned product",
    body=CommentBuyIn,
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={200: out.RoomAnswer},
    errors=(*CHANGE_ROOM, LiveErrorCode.INVALID_KEYWORDS),
)
async def comment_buy_on(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    body = await json_body(request, CommentBuyIn)
    keywords = check_keywords(body.keywords)
    return changed(
        await svc.rooms.update(room_id, lambda r: rules.set_comment_buy(r, keywords, now_ms()))
    )


@api.route(
    "DELETE",
    "/api/rooms/{room_id:id}/comment-to-buy",
    "Turn comment-to-buy off",
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={200: out.RoomAnswer},
    errors=CHANGE_ROOM,
)
async def comment_buy_off(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    return changed(
        await svc.rooms.update(room_id, lambda r: rules.set_comment_buy(r, None, now_ms()))
    )


@api.route(
    "DELETE",
    "/api/rooms/{room_id:id}/chat/{seq:id}",
    "Delete a chat line",
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    ok={204: Answer(description="Viewers were told (`chat.deleted`)")},
    errors=(LiveErrorCode.ROOM_NOT_FOUND, LiveErrorCode.CHAT_NOT_FOUND),
)
async def delete_chat(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    seq: int = request.path_params["seq"]
    line = await svc.rooms.event(room_id, seq)
    if line is None or line["type"] != "chat":
        raise NotFound(
            "No such chat line (or it is too old).", code=LiveErrorCode.CHAT_NOT_FOUND, seq=seq
        )
    await svc.rooms.post(room_id, {"type": "chat.deleted", "chat_seq": seq, "ms": now_ms()})
    return Response(status_code=204)


@api.route(
    "PUT",
    "/api/rooms/{room_id:id}/mutes/{user}",
    "Mute a user's chat in this room",
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    path_params=(USER,),
    ok={204: Answer(description="Muted")},
    errors=(LiveErrorCode.ROOM_NOT_FOUND, LiveErrorCode.INVALID_USER),
)
async def mute(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    await svc.rooms.mute(room_id, _user(request), True)
    return Response(status_code=204)


@api.route(
    "DELETE",
    "/api/rooms/{room_id:id}/mutes/{user}",
    "Unmute a user",
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    path_params=(USER,),
    ok={204: Answer(description="Unmuted")},
    errors=(LiveErrorCode.ROOM_NOT_FOUND, LiveErrorCode.INVALID_USER),
)
async def unmute(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    await svc.rooms.mute(room_id, _user(request), False)
    return Response(status_code=204)


@api.route(
    "PUT",
    "/api/rooms/{room_id:id}/bans/{user}",
    "Ban a user from this room",
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    path_params=(USER,),
    ok={204: Answer(description="Banned: muted, their connections closed, no rejoining")},
    errors=(LiveErrorCode.ROOM_NOT_FOUND, LiveErrorCode.INVALID_USER),
)
async def ban(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    await svc.rooms.ban(room_id, _user(request), True)
    return Response(status_code=204)


@api.route(
    "DELETE",
    "/api/rooms/{room_id:id}/bans/{user}",
    "Lift a ban (and its mute)",
    auth="seller",
    duty=Duty.LIVE,
    tag="rooms",
    path_params=(USER,),
    ok={204: Answer(description="Not banned")},
    errors=(LiveErrorCode.ROOM_NOT_FOUND, LiveErrorCode.INVALID_USER),
)
async def unban(request: Request) -> Response:
    svc, _me, room_id = await _owned(request)
    await svc.rooms.ban(room_id, _user(request), False)
    return Response(status_code=204)


def _user(request: Request) -> str:
    user: str = request.path_params["user"]
    if not (0 < len(user) <= 64) or not user.replace("-", "").isalnum() or not user.isascii():
        raise Invalid("That is not a user id.", code=LiveErrorCode.INVALID_USER, user=user[:64])
    return user


async def bench_echo(request: Request) -> Response:
    """Benchmark only (LIVECART_BENCH_ROUTES): publish the body's ``t`` as a room event through
    the same log, bus and fan-out as a pin, without the room rules."""
    svc = services(request)
    body = orjson.loads(await request.body())
    await svc.rooms.post(request.path_params["room_id"], {"type": "bench", "t": body["t"]})
    return Response(status_code=204)
