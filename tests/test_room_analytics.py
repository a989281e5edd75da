"""The counting side of live analytics (live/analytics.py) against a real Redis: two nodes'
flushes add up (their peaks as the maximum, their viewers as one set), every key expires and
hashes to the room's slot, a flush Redis did not take keeps its counts for the next one; and
the looks a viewer reports are parsed as the protocol says."""

from __future__ import annotations

import secrets

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from kernel.redis_client import connect
from live import protocol
from live.analytics import MINUTE_MS, RoomAnalytics, Tally, minute_of
from live.keys import LiveKeys
from live.protocol import BagOpened, ProductClicked, ProtocolError

pytestmark = pytest.mark.storage

ROOM = 7


def fresh_keys() -> LiveKeys:
    return LiveKeys(f"lctest-{secrets.token_hex(4)}")


async def test_two_nodes_flushes_add_up_to_one_room(redis: Redis) -> None:
    keys = fresh_keys()
    one, two = RoomAnalytics(redis, keys), RoomAnalytics(redis, keys)
    one.count(ROOM, Tally.LIKES, 4)
    two.count(ROOM, Tally.LIKES, 3)
    one.count(ROOM, Tally.CLICKS)
    one.count(ROOM, Tally.CHAT, 0)  # nothing counted is nothing written
    one.audience(ROOM, 5)
    two.audience(ROOM, 9)
    one.audience(ROOM, 2)
    for user in ("a", "b"):
        one.joined(ROOM, user)
    for user in ("b", "c"):
        two.joined(ROOM, user)
    one.new_follower(ROOM)

    await one.flush()
    await two.flush()
    await two.flush()  # nothing pending: nothing added

    minutes, unique = await one.minutes(ROOM)
    assert 1 <= len(minutes) <= 2  # two, if a minute turned between the counts
    summed = {
        name: sum(getattr(m, name) for m in minutes)
        for name in ("likes", "clicks", "chat", "followers", "unique_viewers")
    }
    assert summed == {"likes": 7, "clicks": 1, "chat": 0, "followers": 1, "unique_viewers": 3}
    assert max(m.viewers for m in minutes) == 9
    assert unique == 3


async def test_every_analytics_key_expires_and_shares_the_rooms_slot(redis: Redis) -> None:
    keys = fresh_keys()
    counts = RoomAnalytics(redis, keys)
    counts.count(ROOM, Tally.IMPRESSIONS, 2)
    counts.joined(ROOM, "viewer-1")
    counts.audience(ROOM, 1)
    await counts.flush()

    written = [key async for key in redis.scan_iter(match=f"{keys.prefix}:*")]
    k = keys.room(ROOM)
    starts = [int(m) for m in await redis.zrange(k.minutes, 0, -1)]
    per_minute = {key for m in starts for key in (k.minute(m), k.minute_viewers(m))}
    room_wide = {k.minutes, k.unique_viewers}
    assert room_wide < set(written) <= room_wide | per_minute
    assert len(written) >= 4  # a minute's hash and joiners besides
    for key in written:
        assert await redis.ttl(key) > 0, key
        assert key_slot(key.encode()) == key_slot(k.meta.encode()), key


async def test_a_flush_redis_did_not_take_keeps_its_counts(redis: Redis) -> None:
    keys = fresh_keys()
    unreachable = connect("redis://127.0.0.1:1/0")
    counts = RoomAnalytics(unreachable, keys)
    counts.count(ROOM, Tally.CARTS, 2)
    counts.joined(ROOM, "viewer-1")
    counts.audience(ROOM, 4)
    await counts.flush()  # refused: logged and kept
    counts.count(ROOM, Tally.CARTS, 1)
    counts.redis = redis
    await counts.flush()

    minutes, unique = await counts.minutes(ROOM)
    assert sum(m.carts for m in minutes) == 3
    assert (max(m.viewers for m in minutes), unique) == (4, 1)
    await unreachable.aclose()


def test_the_looks_a_viewer_reports_are_parsed_strictly() -> None:
    assert protocol.parse('{"type": "bag.opened"}') == BagOpened()
    assert protocol.parse('{"type": "product.clicked", "product_id": 12}') == ProductClicked(12)
    for bad, code in (
        ('{"type": "bag.opened", "product_id": 1}', "unknown_field"),
        ('{"type": "product.clicked"}', "invalid_field"),
        ('{"type": "product.clicked", "product_id": 0}', "invalid_field"),
        ('{"type": "product.clicked", "product_id": "12"}', "invalid_field"),
        ('{"type": "product.clicked", "product_id": 1, "n": 2}', "unknown_field"),
    ):
        with pytest.raises(ProtocolError) as refused:
            protocol.parse(bad)
        assert refused.value.code == code, bad


def test_a_minute_starts_on_its_first_millisecond() -> None:
    assert minute_of(MINUTE_MS * 5 + 59_999) == MINUTE_MS * 5
    assert minute_of(MINUTE_MS * 5) == MINUTE_MS * 5
