"""Room rules and protocol checks are pure: no servers needed."""

from __future__ import annotations

import pytest

from kernel.errors import Conflict, Invalid, NotFound
from live import protocol, rules
from live.frames import message_list, text_frame
from live.protocol import Buy, Chat, Hello, Like, Ping, ProtocolError, TokenBucket

NOW = 1_000_000


def card(product_id: int = 7) -> dict[str, object]:
    return {
        "product_id": product_id,
        "title": "Jacket",
        "image": None,
        "skus": [
            {"sku_id": product_id * 10, "variant": "M", "list_price": 9900, "currency": "USD"}
        ],
    }


def live_room() -> rules.Room:
    room = rules.new_room(1, 2, 3, "  Friday   sale ", NOW)
    room = rules.go_live(room, NOW).room
    return rules.add_to_bag(room, card(), NOW).room


def deal_card(
    deal_id: int = 5, starts: int = NOW + 10_000, ends: int = NOW + 70_000
) -> dict[str, object]:
    return {"deal_id": deal_id, "sku_id": 70, "starts_ms": starts, "ends_ms": ends}


def test_new_room_is_scheduled_with_a_clean_title() -> None:
    room = rules.new_room(1, 2, 3, "  Friday   sale ", NOW)
    assert room["status"] == "scheduled" and room["title"] == "Friday sale"
    with pytest.raises(Invalid):
        rules.new_room(1, 2, 3, "   ", NOW)


def test_go_live_once_and_never_after_the_end() -> None:
    room = rules.new_room(1, 2, 3, "t", NOW)
    change = rules.go_live(room, NOW)
    assert [e["type"] for e in change.events] == ["room.live"]
    assert rules.go_live(change.room, NOW + 1).events == []
    ended = rules.end(change.room, NOW + 2).room
    with pytest.raises(Conflict) as err:
        rules.go_live(ended, NOW + 3)
    assert err.value.code == "room_ended"


def test_pin_needs_the_product_in_the_bag_and_is_idempotent() -> None:
    room = live_room()
    with pytest.raises(NotFound):
        rules.pin(room, 99, NOW)
    pinned = rules.pin(room, 7, NOW)
    assert pinned.events[0]["type"] == "pin" and pinned.room["pinned"] == 7
    assert rules.pin(pinned.room, 7, NOW).events == []
    assert room["pinned"] is None  # the input is never changed
    removed = rules.remove_from_bag(pinned.room, 7, NOW)
    assert [e["type"] for e in removed.events] == ["unpin", "bag.removed"]
    assert rules.unpin(removed.room, NOW).events == []


def test_bag_is_capped() -> None:
    room = live_room()
    for i in range(100, 100 + rules.MAX_BAG - 1):
        room = rules.add_to_bag(room, card(i), NOW).room
    with pytest.raises(Conflict) as err:
        rules.add_to_bag(room, card(999), NOW)
    assert err.value.code == "bag_full"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"countdown_s": 9}, "invalid_countdown"),
        ({"countdown_s": 301}, "invalid_countdown"),
        ({"duration_s": 59}, "invalid_duration"),
        ({"duration_s": 1201}, "invalid_duration"),
    ],
)
def test_flash_deal_window(change: dict[str, int], code: str) -> None:
    """The countdown and run length are the room's rules; a flash deal's price, quantity and
    limit are every deal's terms (catalog.rules.check_deal_terms, tests/test_rules.py)."""
    terms = {
        "sku_id": 70,
        "deal_price": 4900,
        "quantity": 10,
        "per_buyer_limit": 2,
        "countdown_s": 10,
        "duration_s": 60,
    }
    for edge in ({}, {"countdown_s": 300, "duration_s": 1200}):
        rules.check_flash_window(rules.FlashDealTerms(**{**terms, **edge}))
    with pytest.raises(Invalid) as err:
        rules.check_flash_window(rules.FlashDealTerms(**{**terms, **change}))
    assert err.value.code == code


def test_deals_need_a_live_room_and_an_sku_in_the_bag() -> None:
    scheduled = rules.new_room(1, 2, 3, "t", NOW)
    with pytest.raises(Conflict):
        rules.schedule_deal(scheduled, deal_card(), NOW)
    with pytest.raises(NotFound):
        rules.sku_in_bag(live_room(), 71)
    assert rules.sku_in_bag(live_room(), 70)[1]["sku_id"] == 70


def test_the_clock_moves_deals_and_stock_flips_sold_out() -> None:
    room = rules.schedule_deal(live_room(), deal_card(), NOW).room
    assert rules.tick(room, NOW + 9_999).events == []
    opened = rules.tick(room, NOW + 10_000)
    assert [e["type"] for e in opened.events] == ["deal.live"]
    room = opened.room
    sold = rules.stock_changed(room, 5, 0, NOW + 11_000)
    assert [e["type"] for e in sold.events] == ["deal.sold_out"]
    assert rules.stock_changed(sold.room, 5, 0, NOW + 11_001).events == []
    back = rules.stock_changed(sold.room, 5, 2, NOW + 12_000)
    assert back.events[0] == {"type": "deal.restocked", "deal_id": 5, "left": 2, "ms": NOW + 12_000}
    ended = rules.tick(back.room, NOW + 70_000)
    assert [e["type"] for e in ended.events] == ["deal.ended"]
    assert rules.live_deal_ids(ended.room) == []
    # A deal the clock skipped past entirely opens and ends in one tick, in that order.
    late = rules.schedule_deal(live_room(), deal_card(6), NOW).room
    assert [e["type"] for e in rules.tick(late, NOW + 80_000).events] == ["deal.live", "deal.ended"]


def test_stop_and_end() -> None:
    room = rules.schedule_deal(live_room(), deal_card(), NOW).room
    stopped = rules.stop_deal(room, 5, NOW)
    assert stopped.events[0]["reason"] == "stopped"
    with pytest.raises(Conflict):
        rules.stop_deal(stopped.room, 5, NOW)
    with pytest.raises(NotFound):
        rules.stop_deal(room, 6, NOW)
    room = rules.pin(room, 7, NOW).room
    ended = rules.end(room, NOW)
    assert [e["type"] for e in ended.events] == ["deal.ended", "unpin", "room.ended"]
    assert rules.end(ended.room, NOW).events == []


def test_chat_is_cleaned_not_escaped() -> None:
    assert rules.clean_chat("  <b>hi</b>\n\tthere\x00 ") == "<b>hi</b> there"
    for bad, code in [
        ("", "empty_chat"),
        ("\u200b \n", "empty_chat"),
        (5, "invalid_chat"),
        ("x" * 201, "chat_too_long"),
    ]:
        with pytest.raises(Invalid) as err:
            rules.clean_chat(bad)
        assert err.value.code == code
    assert rules.clean_name("\u202eAna\n", "viewer-1") == "Ana"
    assert rules.clean_name(None, "viewer-1") == "viewer-1"


def test_protocol_parses_each_client_message() -> None:
    assert protocol.parse('{"type":"hello","token":"t","last_seq":4}') == Hello("t", 4, None)
    assert protocol.parse(b'{"type":"chat","text":"hi"}') == Chat("hi")
    assert protocol.parse('{"type":"buy","deal_id":3,"request_id":"r-1"}') == Buy(3, 1, "r-1")
    assert protocol.parse('{"type":"like","count":3}') == Like(3)
    assert protocol.parse('{"type":"ping"}') == Ping(None)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{nope", "malformed_json"),
        ("[1]", "malformed_message"),
        ('{"type":"dance"}', "unknown_type"),
        ('{"type":"hello"}', "missing_token"),
        ('{"type":"hello","token":"t","protocol":2}', "unsupported_protocol"),
        ('{"type":"hello","token":"t","last_seq":-1}', "invalid_field"),
        ('{"type":"buy","deal_id":1,"qty":1.0,"request_id":"r"}', "invalid_field"),
        ('{"type":"buy","deal_id":true,"request_id":"r"}', "invalid_field"),
        ('{"type":"buy","deal_id":1,"request_id":"has space"}', "invalid_field"),
        ('{"type":"buy","deal_id":1}', "invalid_field"),
        ('{"type":"like","count":51}', "invalid_field"),
        ('{"type":"chat","text":"x","price":1}', "unknown_field"),
    ],
)
def test_protocol_refuses(raw: str, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        protocol.parse(raw)
    assert err.value.code == code


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0)
    assert [bucket.take(0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.5)


def test_frames_are_rfc6455_text_frames() -> None:
    assert text_frame(b"hi") == b"\x81\x02hi"
    assert text_frame(b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert text_frame(b"x" * 70000)[:10] == b"\x81\x7f" + (70000).to_bytes(8, "big")
    assert message_list([b"1", b'"a"']) == b'[1,"a"]'
