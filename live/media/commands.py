"""The body of ``livecart publish``: go live in a room with the test pattern and tone. web/cli.py
parses its options and hands it the token and settings values."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from live.media.ice import use_host_addresses
from live.media.publisher import Publisher, Unreachable, WhipError, publish_for


def publish(
    base_url: str,
    room_id: int,
    token: str,
    *,
    size: tuple[int, int],
    fps: int,
    seconds: float | None,
    host_addresses: Sequence[str],
) -> None:
    """Until ``seconds`` pass, the server hangs up, or Ctrl-C. When it cannot go live it says
    why in one sentence: a SystemExit with a message, which Python prints to stderr with
    exit status 1."""
    if host_addresses:
        use_host_addresses(host_addresses)
    width, height = size
    publisher = Publisher(base_url, room_id, token, width, height, fps)

    def live() -> None:  # only once the server took the offer: a refusal prints no "publishing"
        print(
            f"publishing a test pattern to room {room_id} at {base_url} (Ctrl-C stops)",
            flush=True,
        )

    try:
        asyncio.run(publish_for(publisher, seconds, on_live=live))
    except WhipError as err:
        raise SystemExit(f"livecart publish: the server refused: {err}") from None
    except Unreachable as err:
        raise SystemExit(
            f"livecart publish: no livecart answers at {base_url} ({err.reason}); "
            "is it running, and is --url its address?"
        ) from None
    except KeyboardInterrupt:
        pass
