"""A seller's live analytics (decision 0044): one room's minutes, totals and rates, and a
shop's rooms per day, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from catalog import service as catalog
from catalog.error_codes import CatalogErrorCode
from checkout.statements import iso_utc
from kernel.clock import now_ms
from kernel.errors import Invalid
from live import analytics_sql
from live import service as live_service
from live.error_codes import LiveErrorCode
from people.roles import Duty
from web import responses as out
from web.auth import seller
from web.error_codes import WebErrorCode
from web.http import JSONResponse
from web.routing import Answer, Api, Param
from web.services import services

api = Api()
MAX_DAYS = 90
DAYS = Param(
    "days",
    f"How many days back, today included: 1 to {MAX_DAYS} (default 30)",
    {"type": "integer", "minimum": 1, "maximum": MAX_DAYS, "default": 30},
)
# The money columns are in the last one's currency: the period's leading one (decision 0053).
DAILY_COLUMNS = ("day", *analytics_sql.STORED, *analytics_sql.SALES, "currency")
CSV_DISPOSITION = Param("Content-Disposition", "attachment; filename=...", required=True)


@api.route(
    "GET",
    "/api/rooms/{room_id:id}/analytics",
    "Your room's analytics per minute (viewers, likes, chat, impressions, clicks, carts, "
    "orders, units, GMV gross and net), its totals and rates: live from Redis, then from SQL",
    auth="seller",
    duty=Duty.READ,
    tag="rooms",
    ok={200: out.RoomAnalyticsAnswer},
    errors=(LiveErrorCode.ROOM_NOT_FOUND,),
)
async def room_analytics(request: Request) -> Response:
    svc = services(request)
    me = await seller(request)
    async with svc.db.session() as session:
        row = await live_service.owned_room(session, me, request.path_params["room_id"])
        report = await analytics_sql.room_report(session, svc.analytics, row)
    return JSONResponse({"analytics": report, "server_ms": now_ms()})


async def _daily(request: Request) -> tuple[int, dict[str, Any]]:
    me = await seller(request)
    shop_id: int = request.path_params["shop_id"]
    days = _days(request)
    async with services(request).db.session() as session:
        await catalog.owned_shop(session, me, shop_id)
        found = await analytics_sql.daily(await session.connection(), shop_id, days, now_ms())
    return shop_id, found


def _days(request: Request) -> int:
    raw = request.query_params.get("days", "30")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= MAX_DAYS):
        raise Invalid(
            f"Give days as a whole number from 1 to {MAX_DAYS}.",
            code=WebErrorCode.INVALID_QUERY,
            param="days",
        )
    return int(raw)


@api.route(
    "GET",
    "/api/shops/{shop_id:id}/analytics/daily",
    "Your shop's rooms per UTC day over the last days (ended rooms' counts, and the sales of "
    "its rooms' deals paid each day), oldest first",
    auth="seller",
    duty=Duty.READ,
    tag="rooms",
    query=(DAYS,),
    ok={200: out.DailyAnalyticsAnswer},
    errors=(CatalogErrorCode.SHOP_NOT_FOUND, WebErrorCode.INVALID_QUERY),
)
async def daily_analytics(request: Request) -> Response:
    shop_id, found = await _daily(request)
    return JSONResponse({"shop_id": shop_id, **found})


@api.route(
    "GET",
    "/api/shops/{shop_id:id}/analytics/daily.csv",
    "The same days as CSV: day (YYYY-MM-DD, UTC), then one column per figure",
    auth="seller",
    duty=Duty.READ,
    tag="rooms",
    query=(DAYS,),
    ok={
        200: Answer(
            {"type": "string"},
            "The days, oldest first, after a header row",
            "text/csv",
            headers=(CSV_DISPOSITION,),
        )
    },
    errors=(CatalogErrorCode.SHOP_NOT_FOUND, WebErrorCode.INVALID_QUERY),
)
async def daily_analytics_csv(request: Request) -> Response:
    shop_id, found = await _daily(request)
    name = f"analytics-shop-{shop_id}-{len(found['days'])}-days.csv"
    return Response(
        daily_csv(found["days"], found["currency"]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def daily_csv(days: list[dict[str, Any]], currency: str) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(DAILY_COLUMNS)
    for day in days:
        figures = (day[n] for n in DAILY_COLUMNS[1:-1])
        writer.writerow([iso_utc(day["day_ms"])[:10], *figures, currency])
    return text.getvalue()
