"""The viewer protocol (docs/protocol.md, "Live rooms"): message shapes, close codes, and the
checks on what a client sends. Pure: no I/O, so every rule is tested without a server.

Client -> server: hello, chat, buy, bid, like, ping, and what the viewer looked at for the
room's analytics (bag.opened, product.clicked). Server -> client: every frame is a JSON array of
messages (welcome, snapshot, room and deal events, chat, figures, hold.*, time, error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from kernel.errors import CommonErrorCode, ErrorCode, Invalid
from live.error_codes import LiveErrorCode

VERSION = 1
MAX_MESSAGE_BYTES = 4096

# Close codes (RFC 6455 section 7.4; 4000-4999 are ours).
CLOSE_POLICY = 1008  # repeated malformed, unauthorised or too-fast messages
CLOSE_TOO_BIG = 1009  # a message over MAX_MESSAGE_BYTES (sent by the websocket layer)
CLOSE_SERVER_ERROR = 1011  # unexpected failure, or no pong to our ping in time
CLOSE_RESTART = 1012  # the node is shutting down: reconnect (to another node)
CLOSE_TOO_SLOW = 4000  # the viewer's send buffer overflowed: reconnect with last seq
CLOSE_HELLO_TIMEOUT = 4001  # no valid hello in time
CLOSE_RESYNC = 4002  # the node lost its place in the room's events: reconnect with last seq
CLOSE_BANNED = 4003  # the creator banned this user from the room: do not reconnect
CLOSE_ROOM_NOT_FOUND = 4004

REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_LIKES_PER_MESSAGE = 50
MAX_QTY = 1000
MAX_BID = 10**12  # minor units, as the HTTP API's MAX_MONEY


class ProtocolError(Invalid):
    """A message the server cannot act on; answered with an error frame, counted as a strike."""


@dataclass(frozen=True)
class Hello:
    token: str
    last_seq: int | None
    name: object


@dataclass(frozen=True)
class Chat:
    text: object


@dataclass(frozen=True)
class Buy:
    deal_id: int
    qty: int
    request_id: str


@dataclass(frozen=True)
class Bid:
    """A bid in one of the room's auctions: the most the viewer will pay, or buy-it-now."""

    auction_id: int
    amount: int
    buy_now: bool
    ref: str | None


@dataclass(frozen=True)
class Like:
    count: int


@dataclass(frozen=True)
class Ping:
    client_ms: int | None


@dataclass(frozen=True)
class BagOpened:
    """The viewer opened the room's bag: each product in it was shown (an impression)."""


@dataclass(frozen=True)
class ProductClicked:
    """The viewer opened one of the bag's products."""

    product_id: int


ClientMessage = Hello | Chat | Buy | Bid | Like | Ping | BagOpened | ProductClicked


def _int(body: dict[str, Any], name: str, low: int, high: int, default: int | None = None) -> int:
    value = body.get(name, default)
    if type(value) is not int or not low <= value <= high:
        raise ProtocolError(
            f"'{name}' must be a whole number from {low} to {high}.",
            code=LiveErrorCode.INVALID_FIELD,
            field=name,
        )
    return value


def _known_fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed - {"type"})
    if unknown:
        raise ProtocolError(
            f"Unknown field(s): {', '.join(unknown)}.",
            code=CommonErrorCode.UNKNOWN_FIELD,
            fields=unknown,
        )


def parse(raw: str | bytes) -> ClientMessage:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProtocolError(
            "The message is not valid JSON.", code=CommonErrorCode.MALFORMED_JSON
        ) from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise ProtocolError(
            'Send a JSON object with a "type".', code=LiveErrorCode.MALFORMED_MESSAGE
        )
    kind = body["type"]
    if kind == "hello":
        _known_fields(body, {"token", "last_seq", "name", "protocol"})
        token = body.get("token")
        if not isinstance(token, str) or not 0 < len(token) <= 512:
            raise ProtocolError(
                "hello needs your session token.", code=CommonErrorCode.MISSING_TOKEN
            )
        if body.get("protocol", VERSION) != VERSION:
            raise ProtocolError(
                f"This server speaks protocol {VERSION}.",
                code=LiveErrorCode.UNSUPPORTED_PROTOCOL,
                supported=[VERSION],
            )
        last = None if body.get("last_seq") is None else _int(body, "last_seq", 0, 2**53)
        return Hello(token, last, body.get("name"))
    if kind == "chat":
        _known_fields(body, {"text"})
        return Chat(body.get("text"))
    if kind == "buy":
        _known_fields(body, {"deal_id", "qty", "request_id"})
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
            raise ProtocolError(
                "buy needs a request_id (1-64 of A-Z a-z 0-9 _ . : -); a retry reuses it.",
                code=LiveErrorCode.INVALID_FIELD,
                field="request_id",
            )
        return Buy(
            _int(body, "deal_id", 1, 2**31 - 1), _int(body, "qty", 1, MAX_QTY, 1), request_id
        )
    if kind == "bid":
        _known_fields(body, {"auction_id", "amount", "buy_now", "ref"})
        buy_now = body.get("buy_now", False)
        ref = body.get("ref")
        if not isinstance(buy_now, bool):
            raise ProtocolError(
                "'buy_now' is true or false.", code=LiveErrorCode.INVALID_FIELD, field="buy_now"
            )
        if ref is not None and (not isinstance(ref, str) or not REQUEST_ID.match(ref)):
            raise ProtocolError(
                "'ref' is 1-64 of A-Z a-z 0-9 _ . : -.",
                code=LiveErrorCode.INVALID_FIELD,
                field="ref",
            )
        amount = 0 if buy_now else _int(body, "amount", 1, MAX_BID)
        return Bid(_int(body, "auction_id", 1, 2**31 - 1), amount, buy_now, ref)
    if kind == "like":
        _known_fields(body, {"count"})
        return Like(_int(body, "count", 1, MAX_LIKES_PER_MESSAGE, 1))
    if kind == "bag.opened":
        _known_fields(body, set())
        return BagOpened()
    if kind == "product.clicked":
        _known_fields(body, {"product_id"})
        return ProductClicked(_int(body, "product_id", 1, 2**31 - 1))
    if kind == "ping":
        _known_fields(body, {"client_ms"})
        client_ms = body.get("client_ms")
        return Ping(None if client_ms is None else _int(body, "client_ms", 0, 2**53))
    raise ProtocolError(
        f"Unknown message type {kind!r}.", code=LiveErrorCode.UNKNOWN_TYPE, type=kind[:40]
    )


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def error(
    code: ErrorCode, message: str, details: dict[str, Any] | None = None, ref: str | None = None
) -> bytes:
    body: dict[str, Any] = {
        "type": "error",
        "code": code,
        "message": message,
        "details": details or {},
    }
    if ref is not None:
        body["ref"] = ref
    return orjson.dumps(body)


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; time is passed in, so it is pure."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def take_up_to(self, n: int, now: float) -> int:
        """Take as many of ``n`` tokens as there are (whole ones); returns how many."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        taken = min(n, int(self.tokens))
        self.tokens -= taken
        return taken

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
