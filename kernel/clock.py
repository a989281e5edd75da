"""One notion of time: integer milliseconds since the epoch, as Redis's TIME gives it."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
