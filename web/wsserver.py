"""The websocket serving path: uvicorn's sans-I/O websockets protocol plus one ASGI extension,
``livecart.outlet``, that lets the gateway write pre-built frames straight to the transport.

Why: through ASGI every message to every viewer is an awaited ``send()`` that frames the text
again; a room's update would be framed once per viewer and each write would wait its turn. The
outlet writes the same frame bytes to every connection without awaiting (see
docs/decisions/0008-websocket-serving-path.md). Everything else (handshake, pings, close,
receiving) is uvicorn's.
"""

from __future__ import annotations

from typing import Any

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


class LivecartWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # None when the handshake itself was refused
            scope["extensions"][OUTLET] = {"outlet": TransportOutlet(self)}
