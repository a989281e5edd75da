"""Operational endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from web import responses as out
from web.error_codes import WebErrorCode
from web.http import JSONResponse, error_response
from web.routing import Answer, Api
from web.services import services

api = Api()
READY_TIMEOUT_S = 2.0


@api.route("GET", "/healthz", "The process is up", tag="ops", ok={200: out.Health}, storage=False)
async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@api.route(
    "GET",
    "/readyz",
    "Redis and the database answer",
    tag="ops",
    ok={200: out.Ready},
    errors=(WebErrorCode.NOT_READY,),  # details: each check's outcome
    storage=False,
)
async def readyz(request: Request) -> Response:
    svc = services(request)
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(svc.holds.ping(), READY_TIMEOUT_S)
        checks["redis"] = "ok"
    except Exception as err:
        checks["redis"] = f"unreachable: {type(err).__name__}"
    try:
        async with svc.db.engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), READY_TIMEOUT_S)
        checks["database"] = "ok"
    except Exception as err:
        checks["database"] = f"unreachable: {type(err).__name__}"
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    return error_response(503, WebErrorCode.NOT_READY, "A dependency is unreachable.", checks)


@api.route(
    "GET",
    "/metrics",
    "Prometheus metrics",
    tag="ops",
    ok={200: Answer({"type": "string"}, "The Prometheus text format", "text/plain")},
)
async def metrics(request: Request) -> Response:
    svc = services(request)
    lag = await svc.pipeline.lag() if svc.pipeline is not None else 0
    stats = svc.pipeline.stats if svc.pipeline is not None else None
    svc.metrics.render_gateway(svc.hub, svc.bus, svc.gateway.moves)
    svc.metrics.render_media(request.app.state.broadcasts)
    return Response(
        svc.metrics.render(stats, lag), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


async def noop(request: Request) -> Response:
    """The benchmark baseline: reads the body like reserve does, then does nothing."""
    await request.body()
    return JSONResponse({"ok": True})
