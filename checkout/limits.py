"""Per-client-address abuse limits (decision 0019): which address a request counts against,
token buckets in Redis for session minting and chat (``lua/limits.lua``, one round trip each),
and the terms of the per-deal limits that ``lua/holds.lua`` applies inside the reservation
itself (a reserve bucket and a cap on units in holds): no round trip of their own.

The address is the socket peer, or the client a trusted proxy names (uvicorn resolves it from
``X-Forwarded-For`` for the proxies in ``LIVECART_TRUSTED_PROXIES``; see web/cli.py).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import math
from importlib import resources
from typing import NamedTuple

from redis.asyncio import Redis

from kernel.errors import Throttled

LIBRARY = resources.files("checkout").joinpath("lua/limits.lua").read_text()

# An IPv6 subscriber usually gets a whole /64 and picks addresses in it at will.
IPV6_PREFIX = 64


class Rate(NamedTuple):
    """A token bucket: ``burst`` tokens, refilled at ``per_s`` a second. Zero in either: off."""

    per_s: float = 0.0
    burst: int = 0

    @property
    def on(self) -> bool:
        return self.per_s > 0 and self.burst > 0

    @property
    def interval_ms(self) -> float:
        """Time to earn one token (0 when off)."""
        return 1000 / self.per_s if self.on else 0.0


NO_LIMIT = Rate()


class ReserveLimits(NamedTuple):
    """Per client address and per deal, applied inside ``lc_reserve_many``."""

    rate: Rate = NO_LIMIT
    # Units in the address's holds still held or paying; 0: no cap. Sold units do not count
    # here (the per-buyer limit counts them).
    address_cap: int = 0

    def argv(self) -> tuple[str, int, int]:
        return f"{self.rate.interval_ms:.9g}", self.rate.burst, max(0, self.address_cap)


@functools.lru_cache(maxsize=65536)  # on every reservation; a viewer keeps its address
def client_address(host: str | None) -> str:
    """The bucket a client's address counts against: an IPv4 address as it is, an IPv6 one by
    its /64, anything else (a proxy's non-IP token) by a digest, so it is safe in a Redis key
    and in a reservation line. No address at all (a Unix socket without a proxy) gives ""; it
    is not limited, rather than putting every such client in one bucket."""
    if not host:
        return ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "x-" + hashlib.sha256(host.encode()).hexdigest()[:16]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        network = int(ip) >> (128 - IPV6_PREFIX) << (128 - IPV6_PREFIX)
        return f"{ipaddress.IPv6Address(network)}/{IPV6_PREFIX}"
    return str(ip)


def throttled(retry_after_ms: int, what: str) -> Throttled:
    """429 ``rate_limited``: ``Retry-After`` in whole seconds (at least 1), and the exact wait
    in ``details.retry_after_ms``."""
    seconds = max(1, math.ceil(retry_after_ms / 1000))
    return Throttled(
        f"Too many {what} from your network; try again in {seconds} s.",
        retry_after_ms=retry_after_ms,
        retry_after_s=seconds,
    )


class RateLimiter:
    """Token buckets per (name, client address), under ``{prefix}:rate:``."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def install(self) -> None:
        await self.redis.function_load(LIBRARY, replace=True)

    def key(self, name: str, address: str) -> str:
        return f"{self.prefix}:rate:{name}:{address}"

    async def take(self, name: str, address: str, rate: Rate, what: str) -> None:
        """Take a token from the address's ``name`` bucket, or raise ``Throttled`` saying when
        one will be there (a refused request takes none)."""
        if not rate.on or not address:
            return
        admitted, wait_ms = await self.redis.fcall(
            "lc_rate_take", 1, self.key(name, address), f"{rate.interval_ms:.9g}", rate.burst
        )
        if not admitted:
            raise throttled(int(wait_ms), what)
