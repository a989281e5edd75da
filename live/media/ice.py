"""Where peers can reach us: the ICE servers we offer and the addresses we gather from.

aiortc asks a public STUN server by default, which a closed network cannot reach (gathering then
waits for it to time out): livecart uses only the ICE servers it is configured with.
"""

from __future__ import annotations

from collections.abc import Sequence

import aioice.ice
from aiortc import RTCIceServer


def ice_servers(
    urls: Sequence[str], username: str | None, credential: str | None
) -> tuple[RTCIceServer, ...]:
    return tuple(
        RTCIceServer(url, username=username, credential=credential)
        if url.startswith(("turn:", "turns:"))
        else RTCIceServer(url)
        for url in urls
    )


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Offer exactly these addresses as host candidates, instead of every interface's but the
    loopback (aioice's choice). ``127.0.0.1`` keeps tests and benchmarks on the loopback; a
    server with many interfaces can name the one its viewers reach. aioice has no setting for
    this, so its lookup is replaced for the whole process."""
    chosen = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses
