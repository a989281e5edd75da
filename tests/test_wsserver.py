"""web/wsserver.py's per-connection parts: the inbox and write flag that stand in for uvicorn's
asyncio.Queue and asyncio.Event, and the websocket routes served ahead of the middleware."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket

from web.access import LoggedStarlette
from web.wsserver import Flag, Inbox


async def test_inbox_hands_items_out_in_order_and_wakes_a_waiting_get() -> None:
    inbox = Inbox()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert inbox.qsize() == 2
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    assert inbox.empty()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.put_nowait(3)
    assert await asyncio.wait_for(waiting, 1) == 3


async def test_a_cancelled_get_leaves_the_next_item_for_the_next_get() -> None:
    inbox = Inbox()
    gone = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    inbox.put_nowait("kept")
    assert await asyncio.wait_for(inbox.get(), 1) == "kept"


async def test_flag_wakes_every_waiter_when_set_and_holds_them_while_clear() -> None:
    flag = Flag()
    flag.set()
    assert await asyncio.wait_for(flag.wait(), 1)
    flag.clear()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True, True, True]


async def test_a_cancelled_wait_is_forgotten() -> None:
    flag = Flag()
    gone = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    assert flag._waiters == []
    flag.set()
    assert flag.is_set()


async def call(app: LoggedStarlette, kind: str, path: str) -> list[Message]:
    """One connection to ``app``, spoken in plain ASGI: what the app sent."""
    scope: dict[str, Any] = {
        "type": kind,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "scheme": "ws" if kind == "websocket" else "http",
        "method": "GET",
        "http_version": "1.1",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
    }
    incoming: list[Message] = (
        [{"type": "websocket.connect"}]
        if kind == "websocket"
        else [{"type": "http.request", "body": b"", "more_body": False}]
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": f"{kind}.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_sockets_first_routes_its_websockets_and_leaves_the_rest_to_starlette() -> None:
    # starlette's ExceptionMiddleware marks the scopes it passes on: ahead of it, no mark.
    mark = "starlette.exception_handlers"

    async def first(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(f"first {ws.path_params['n']} {ws.app is app} {mark in ws.scope}")
        await ws.close()

    async def routed(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(f"routed {mark in ws.scope}")
        await ws.close()

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse("page")

    ahead = WebSocketRoute("/first/{n:int}", first)
    app = LoggedStarlette(
        access_log=False,
        routes=[ahead, WebSocketRoute("/other", routed), Route("/page", page)],
        sockets_first=[ahead],
    )
    texts = [m.get("text") for m in await call(app, "websocket", "/first/7")]
    assert "first 7 True False" in texts
    texts = [m.get("text") for m in await call(app, "websocket", "/other")]
    assert "routed True" in texts
    bodies = [m.get("body") for m in await call(app, "http", "/page")]
    assert b"page" in bodies
