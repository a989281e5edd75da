"""Follows, go-live reminders and the notification list over HTTP (issue 20, decision 0045).
A buyer account follows a seller and asks to be reminded of a scheduled room; when a room goes
live its followers and reminded accounts find it in their notifications and their mail. The
rules are live/follows.py's."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from kernel.errors import Unauthorized
from live import follows
from live.error_codes import LiveErrorCode
from live.models import Notification
from web import responses as out
from web.api_accounts import signed_in_account
from web.error_codes import WebErrorCode
from web.http import JSONResponse
from web.routing import Api
from web.services import Services, services

api = Api()
FOLLOW = "/api/sellers/{seller_id:id}/follow"
REMINDER = "/api/rooms/{room_id:id}/reminder"
NOTIFICATIONS = "/api/accounts/me/notifications"
SIGN_UP = "/account"  # where a guest makes the account following needs


@api.route(
    "PUT",
    FOLLOW,
    "Follow a seller (the creator of its rooms, the owner of its shops); following twice is one "
    "follow",
    auth="account",
    tag="identity",
    ok={200: out.FollowAnswer},
    errors=(LiveErrorCode.SELLER_NOT_FOUND,),
)
async def follow(request: Request) -> Response:
    svc, account_id = await _account(request)
    seller_id: int = request.path_params["seller_id"]
    async with svc.db.session() as session:
        if await follows.follow(session, account_id, seller_id):
            # A follow made during a live counts in the room's analytics (decision 0044).
            for room_id in await follows.live_room_ids(session, seller_id):
                svc.analytics.new_follower(room_id)
        count = await follows.follower_count(session, seller_id)
    return JSONResponse({"seller_id": seller_id, "following": True, "followers": count})


@api.route(
    "DELETE",
    FOLLOW,
    "Stop following a seller; not following is fine",
    auth="account",
    tag="identity",
    ok={200: out.FollowAnswer},
    errors=(LiveErrorCode.SELLER_NOT_FOUND,),
)
async def unfollow(request: Request) -> Response:
    svc, account_id = await _account(request)
    seller_id: int = request.path_params["seller_id"]
    async with svc.db.session() as session:
        await follows.unfollow(session, account_id, seller_id)
        count = await follows.follower_count(session, seller_id)
    return JSONResponse({"seller_id": seller_id, "following": False, "followers": count})


@api.route(
    "GET",
    "/api/accounts/me/following",
    "The sellers you follow, and the rooms you asked to be reminded of",
    auth="account",
    tag="identity",
    ok={200: out.FollowingList},
)
async def following(request: Request) -> Response:
    svc, account_id = await _account(request)
    async with svc.db.session() as session:
        found = await follows.following(session, account_id)
        reminders = await follows.reminded_room_ids(session, account_id)
    listed = [{"seller_id": f.seller_id, "name": f.name, "since_ms": f.since_ms} for f in found]
    return JSONResponse({"following": listed, "reminders": sorted(reminders)})


@api.route(
    "PUT",
    REMINDER,
    "Be told (in your notifications and by mail) when a scheduled room goes live",
    auth="account",
    tag="rooms",
    ok={200: out.ReminderAnswer},
    errors=(LiveErrorCode.ROOM_NOT_FOUND, LiveErrorCode.ROOM_NOT_SCHEDULED),
)
async def remind(request: Request) -> Response:
    svc, account_id = await _account(request)
    room_id: int = request.path_params["room_id"]
    async with svc.db.session() as session:
        await follows.remind(session, account_id, room_id)
    return JSONResponse({"room_id": room_id, "reminded": True})


@api.route(
    "DELETE",
    REMINDER,
    "Forget a reminder; having none is fine",
    auth="account",
    tag="rooms",
    ok={200: out.ReminderAnswer},
    errors=(LiveErrorCode.ROOM_NOT_FOUND,),
)
async def forget_reminder(request: Request) -> Response:
    svc, account_id = await _account(request)
    room_id: int = request.path_params["room_id"]
    async with svc.db.session() as session:
        await follows.forget_reminder(session, account_id, room_id)
    return JSONResponse({"room_id": room_id, "reminded": False})


@api.route(
    "GET",
    NOTIFICATIONS,
    "Your notifications, newest first, and how many are unread",
    auth="account",
    tag="identity",
    ok={200: out.NotificationList},
)
async def notifications(request: Request) -> Response:
    svc, account_id = await _account(request)
    async with svc.db.session() as session:
        found = await follows.notifications_of(session, account_id)
        unread = await follows.unread_count(session, account_id)
    return JSONResponse({"notifications": [notification_json(n) for n in found], "unread": unread})


@api.route(
    "POST",
    NOTIFICATIONS + "/read",
    "Mark all your notifications read",
    auth="account",
    tag="identity",
    ok={200: out.MarkedRead},
)
async def mark_read(request: Request) -> Response:
    svc, account_id = await _account(request)
    async with svc.db.session() as session:
        marked = await follows.mark_read(session, account_id)
        unread = await follows.unread_count(session, account_id)
    return JSONResponse({"marked": marked, "unread": unread})


async def _account(request: Request) -> tuple[Services, int]:
    """The signed-in account; a guest is told where to sign up (``details.sign_up``)."""
    svc = services(request)
    try:
        account = await signed_in_account(request, svc)
    except Unauthorized as refused:
        if refused.code is WebErrorCode.ACCOUNT_TOKEN_REQUIRED:
            raise Unauthorized(
                "Sign up or sign in to follow creators and get reminders.",
                code=WebErrorCode.ACCOUNT_TOKEN_REQUIRED,
                sign_up=SIGN_UP,
            ) from refused
        raise
    assert account.id is not None  # read from SQL
    return svc, account.id


def notification_json(found: Notification) -> dict[str, object]:
    return {
        "id": found.id,
        "kind": found.kind,
        "room_id": found.room_id,
        "seller_name": found.seller_name,
        "title": found.title,
        "created_ms": found.created_ms,
        "read_ms": found.read_ms,
    }
