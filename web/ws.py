"""The websocket endpoint of a room: checks the handshake's Origin, then hands the connection to
the gateway (live/gateway.py) with the outlet that writes frames straight to the socket."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.websockets import WebSocket

from live.protocol import CLOSE_SERVER_ERROR
from web.services import Services
from web.wsserver import OUTLET


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """Browsers always send Origin; a page from another site must not open a viewer's socket
    with the viewer's cookies or storage. Clients that are not browsers send none."""
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host


async def room_socket(ws: WebSocket) -> None:
    svc: Services = ws.app.state.services
    if not origin_allowed(
        ws.headers.get("origin"), ws.headers.get("host"), svc.settings.allowed_origins
    ):
        await ws.close(code=1008)  # before accept: the handshake is refused with 403
        return
    extension = ws.scope.get("extensions", {}).get(OUTLET)
    await ws.accept()
    if extension is None:
        await ws.close(CLOSE_SERVER_ERROR, "serve livecart with `livecart serve`")
        return
    await svc.gateway.serve(ws, ws.path_params["room_id"], extension["outlet"])
