"""The websocket serving path: uvicorn's sans-I/O websockets protocol plus one ASGI extension,
``livecart.outlet``, that lets the gateway write pre-built frames straight to the transport.

Why: through ASGI every message to every viewer is an awaited ``send()`` that frames the text
again; a room's update would be framed once per viewer and each write would wait its turn. The
outlet writes the same frame bytes to every connection without awaiting (see
docs/decisions/0008-websocket-serving-path.md). Everything else (handshake, pings, close,
receiving) is uvicorn's.

Each idle viewer holds a connection for hours, so what uvicorn keeps per connection is trimmed
(docs/decisions/0050-memory-per-viewer.md): a list-backed inbox and write flag instead of
``asyncio.Queue`` and ``asyncio.Event`` (each deque they hold is ~760 bytes, empty), and the
handshake's request and response are let go once the connection is accepted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from starlette.routing import Match, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.protocol import State

OUTLET = "livecart.outlet"
# A dropped viewer's close frame waits behind its full buffer; don't wait long for it.
DROP_GRACE_S = 1.0


class TransportOutlet:
    __slots__ = ("_p", "buffered")

    def __init__(self, proto: WebSocketsSansIOProtocol) -> None:
        self._p = proto
        self.buffered = proto.transport.get_write_buffer_size

    def write(self, data: bytes) -> None:
        p = self._p
        # Not after a close frame went either way (ours, the viewer's, or uvicorn's shutdown),
        # nor once the socket is gone (uvloop raises on a closed handle).
        if (
            p.conn.state is State.OPEN
            and not p.close_sent
            and not p.disconnected
            and not p.transport.is_closing()
        ):
            p.transport.write(data)

    def drop(self, code: int, reason: str, grace_s: float = DROP_GRACE_S) -> None:
        """Close now, from synchronous code: send a close frame, end the app's receive loop,
        and abort the socket if the viewer does not answer soon."""
        p = self._p
        if (
            p.close_sent
            or p.disconnected
            or p.transport.is_closing()
            or p.conn.state is not State.OPEN
        ):
            return
        p.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        try:
            p.conn.send_close(code, reason)
        except InvalidState:
            p.transport.abort()
            return
        p.transport.write(b"".join(p.conn.data_to_send()))
        p.close_sent = True
        if p.read_paused:
            p.read_paused = False
            p.transport.resume_reading()
        p.close_timer = p.loop.call_later(grace_s, p.transport.abort)


class Inbox:
    """What uvicorn's receive queue is used for (``put_nowait``, ``get``, ``empty``), unbounded
    as its ``asyncio.Queue()`` is: uvicorn pauses reading while a message waits."""

    __slots__ = ("_items", "_ready")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._ready: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            if self._ready is None or self._ready.done():
                self._ready = asyncio.get_running_loop().create_future()
            await self._ready  # cancelled with its getter: the next get() makes a new one
        return self._items.pop(0)


class Flag:
    """What uvicorn's ``writable`` event is used for (``set``, ``clear``, ``wait``,
    ``is_set``); its waiters' list is made only when someone waits."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class LivecartWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]  # duck-typed: see the module's note
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and "response" in self.__dict__:
            # Accepted or refused: the handshake's request and response (both sets of headers)
            # are not read again.
            del self.request, self.response

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # None when the handshake itself was refused
            scope["extensions"][OUTLET] = {"outlet": TransportOutlet(self)}


class SocketsFirst:
    """Websocket routes served ahead of starlette's exception middleware and router. A viewer's
    connection lives for hours, awaiting through every layer between uvicorn and its endpoint,
    and each layer keeps a coroutine frame and closures alive all that time (about 5 KB a
    viewer, docs/decisions/0050-memory-per-viewer.md). The endpoints handle their own errors
    (the gateway closes with 1011); anything else still reaches uvicorn, which logs it."""

    def __init__(self, app: ASGIApp, routes: Sequence[WebSocketRoute]) -> None:
        self.app = app
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    await route.endpoint(WebSocket(scope, receive, send))
                    return
        await self.app(scope, receive, send)
