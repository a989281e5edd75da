"""Comment-to-buy (decision 0033): the chat line read as a claim (pure), and against a running
server over real websockets: 500 viewers typing "sold" for 20 units make exactly 20 holds; a
claim over a flash deal's per-buyer limit is refused privately and holds nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from kernel.errors import DomainError
from live.comment_rules import Claim, check_keywords, is_claim, parse_claim
from tests.conftest import SellerAccount
from tests.harness import Server
from tests.helpers import assert_error, http_flash_deal, http_room, until_flash_deal_live
from tests.wsclient import WsViewer
from web.auth import GuestSessions

JACKET = {
    "product_id": 1,
    "shop_id": 1,
    "skus": [
        {"sku_id": 10, "variant": "Red / M", "options": {"colour": "Red", "size": "M"}},
        {"sku_id": 11, "variant": "Blue / M", "options": {"colour": "Blue", "size": "M"}},
        {"sku_id": 12, "variant": "Blue / L", "options": {"colour": "Blue", "size": "L"}},
    ],
}


def refusal(text: str, pinned: dict[str, Any] | None = JACKET) -> str:
    try:
        parse_claim(text, pinned)
    except DomainError as err:
        return str(err.code)
    raise AssertionError(f"{text!r} was taken")


def test_a_line_is_a_claim_when_it_starts_with_a_keyword() -> None:
    assert is_claim("sold", ["SOLD", "comprar"]) and is_claim("Comprar L 2", ["SOLD", "comprar"])
    assert not is_claim("is this sold out?", ["SOLD"]) or is_claim("is", ["is"])
    assert not is_claim("I want it, SOLD", ["SOLD"])
    assert check_keywords([" SOLD ", "buy"]) == ["SOLD", "buy"]
    for bad in ([], ["two words"], ["x" * 21], ["a"] * 7):
        with pytest.raises(DomainError):
            check_keywords(bad)


def test_the_variant_and_quantity_are_read_from_the_line() -> None:
    assert parse_claim("SOLD red / m", JACKET) == Claim(10, 1)
    assert parse_claim("sold Red 3", JACKET) == Claim(10, 3)  # the one red SKU
    assert parse_claim("sold L", JACKET) == Claim(12, 1)
    assert refusal("sold M") == "variant_required"  # red M and blue M
    assert refusal("sold") == "variant_required"
    assert refusal("sold XL") == "unknown_variant"
    assert refusal("sold L 11") == "invalid_claim"
    assert refusal("sold L 0") == "invalid_claim"
    assert refusal("sold", None) == "nothing_pinned"
    one = {"product_id": 2, "shop_id": 1, "skus": [{"sku_id": 20, "variant": "", "options": {}}]}
    assert parse_claim("SOLD 2", one) == Claim(20, 2)


async def _comment_room(
    http: httpx.AsyncClient, seller: SellerAccount, stock: int
) -> tuple[int, int, int]:
    room, product, sku = await http_room(http, seller, stock=stock)
    h = seller.headers
    assert (
        await http.post(f"/api/rooms/{room}/pin", headers=h, json={"product_id": product})
    ).status_code == 200
    bad = await http.put(f"/api/rooms/{room}/comment-to-buy", headers=h, json={"keywords": ["a b"]})
    assert_error(bad, 422, "invalid_keywords")
    on = await http.put(
        f"/api/rooms/{room}/comment-to-buy", headers=h, json={"keywords": ["SOLD", "comprar"]}
    )
    assert on.status_code == 200, on.text
    assert on.json()["room"]["comment_buy"] == {"keywords": ["SOLD", "comprar"]}
    return room, product, sku


@pytest.mark.storage
async def test_five_hundred_sold_comments_for_twenty_units_make_twenty_holds(
    storm_server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    room, _product, _sku = await _comment_room(http, seller, stock=20)
    viewers: list[WsViewer] = []
    for _ in range(5):  # in waves of a hundred, as a room fills up
        wave = await asyncio.gather(
            *(WsViewer.open(storm_server.base_url, room) for _ in range(100))
        )
        await asyncio.gather(*(v.hello(sessions.issue()[1]) for v in wave))
        viewers += wave
    await asyncio.gather(*(v.send(type="chat", text="sold") for v in viewers))

    async def outcome(v: WsViewer) -> dict[str, Any]:
        return await v._first(
            lambda m: m.get("type") in ("claim.granted", "claim.refused"), "a claim's answer", 60
        )

    answers = await asyncio.gather(*(outcome(v) for v in viewers))
    granted = [a for a in answers if a["type"] == "claim.granted"]
    refused = [a for a in answers if a["type"] == "claim.refused"]
    assert len(granted) == 20, [a.get("code") for a in refused][:5]
    assert {a["code"] for a in refused} <= {"sold_out", "insufficient_stock"}
    assert len({a["hold"]["id"] for a in granted}) == 20
    # Everyone sees each claimed line's badge: 20 of them, after their chat lines.
    watcher = viewers[0]
    await watcher.next("chat.claimed", within=30)

    async def twenty() -> bool:
        return len(watcher.of("chat.claimed")) >= 20

    for _ in range(600):
        if await twenty():
            break
        await asyncio.sleep(0.05)
    claimed = watcher.of("chat.claimed")
    assert len(claimed) == 20
    lines = {m["seq"]: m for m in watcher.of("chat")}
    assert all(c["chat_seq"] in lines and lines[c["chat_seq"]]["text"] == "sold" for c in claimed)
    for v in viewers:
        await v.close()


@pytest.mark.storage
async def test_a_claim_over_a_deals_limit_is_refused_privately(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    room, _product, sku = await _comment_room(http, seller, stock=10)
    deal = await http_flash_deal(http, seller, room, sku, quantity=5, limit=1)
    await until_flash_deal_live(http, room, int(deal["deal_id"]))
    _, token = sessions.issue()
    v = await WsViewer.open(server.base_url, room)
    await v.hello(token)
    await v.send(type="chat", text="SOLD 2")
    over = await v.next("claim.refused", within=30)
    assert over["code"] == "limit_exceeded"
    await v.send(type="chat", text="SOLD")
    took = await v.next("claim.granted", within=30)
    assert took["hold"]["id"].startswith(f"{deal['deal_id']}-")  # the deal's unit, at its price
    await v.send(type="chat", text="comprar")
    again = await v.next("claim.refused", within=30, after=v.messages.index(took))
    assert again["code"] == "limit_exceeded"
    await v.close()
