"""A test viewer: a real websocket client (the ``websockets`` library) that keeps every message
it receives, so tests can wait for one and check sequence numbers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class WsViewer:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.frames = 0
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        self.closed_code: int | None = None

    @classmethod
    async def open(cls, base_url: str, room_id: int, **kwargs: Any) -> WsViewer:
        url = base_url.replace("http://", "ws://") + f"/ws/rooms/{room_id}"
        return cls(await connect(url, open_timeout=30, **kwargs))

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                batch = orjson.loads(frame)
                assert isinstance(batch, list), frame
                async with self._arrived:
                    self.frames += 1
                    self.messages += batch
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.closed_code = self.ws.close_code
            async with self._arrived:
                self._arrived.notify_all()

    async def send(self, **message: Any) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def hello(self, token: str, **extra: Any) -> dict[str, Any]:
        await self.send(type="hello", token=token, **extra)
        return await self.next("welcome")

    async def next(
        self, kind: str, within: float = 10, after: int = 0, **match: Any
    ) -> dict[str, Any]:
        """The first message of ``kind`` (at index >= ``after``) whose fields match."""
        return await self._first(
            lambda m: m.get("type") == kind and all(m.get(k) == v for k, v in match.items()),
            f"{kind} {match}",
            within,
            after,
        )

    async def until(
        self, kind: str, holds: Callable[[dict[str, Any]], bool], within: float = 10
    ) -> dict[str, Any]:
        """The first message of ``kind`` for which ``holds`` is true: for figures that settle
        (a viewer count reported each second reaches 2 on some report, maybe not the first)."""
        return await self._first(
            lambda m: m.get("type") == kind and holds(m), f"{kind} that holds", within
        )

    async def answer(self, ref: str, within: float = 10) -> dict[str, Any]:
        """The server's answer to the request sent with ``request_id=ref``, whatever its type."""
        return await self._first(lambda m: m.get("ref") == ref, f"the answer to {ref}", within)

    async def _first(
        self,
        wanted: Callable[[dict[str, Any]], bool],
        what: str,
        within: float,
        after: int = 0,
    ) -> dict[str, Any]:
        # Woken by each frame the reader keeps: no polling, however many viewers wait at once.
        seen = after
        async with asyncio.timeout(within):
            async with self._arrived:
                while True:
                    for m in self.messages[seen:]:
                        if wanted(m):
                            return m
                    seen = max(seen, len(self.messages))
                    if self._reader.done():
                        raise AssertionError(
                            f"closed ({self.closed_code}) before {what}: {self.messages[-5:]}"
                        )
                    await self._arrived.wait()

    async def closed(self, within: float = 10) -> int | None:
        async with asyncio.timeout(within):
            await asyncio.shield(self._reader)
        return self.closed_code

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def seqs(self) -> list[int]:
        return [
            m["seq"]
            for m in self.messages
            if "seq" in m and m.get("type") != "snapshot" and m.get("type") != "welcome"
        ]

    @property
    def last_seq(self) -> int:
        numbers = [m["seq"] for m in self.messages if "seq" in m]
        return int(max(numbers))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        with contextlib.suppress(Exception):
            await self._reader


def raw_viewer(
    base_url: str, room_id: int, token: str, *, rcvbuf: int | None = None
) -> socket.socket:
    """A viewer on a plain socket that completes the handshake and says hello, then does only
    what the test does with it: for clients that misbehave (never read, never answer pings)."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.settimeout(10)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    sock.sendall(
        (
            f"GET /ws/rooms/{room_id} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert b" 101 " in sock.recv(4096)
    hello = orjson.dumps({"type": "hello", "token": token})
    n = len(hello)
    length = bytes((0x80 | n,)) if n < 126 else bytes((0x80 | 126,)) + n.to_bytes(2, "big")
    # A client frame must be masked; a zero mask key leaves the payload as it is.
    sock.sendall(b"\x81" + length + b"\0" * 4 + hello)
    return sock
