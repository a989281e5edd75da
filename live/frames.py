"""WebSocket frames built once and written to many connections.

A server's text frame carries no mask, and livecart does not negotiate compression, so the bytes
of a frame are the same for every viewer: a room's update is encoded and framed once, whatever
the number of viewers (RFC 6455 section 5.2).
"""

from __future__ import annotations

TEXT_FIN = 0x81


def text_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((TEXT_FIN, n)) + payload
    if n < 65536:
        return bytes((TEXT_FIN, 126)) + n.to_bytes(2, "big") + payload
    return bytes((TEXT_FIN, 127)) + n.to_bytes(8, "big") + payload


def message_list(messages: list[bytes]) -> bytes:
    """Every server frame is a JSON array of messages, oldest first (each already JSON)."""
    return b"[" + b",".join(messages) + b"]"
