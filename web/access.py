"""The access log and the request id: one line per HTTP request (and one per websocket connection,
when it ends) on the ``livecart.access`` logger, and an id that every response carries in
``X-Request-ID`` and every error body in ``error.request_id``, so a person can report it and an
operator can find the line. Also the log setup: plain lines, or JSON lines when asked."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from time import localtime, perf_counter, strftime, time
from typing import Any, TextIO

import orjson
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.wsserver import SocketsFirst

ACCESS_LOGGER = "livecart.access"
HEADER = b"x-request-id"
# An id from a proxy in front of us is kept when it is a short token that cannot break a log
# line (the same alphabet as a buy's request_id); anything else is replaced by our own.
VALID_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
CHATTY = ("alembic", "aioice", "aiortc")

# Set for each request's task by the middleware: error bodies built far from the request (an
# idempotent checkout's stored decline, say) read it here instead of threading a Request down.
current_request_id: ContextVar[str] = ContextVar("livecart_request_id", default="")


# Our ids: this process's random tag, then a counter (16 hex digits). Unique across nodes
# without a system call per request; an id names a request, it is no secret.
NODE_TAG = secrets.token_hex(4)
_issued = itertools.count(1)


def _new_tag() -> None:
    global NODE_TAG
    NODE_TAG = secrets.token_hex(4)


# A worker forked by ``serve --workers`` is a process of its own: its own tag, or two workers
# would number their requests alike.
os.register_at_fork(after_in_child=_new_tag)


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == HEADER:
            if VALID_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return f"{NODE_TAG}{next(_issued) & 0xFFFFFFFF:08x}"


def target_of(scope: Scope) -> str:
    """The path as the client sent it (still percent-encoded, so it cannot hold a line break)
    and its query string; never a header, so no Authorization ends up in the log."""
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return (path + b"?" + query if query else path).decode("latin-1")


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


class LineWriter:
    """Access lines, formatted like the ``logging`` handler's records (text or JSON) but
    written without it: a ``logging`` record costs ~30 µs of CPU per request (making, handing
    on, formatting), a third of a no-op request. Lines are kept and written together once per
    ``FLUSH_S`` (one write for a burst of requests), and at exit."""

    FLUSH_S = 0.05
    MAX_PENDING = 1000

    def __init__(self, log_format: str = "text", stream: TextIO | None = None) -> None:
        self.json = log_format == "json"
        self.stream = stream
        self.pending: list[str] = []
        self.scheduled = False
        self._second = -1
        self._stamp = ""
        atexit.register(self.flush)

    def add(self, line: str, fields: Callable[[], dict[str, Any]]) -> None:
        """``fields`` makes the JSON line's fields: only called when the format is JSON."""
        now = time()
        if self.json:
            entry = {"ts": self._iso(now), "level": "INFO", "logger": ACCESS_LOGGER}
            self.pending.append(orjson.dumps({**entry, "message": line, **fields()}).decode())
        else:
            self.pending.append(f"{self._local(now)} INFO {ACCESS_LOGGER} {line}")
        if len(self.pending) >= self.MAX_PENDING:
            self.flush()
        elif not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_later(self.FLUSH_S, self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if not self.pending:
            return
        lines, self.pending = self.pending, []
        stream = self.stream or sys.stderr
        with contextlib.suppress(OSError, ValueError):  # stderr closed: nowhere to write
            stream.write("\n".join(lines) + "\n")
            stream.flush()

    def _second_of(self, now: float, fmt: Callable[[int], str]) -> str:
        # Formatting a date is the dear part of a timestamp: once per second.
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, fmt(second)
        return self._stamp

    def _local(self, now: float) -> str:  # as logging's asctime: 2026-12-02 01:44:39,826
        stamp = self._second_of(now, lambda s: strftime("%Y-%m-%d %H:%M:%S", localtime(s)))
        return f"{stamp},{int(now % 1 * 1000):03d}"

    def _iso(self, now: float) -> str:  # as JsonLines' ts: 2026-12-02T01:44:39.826+00:00
        stamp = self._second_of(
            now, lambda s: datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        )
        return f"{stamp}.{int(now % 1 * 1000):03d}+00:00"


class AccessLog:
    """Pure ASGI (no BaseHTTPMiddleware task and stream per request: reserve is the hot path)."""

    def __init__(self, app: ASGIApp, *, enabled: bool = True, log_format: str = "text") -> None:
        self.app = app
        self.enabled = enabled
        self.lines = LineWriter(log_format)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _begin(self, scope: Scope) -> str:
        rid = request_id_of(scope["headers"])
        scope.setdefault("state", {})["request_id"] = rid
        # Each request runs in its own task, hence its own context: no reset needed.
        current_request_id.set(rid)
        return rid

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = self._begin(scope)
        header = (HEADER, rid.encode())
        status = 0  # stays 0 when no response was sent at all

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        start = perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Starlette re-raises after its 500 handler has answered and logged the error with
            # this id; uvicorn would log the same traceback again, without the id. Any other
            # failure (a response cut short, say) is still uvicorn's to report.
            if status != 500:
                raise
        finally:
            if self.enabled:
                ms = (perf_counter() - start) * 1000
                client, method, path = client_of(scope), scope["method"], target_of(scope)
                self.lines.add(
                    f"{client} {method} {path} {status} {ms:.1f}ms id={rid}",
                    lambda: {
                        "method": method,
                        "path": path,
                        "status": status,
                        "duration_ms": round(ms, 3),
                        "request_id": rid,
                        "client": client,
                    },
                )

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One line when the connection ends: its whole life, and the first close code seen
        either way (ours, the viewer's, or a refused handshake's)."""
        noting = Noting(receive, send, self._begin(scope))
        start = perf_counter()
        try:
            await self.app(scope, noting.receive, noting.send)
        finally:
            if self.enabled:
                ms = (perf_counter() - start) * 1000
                client, path = client_of(scope), target_of(scope)
                close_code, rid = noting.close_code, noting.rid
                self.lines.add(
                    f"{client} WS {path} close={close_code} {ms:.0f}ms id={rid}",
                    lambda: {
                        "method": "WS",
                        "path": path,
                        "close_code": close_code,
                        "duration_ms": round(ms, 3),
                        "request_id": rid,
                        "client": client,
                    },
                )


class Noting:
    """A websocket's receive and send as the access log sees them: the first close code either
    way, and the request id on the accept. One slotted object, not two closures and their
    cells: it lives as long as the connection (docs/decisions/0050-memory-per-viewer.md)."""

    __slots__ = ("_receive", "_send", "close_code", "rid")

    def __init__(self, receive: Receive, send: Send, rid: str) -> None:
        self._receive, self._send, self.rid = receive, send, rid
        self.close_code: int | None = None

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "websocket.disconnect" and self.close_code is None:
            self.close_code = message.get("code", 1005)
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.accept":
            message["headers"] = [*message.get("headers", ()), (HEADER, self.rid.encode())]
        elif message["type"] == "websocket.close" and self.close_code is None:
            self.close_code = message.get("code", 1000)
        await self._send(message)


class LoggedStarlette(Starlette):
    """Starlette with the access log outside even its ServerErrorMiddleware, which answers
    500s itself: placed as ordinary middleware, the log would miss those responses.
    ``sockets_first``: websocket routes served past the rest of the stack (web/wsserver.py)."""

    def __init__(
        self,
        *,
        access_log: bool,
        log_format: str = "text",
        sockets_first: Sequence[WebSocketRoute] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.access_log = access_log
        self.log_format = log_format
        self.sockets_first = tuple(sockets_first)

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.sockets_first:
            stack = SocketsFirst(stack, self.sockets_first)
        return AccessLog(stack, enabled=self.access_log, log_format=self.log_format)


class JsonLines(logging.Formatter):
    """One JSON object per record (access lines are made alike by LineWriter)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(log_format: str) -> None:
    """Everything to stderr, one line per record: plain text, or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # No format here names a thread or a process: don't look them up for every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(logging.WARNING)
