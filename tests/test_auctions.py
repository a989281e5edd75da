"""Auctions (decision 0031) against a real Redis: proxy bidding, anti-snipe and sudden death on
Redis's clock, the refusals, a bid storm, and (against a running server) the close, the award
as a hold and the order at the hammer price."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from catalog.models import Deal
from checkout.holds import HoldStore
from checkout.keys import Keyspace
from checkout.payments import SandboxProvider
from kernel.errors import DomainError
from live import rules
from live.auction_rules import (
    DEFAULT_INCREMENTS,
    AuctionMode,
    AuctionTerms,
    check_terms,
    increment_at,
)
from live.auctions import Auctions
from live.keys import LiveKeys
from live.store import RoomStore
from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import (
    CARD_DECLINED,
    CARD_OK,
    assert_error,
    charges_for,
    checkout,
    http_room,
    orders_seen_by,
    poll,
    until,
)
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

ROOM = 7
SELLER = "seller-1"


@pytest.fixture
async def desk(redis: Redis) -> AsyncIterator[Auctions]:
    """Auctions in a live room of a private key prefix (no server), with a lot store."""
    prefix = f"lcauct{uuid.uuid4().hex[:8]}"
    store = RoomStore(redis, LiveKeys(prefix), 10_000)
    await store.install()
    holds = HoldStore(redis, Keyspace(prefix))
    await holds.install()
    auctions = Auctions(
        redis, LiveKeys(prefix), store, holds, hold_ttl_ms=60_000, pay_ttl_ms=30_000
    )
    await auctions.install()
    await store.create(rules.new_room(ROOM, 1, 1, "Auction room", 0))
    await store.update(ROOM, lambda r: rules.go_live(r, 1))
    yield auctions
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        await redis.delete(key)


def terms(**changes: Any) -> AuctionTerms:
    return replace(AuctionTerms(sku_id=1, start_price=1000, duration_s=600), **changes)


async def refused(call: Any) -> str:
    try:
        await call
    except DomainError as err:
        return str(err.code)
    raise AssertionError("accepted")


async def events(auctions: Auctions, kind: str) -> list[dict[str, Any]]:
    log = auctions.keys.room(ROOM).log
    found = [orjson.loads(fields["p"]) for _, fields in await auctions.redis.xrange(log)]
    return [e for e in found if e["type"] == kind]


async def test_a_bid_is_a_maximum_and_the_price_moves_only_as_far_as_needed(
    desk: Auctions,
) -> None:
    await desk.start(ROOM, 11, SELLER, terms())
    first = await desk.bid(ROOM, 11, "ann", "Ann", 2000, False)
    assert (first.outcome, first.price, first.min_bid) == ("leading", 1000, 1050)
    # Bea's 1,500 does not beat Ann's hidden 2,000: the price rises to 1,550, Bea is outbid.
    second = await desk.bid(ROOM, 11, "bea", "Bea", 1500, False)
    assert (second.outcome, second.price) == ("outbid", 1550)
    # Bea's 2,500 beats it: one increment over Ann's maximum (2,000 + 50).
    third = await desk.bid(ROOM, 11, "bea", "Bea", 2500, False)
    assert (third.outcome, third.price, third.min_bid) == ("leading", 2050, 2100)
    assert await refused(desk.bid(ROOM, 11, "ann", "Ann", 2090, False)) == "bid_too_low"
    assert await refused(desk.bid(ROOM, 11, "bea", "Bea", 2400, False)) == "bid_not_higher"
    raised = await desk.bid(ROOM, 11, "bea", "Bea", 9000, False)
    assert (raised.outcome, raised.price) == ("raised", 2050)
    # Ties go to the earlier maximum.
    tie = await desk.bid(ROOM, 11, "cy", "Cy", 9000, False)
    assert (tie.outcome, tie.price) == ("outbid", 9000)
    view = await desk.view(ROOM, 11)
    assert view is not None
    assert (view["leader"], view["price"], view["bids"]) == ("bea", 9000, 5)
    assert (
        "9000"
        not in orjson.dumps([e["auction"] for e in await events(desk, "auction.bid")][:3]).decode()
    )
    seqs = [e["seq"] for e in await events(desk, "auction.bid")]
    assert seqs == sorted(seqs) and len(seqs) == 5  # refusals announced nothing


async def test_refusals_change_nothing(desk: Auctions, redis: Redis) -> None:
    await desk.start(ROOM, 12, SELLER, terms(buy_now_price=5000))
    assert await refused(desk.bid(ROOM, 12, "ann", "Ann", 999, False)) == "bid_too_low"
    assert await refused(desk.bid(ROOM, 12, SELLER, "Shop", 1000, False)) == "shill_bid"
    await desk.store.mute(ROOM, "mo", True)
    assert await refused(desk.bid(ROOM, 12, "mo", "Mo", 1000, False)) == "muted"
    assert await refused(desk.bid(ROOM, 99, "ann", "Ann", 1000, False)) == "auction_not_found"
    before = await desk.view(ROOM, 12)
    assert before is not None and before["bids"] == 0 and before["leader"] == ""
    await desk.bid(ROOM, 12, "ann", "Ann", 1000, False)
    assert await refused(desk.bid(ROOM, 12, "bea", "Bea", 0, True)) == "buy_now_gone"
    await desk.start(ROOM, 13, SELLER, terms())
    assert await refused(desk.bid(ROOM, 13, "bea", "Bea", 0, True)) == "no_buy_now"


async def test_buy_it_now_closes_the_auction_at_once(desk: Auctions) -> None:
    await desk.start(ROOM, 14, SELLER, terms(buy_now_price=5000))
    bought = await desk.bid(ROOM, 14, "ann", "Ann", 0, True)
    assert (bought.outcome, bought.price) == ("bought", 5000)
    assert await refused(desk.bid(ROOM, 14, "bea", "Bea", 9000, False)) == "auction_closed"
    view = await desk.view(ROOM, 14)
    assert view is not None
    assert (view["state"], view["winner"], view["hammer_price"]) == ("closed", "ann", 5000)


async def test_a_late_bid_moves_the_close_in_a_standard_auction_only(desk: Auctions) -> None:
    # Every bid lands inside a 120 s anti-snipe window of a 10 s auction: each one moves the
    # close to 120 s after itself, by Redis's clock.
    await desk.start(ROOM, 15, SELLER, terms(duration_s=10, snipe_s=120))
    opened = await desk.view(ROOM, 15)
    assert opened is not None
    bid = await desk.bid(ROOM, 15, "ann", "Ann", 1000, False)
    now = await desk.store.server_ms()
    assert opened["ends_ms"] < bid.ends_ms <= now + 120_000
    assert bid.ends_ms >= now + 120_000 - 1_000
    (event,) = await events(desk, "auction.bid")
    assert event["extended"] is True and event["auction"]["ends_ms"] == bid.ends_ms
    await desk.start(ROOM, 16, SELLER, terms(duration_s=10, mode=AuctionMode.SUDDEN_DEATH))
    sudden = await desk.view(ROOM, 16)
    assert sudden is not None
    late = await desk.bid(ROOM, 16, "ann", "Ann", 1000, False)
    assert late.ends_ms == sudden["ends_ms"]


async def test_a_sudden_death_auction_closes_on_time_whatever_arrives_after(
    desk: Auctions,
) -> None:
    await desk.start(ROOM, 17, SELLER, terms(duration_s=10, mode=AuctionMode.SUDDEN_DEATH))
    await desk.bid(ROOM, 17, "ann", "Ann", 1500, False)
    view = await desk.view(ROOM, 17)
    assert view is not None
    ends = view["ends_ms"]
    accepted: list[int] = []
    refused_at: list[int] = []

    async def keep_bidding(user: str) -> None:
        amount = 2000
        while True:
            await asyncio.sleep(0.02)  # pacing, not waiting: the loop ends on a refusal
            try:
                bid = await desk.bid(ROOM, 17, user, user, amount, False)
            except DomainError as err:
                if err.code == "bid_too_low":  # another bidder got there first
                    amount = err.details["min_bid"]
                    continue
                if err.code == "bid_not_higher":  # this bidder leads: raise the maximum
                    amount = err.details["your_max"] + 1000
                    continue
                assert err.code == "auction_closed"
                refused_at.append(await desk.store.server_ms())
                return
            accepted.append(bid.seq)
            amount = bid.min_bid

    await asyncio.gather(*(keep_bidding(f"b{i}") for i in range(5)))
    assert all(at >= ends for at in refused_at)  # nothing was refused before the end
    # The close is refused until Redis's clock passes the end, then fixes the leader.
    await desk.advance(ROOM)
    closed = await desk.view(ROOM, 17)
    assert closed is not None and closed["state"] in ("closed", "awarded", "unsold")
    assert closed["ends_ms"] == ends
    bids = await events(desk, "auction.bid")
    assert len(bids) == 1 + len(accepted)
    assert all(e["ms"] < ends for e in bids)


async def test_a_bid_storm_in_the_last_seconds_keeps_one_order_and_one_winner(
    desk: Auctions,
) -> None:
    """1,000 bidders at once inside the anti-snipe window: each accepted bid moved the close;
    the leader is the highest maximum (the earliest of equals, by the room's log order) and the
    price one increment over the runner-up's maximum, capped by the leader's."""
    await desk.start(ROOM, 18, SELLER, terms(duration_s=10, snipe_s=30))
    amounts = {f"v{i:04d}": 1000 + 37 * ((i * 7919) % 1000) for i in range(1000)}
    gate = asyncio.Semaphore(50)  # the test's connection pool, not the server's limit

    async def bid(user: str, amount: int) -> Any:
        async with gate:
            return await desk.bid(ROOM, 18, user, user, amount, False)

    results = await asyncio.gather(
        *(bid(user, amount) for user, amount in amounts.items()), return_exceptions=True
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    for r in results:
        if isinstance(r, BaseException):
            assert isinstance(r, DomainError) and r.code == "bid_too_low", r
    bids = await events(desk, "auction.bid")
    assert len(bids) == len(accepted) > 0
    seqs = [e["seq"] for e in bids]
    assert seqs == sorted(seqs)
    # Replay the log in its order with the rules: the same leader and the same price.
    order = sorted(accepted, key=lambda b: b.seq)
    by_seq = {e["seq"]: e for e in bids}
    ends = [by_seq[b.seq]["auction"]["ends_ms"] for b in order]
    assert ends == sorted(ends)  # the close only ever moves later
    final = await desk.view(ROOM, 18)
    assert final is not None
    # A maximum below the price plus one increment was refused even if it beat the leader's
    # maximum (as on the big auction sites): only accepted maximums compete.
    taken = {
        user: (amounts[user], r.seq)
        for user, r in zip(amounts, results, strict=True)
        if not isinstance(r, BaseException)
    }
    leader = min(taken, key=lambda u: (-taken[u][0], taken[u][1]))
    assert final["leader"] == leader
    prices = [by_seq[b.seq]["auction"]["price"] for b in order]
    assert prices == sorted(prices) and final["price"] == prices[-1]
    runner_up = max(m for u, (m, _) in taken.items() if u != leader)
    expected = min(taken[leader][0], runner_up + increment_at(DEFAULT_INCREMENTS, runner_up))
    assert final["price"] == expected


def test_terms_are_checked() -> None:
    for bad, field in (
        (terms(start_price=0), "start_price"),
        (terms(duration_s=5), "duration_s"),
        (terms(snipe_s=1), "snipe_s"),
        (terms(reserve_price=10), "reserve_price"),
        (terms(buy_now_price=1000), "buy_now_price"),
        (terms(increments=((5, 10),)), "increments"),
        (terms(increments=((0, 10), (0, 20))), "increments"),
        (terms(increments=((0, 0),)), "increments"),
    ):
        try:
            check_terms(bad)
        except DomainError as err:
            assert err.code == "invalid_auction" and err.details["field"] == field
        else:
            raise AssertionError(f"{bad} accepted")
    assert check_terms(terms(mode=AuctionMode.SUDDEN_DEATH, snipe_s=0))


# -- against a running server: the close, the award, the order at the hammer price ---------


async def _card(http: httpx.AsyncClient, who: dict[str, str], card: str = CARD_OK) -> None:
    body = {"card": card, "shipping": SHIP_TO}
    saved = await http.put("/api/payment-method", headers=who, json=body)
    assert saved.status_code == 200, saved.text


SHIP_TO = {"name": "Ann Lee", "line1": "1 Main St", "city": "Leeds", "postal_code": "LS1 1AA",
           "country": "GB"}  # fmt: skip


async def _sudden_auction(
    http: httpx.AsyncClient, seller: SellerAccount
) -> tuple[int, dict[str, Any]]:
    room, _product, sku = await http_room(http, seller, stock=3, list_price=5000)
    body = {"sku_id": sku, "start_price": 1000, "duration_s": 10, "mode": "sudden_death"}
    made = await http.post(f"/api/rooms/{room}/auctions", headers=seller.headers, json=body)
    assert made.status_code == 201, made.text
    return room, made.json()["auction"]


async def test_the_winner_is_charged_on_file_at_the_hammer_price(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    """Bidding needs a card on file; the win is charged to it at once, so the winner cannot
    walk away: the order is written at the hammer price, shipped to the address on file."""
    room, auction = await _sudden_auction(http, seller)
    aid = auction["auction_id"]
    ann_id, ann = viewer_headers(sessions)
    _bea_id, bea = viewer_headers(sessions)
    _cy_id, cy = viewer_headers(sessions)
    # The lot is sealed: nobody can reserve its unit as if it were a flash deal.
    sealed = await http.post(f"/api/deals/{auction['deal_id']}/reserve", headers=ann, json={})
    assert_error(sealed, 409, "auction_lot")
    carted = await http.put(f"/api/cart/deals/{auction['deal_id']}", headers=ann, json={"qty": 1})
    assert_error(carted, 409, "auction_lot")
    path = f"/api/rooms/{room}/auctions/{aid}/bids"
    assert_error(
        await http.post(path, headers=cy, json={"amount": 9000}), 409, "payment_method_required"
    )
    assert_error(await http.get("/api/payment-method", headers=cy), 404, "no_payment_method")
    assert_error(
        await http.put("/api/payment-method", headers=cy, json={"card": "1111222233334444"}),
        422,
        "invalid_card",
    )
    await _card(http, ann)
    await _card(http, bea)
    on_file = (await http.get("/api/payment-method", headers=ann)).json()["payment_method"]
    assert on_file["last4"] == "4242" and on_file["id"].startswith("pm_")
    assert (await http.post(path, headers=ann, json={"amount": 7000})).status_code == 201
    bea_bid = await http.post(path, headers=bea, json={"amount": 6000})
    assert bea_bid.json()["bid"]["outcome"] == "outbid"  # above the list price: an auction may
    assert (await http.post(path, headers=seller.headers, json={"amount": 9000})).status_code == 401
    low = await http.post(path, headers=bea, json={"amount": 10})
    assert assert_error(low, 409, "bid_too_low")["details"]["min_bid"] == 6200
    assert (await http.get(f"/api/rooms/{room}/auctions/{aid}")).json()["auction"]["card_required"]
    await until(lambda: _state_is(http, room, aid, "sold"), "the win charged on file", 40)
    view = (await http.get(f"/api/rooms/{room}/auctions/{aid}", headers=ann)).json()["auction"]
    assert (view["winner"], view["hammer_price"]) == (ann_id, 6100)
    orders = await poll(lambda: orders_seen_by(http, ann), lambda found: len(found) == 1)
    assert len(orders) == 1 and orders[0]["unit_price"] == 6100
    assert orders[0]["hold_id"] == view["your_hold"]["id"]
    assert orders[0]["shipping"]["postal_code"] == "LS1 1AA"


async def test_a_refused_card_on_file_leaves_the_win_to_be_paid_by_hand(
    server: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    redis: Redis,
    keys: Keyspace,
) -> None:
    room, auction = await _sudden_auction(http, seller)
    aid = auction["auction_id"]
    _ann_id, ann = viewer_headers(sessions)
    await _card(http, ann, CARD_DECLINED)
    path = f"/api/rooms/{room}/auctions/{aid}/bids"
    assert (await http.post(path, headers=ann, json={"amount": 1000})).status_code == 201

    async def won() -> dict[str, Any]:
        found: dict[str, Any] = (
            await http.get(f"/api/rooms/{room}/auctions/{aid}", headers=ann)
        ).json()["auction"]
        return found

    view = await poll(won, lambda v: "your_hold" in v, within_s=40)
    hold = view["your_hold"]["id"]
    # The charge on file is tried once and refused: the hold waits for the winner.
    sandbox = SandboxProvider(redis, keys.sandbox)

    async def refused_on_file() -> bool:
        return any(c.key == f"{hold}:auction-{aid}-1" for c in await charges_for(sandbox, hold))

    await until(refused_on_file, "the charge on file tried", 30)
    paid = await _pay_by_hand(http, hold, ann)
    assert paid.status_code == 201, paid.text
    assert paid.json()["order"]["amount"] == 1000
    tried = await charges_for(sandbox, hold)
    assert sorted(c.status for c in tried) == ["approved", "card_declined"]  # on file, by hand
    assert any(c.key == f"{hold}:auction-{aid}-1" for c in tried)
    await until(lambda: _state_is(http, room, aid, "sold"), "the sweep marks the auction sold", 30)


async def test_a_lot_its_winner_lets_go_is_charged_to_the_first_in_its_line(
    server: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    redis: Redis,
    keys: Keyspace,
) -> None:
    """Over HTTP: the line opens at the close and takes cards on file as bidding does; the
    winner's card is refused and they let the hold go, so the first in line is offered the lot
    at the closing price and charged on file: their order."""
    room, auction = await _sudden_auction(http, seller)
    aid = auction["auction_id"]
    _ann_id, ann = viewer_headers(sessions)
    cy_id, cy = viewer_headers(sessions)
    _dee_id, dee = viewer_headers(sessions)
    await _card(http, ann, CARD_DECLINED)
    await _card(http, cy)
    line = f"/api/rooms/{room}/auctions/{aid}/waitlist"
    assert_error(await http.post(line, headers=cy, json={}), 409, "not_sold_out")
    bids = f"/api/rooms/{room}/auctions/{aid}/bids"
    assert (await http.post(bids, headers=ann, json={"amount": 3000})).status_code == 201

    async def seen_by(who: dict[str, str]) -> dict[str, Any]:
        found: dict[str, Any] = (
            await http.get(f"/api/rooms/{room}/auctions/{aid}", headers=who)
        ).json()["auction"]
        return found

    hold = (await poll(lambda: seen_by(ann), lambda v: "your_hold" in v, within_s=40))["your_hold"]
    sandbox = SandboxProvider(redis, keys.sandbox)

    async def refused_on_file() -> bool:
        return any(c.status == "card_declined" for c in await charges_for(sandbox, hold["id"]))

    await until(refused_on_file, "the winner's charge on file refused", 30)
    assert_error(await http.post(line, headers=dee, json={}), 409, "payment_method_required")
    assert_error(await http.post(line, headers=ann, json={}), 409, "unpaid_win")
    joined = await http.post(line, headers=cy, json={"name": "Cy"})
    assert joined.status_code == 200, joined.text
    assert joined.json()["waitlist"] == {"place": 1, "waiting": 1}
    assert (await seen_by(cy))["place"] == 1
    released = await http.delete(f"/api/holds/{hold['id']}", headers=ann)
    assert released.status_code in (200, 204), released.text
    await until(lambda: _state_is(http, room, aid, "sold"), "the line's first charged on file", 40)
    view = await seen_by(cy)
    # The name shown is Cy's alias for the room, not the one the request sent.
    alias = sessions.alias(room, cy_id)
    assert (view["winner"], view["winner_name"], view["hammer_price"]) == (cy_id, alias, 1000)
    orders = await poll(lambda: orders_seen_by(http, cy), lambda found: len(found) == 1)
    assert orders[0]["unit_price"] == 1000 and orders[0]["hold_id"] == view["your_hold"]["id"]
    left = await http.delete(line, headers=cy)
    assert left.status_code == 204


async def _pay_by_hand(http: httpx.AsyncClient, hold: str, who: dict[str, str]) -> httpx.Response:
    """Pay with a good card, once the refused charge on file has let the hold go (while it
    is under way the hold answers payment_in_progress)."""
    for n in range(100):
        paid = await checkout(http, hold, who, card=CARD_OK, key=f"by-hand-{n}")
        if paid.status_code != 409 or paid.json()["error"]["code"] != "payment_in_progress":
            return paid
        await asyncio.sleep(0.1)
    raise AssertionError("the charge on file never let the hold go")


async def _state_is(http: httpx.AsyncClient, room: int, aid: int, state: str) -> bool:
    r = await http.get(f"/api/rooms/{room}/auctions/{aid}")
    return bool(r.json()["auction"]["state"] == state)


async def test_bids_over_websockets_reach_every_viewer_in_one_order(
    storm_server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    """100 viewers on real websockets bid against each other in a sudden-death auction until
    the close refuses them: every viewer sees the same bids in the same order, the same close,
    winner and hammer price; no bid was accepted at or after the close by the server's clock;
    the winner alone is told they won."""
    room, _product, sku = await http_room(http, seller, stock=3, list_price=5000)
    body = {"sku_id": sku, "start_price": 1000, "duration_s": 10, "mode": "sudden_death"}
    made = await http.post(f"/api/rooms/{room}/auctions", headers=seller.headers, json=body)
    assert made.status_code == 201, made.text
    aid = made.json()["auction"]["auction_id"]
    ends = made.json()["auction"]["ends_ms"]
    viewers = []
    for i in range(100):
        user, token = sessions.issue()
        await _card(http, {"Authorization": f"Bearer {token}"})
        v = await WsViewer.open(storm_server.base_url, room)
        await v.hello(token, name=f"Bidder {i}")
        snap = await v.next("snapshot")
        assert [a["auction_id"] for a in snap["auctions"]] == [aid]
        viewers.append((user, v))
    creator = await WsViewer.open(storm_server.base_url, room)
    await creator.hello(seller.token)
    await creator.send(type="bid", auction_id=aid, amount=99_000, ref="shill")
    assert (await creator.answer("shill"))["code"] == "shill_bid"

    async def bid_until_closed(v: WsViewer, n: int) -> int:
        amount, sent = 1000, 0
        while True:
            ref = f"b{n}-{sent}"
            sent += 1
            await v.send(type="bid", auction_id=aid, amount=amount, ref=ref)
            answer = await v.answer(ref, within=30)
            if answer["type"] == "bid.accepted":
                amount = answer["bid"]["min_bid"] + 50 * (n % 3)
            elif answer["code"] in ("bid_too_low", "bid_not_higher"):
                amount = max(answer["details"].get("min_bid", 0), amount + 50)
            else:
                assert answer["code"] == "auction_closed", answer
                return sent
            await asyncio.sleep(0.2)  # pacing: ~500 bids a second from the crowd, not a wait

    await asyncio.gather(*(bid_until_closed(v, n) for n, (_, v) in enumerate(viewers)))
    closed = [await v.next("auction.closed", within=40) for _, v in viewers]
    assert (
        len({(c["seq"], c["auction"]["winner"], c["auction"]["hammer_price"]) for c in closed}) == 1
    )
    final = closed[0]["auction"]
    assert final["ends_ms"] == ends  # sudden death: the close never moved
    streams = [[(e["seq"], e["auction"]["price"]) for e in v.of("auction.bid")] for _, v in viewers]
    assert all(s == streams[0] for s in streams) and len(streams[0]) > 1
    assert all(e["ms"] < ends for e in viewers[0][1].of("auction.bid"))
    assert [p for _, p in streams[0]] == sorted(p for _, p in streams[0])
    assert final["hammer_price"] == streams[0][-1][1]
    winner = next(v for user, v in viewers if user == final["winner"])
    won = await winner.next("auction.won", within=30)
    assert won["price"] == final["hammer_price"] and won["hold"]["qty"] == 1
    assert all(not v.of("auction.won") for user, v in viewers if user != final["winner"])
    assert any(v.of("auction.outbid") for _, v in viewers)
    for _, v in viewers:
        await v.close()
    await creator.close()


async def test_ending_the_room_closes_its_auction_and_giveaway_and_follows_them(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    """The creator ends the live mid-auction: the leader wins at once, the giveaway is drawn
    at once, bids are refused from then on, and the room sweep still follows the winner's
    payment to the sale although the room is over."""
    room, _product, sku = await http_room(http, seller, stock=3)
    h = seller.headers
    body = {"sku_id": sku, "start_price": 1000, "duration_s": 600}
    aid = (await http.post(f"/api/rooms/{room}/auctions", headers=h, json=body)).json()["auction"][
        "auction_id"
    ]
    gid = (
        await http.post(
            f"/api/rooms/{room}/giveaways", headers=h, json={"sku_id": sku, "duration_s": 600}
        )
    ).json()["giveaway"]["giveaway_id"]
    ann_id, ann = viewer_headers(sessions)
    bea_id, bea = viewer_headers(sessions)
    await _card(http, ann, CARD_DECLINED)  # charged on file, refused: Ann pays by hand
    await _card(http, bea)
    bid = await http.post(
        f"/api/rooms/{room}/auctions/{aid}/bids", headers=ann, json={"amount": 1200}
    )
    assert bid.status_code == 201, bid.text
    entered = await http.post(f"/api/rooms/{room}/giveaways/{gid}/entries", headers=bea)
    assert entered.status_code == 200, entered.text
    assert (await http.post(f"/api/rooms/{room}/end", headers=h)).status_code == 200
    won = (await http.get(f"/api/rooms/{room}/auctions/{aid}", headers=ann)).json()["auction"]
    assert (won["state"], won["winner"], won["hammer_price"]) == ("awarded", ann_id, 1000)
    drawn = (await http.get(f"/api/rooms/{room}/giveaways/{gid}")).json()["giveaway"]
    assert (drawn["state"], drawn["winner"]) == ("drawn", bea_id)
    late = await http.post(
        f"/api/rooms/{room}/auctions/{aid}/bids", headers=bea, json={"amount": 5000}
    )
    assert_error(late, 409, "auction_closed")
    paid = await _pay_by_hand(http, won["your_hold"]["id"], ann)
    assert paid.status_code == 201, paid.text
    await until(lambda: _state_is(http, room, aid, "sold"), "the sweep follows the ended room", 30)


# -- every step after the close, with a crash before the next -----------------------------


async def _lot(desk: Auctions, lot_id: int) -> None:
    """A sealed lot of one (what Auctions.open makes in SQL and loads), loaded directly."""
    now = await desk.store.server_ms()
    deal = Deal(
        id=lot_id, shop_id=1, sku_id=1, deal_price=1000, currency="USD", quantity=1,
        per_buyer_limit=1, starts_ms=now, ends_ms=now + 3_600_000, created_ms=now, kind="lot",
    )  # fmt: skip
    await desk.holds.load_deal(deal, hold_ttl_ms=60_000, pay_ttl_ms=30_000)


async def _state(desk: Auctions, aid: int) -> str:
    found = await desk.view(ROOM, aid)
    assert found is not None
    return str(found["state"])


async def test_each_step_after_the_close_is_finished_after_a_crash_before_the_next(
    desk: Auctions,
) -> None:
    """The close (room slot), the award (the lot's slot), the award recorded, the sale, the
    lot stopped and the auction forgotten are separate calls: a process that dies between any
    two leaves the next pass (any node's) to finish, and nothing happens twice. Each "crash"
    here is the steps before it made by hand and the rest left to ``advance``."""
    aid = 41
    await _lot(desk, aid)
    await desk.start(ROOM, aid, SELLER, terms())
    await desk.bid(ROOM, aid, "ann", "Ann", 1500, False)
    await desk.bid(ROOM, aid, "bea", "Bea", 1200, False)  # outbid at once: the price is 1,250
    await desk._call("lc_auction_close_now", ROOM, aid)
    # Crash after the close, before the award: the close is all that was done.
    closed = await desk._call("lc_auction_close", ROOM, aid)
    assert closed == ["closed", "ann", "1250", 1]
    # Crash after the award, before it was recorded: the lot's hold exists, the room's record
    # does not say so. The next pass awards again and gets the same hold.
    first = await desk.holds.award(aid, "ann", 1250, f"auction-{aid}-1", 60_000)
    assert first is not None
    await desk.advance(ROOM)
    view = await desk.view(ROOM, aid, "ann")
    assert view is not None and view["state"] == "awarded"
    assert view["your_hold"]["id"] == first.id
    lot = await desk.holds.snapshot(aid)
    assert lot is not None and (lot.available, lot.held, lot.deal_price) == (0, 1, 1250)
    # Ann lets it go: the next pass offers it to Bea at her own maximum, the one after
    # holds it for her.
    await desk.holds.release(first.id, "ann")
    await desk.advance(ROOM)
    assert await _state(desk, aid) == "closed"
    await desk.advance(ROOM)
    offered = await desk.view(ROOM, aid, "bea")
    assert offered is not None and offered["state"] == "awarded" and offered["round"] == 2
    second = offered["your_hold"]["id"]
    terms_ = await desk.holds.begin_payment(second, "bea", "try-1")
    assert terms_.unit_price == 1200
    # Crash after the sale was committed, before the auction heard of it.
    await desk.holds.commit(second, "bea", "ch_test", "try-1", "")
    await desk.advance(ROOM)
    assert await _state(desk, aid) == "sold"
    assert await desk.active(ROOM) == [aid]  # the lot is not stopped yet
    # Crash after the lot was stopped, before the auction was forgotten.
    await desk.holds.stop_deal(aid)
    await desk.advance(ROOM)
    assert await desk.active(ROOM) == []
    lot = await desk.holds.snapshot(aid)
    assert lot is not None and (lot.sold, lot.available, lot.held, lot.stopped) == (1, 0, 0, True)


async def test_an_auction_without_bids_gives_its_lot_back(desk: Auctions) -> None:
    aid = 42
    await _lot(desk, aid)
    await desk.start(ROOM, aid, SELLER, terms())
    await desk.close_all(ROOM)  # as the room's end does: closes, and moves on
    assert await _state(desk, aid) == "unsold"
    await desk.advance(ROOM)
    assert await desk.active(ROOM) == []
    lot = await desk.holds.snapshot(aid)
    assert lot is not None and (lot.sold, lot.available, lot.stopped) == (0, 1, True)
    unsold = [e for e in await events(desk, "auction.closed") if e["auction"]["auction_id"] == aid]
    assert [e["reason"] for e in unsold] == ["no_bids"]


# -- after nobody paid: the lot's waitlist, then up again ----------------------------------


async def _close(desk: Auctions, aid: int) -> None:
    """The close, now, and the sweep's passes until the auction rests (awarded, open again,
    sold or unsold)."""
    await desk._call("lc_auction_close_now", ROOM, aid)
    await _settle(desk, aid)


async def _settle(desk: Auctions, aid: int) -> None:
    for _ in range(3):
        await desk.advance(ROOM)


async def _hold_of(desk: Auctions, aid: int, user: str) -> str:
    found = await desk.view(ROOM, aid, user)
    assert found is not None and found["winner"] == user, found
    return str(found["your_hold"]["id"])


async def test_an_unsold_lot_goes_up_again_while_it_has_relists(desk: Auctions) -> None:
    aid = 43
    await _lot(desk, aid)
    await desk.start(ROOM, aid, SELLER, terms(relists=1))
    await _close(desk, aid)  # no bids: up again, a new window
    again = await desk.view(ROOM, aid)
    assert again is not None
    assert (again["state"], again["relisted"], again["relists_left"]) == ("open", 1, 0)
    assert again["ends_ms"] > await desk.store.server_ms() + 500_000
    relisted = await events(desk, "auction.relisted")
    assert [(e["auction"]["auction_id"], e["reason"]) for e in relisted] == [(aid, "no_bids")]
    await desk.bid(ROOM, aid, "ann", "Ann", 1200, False)
    await _close(desk, aid)
    await desk.holds.release(await _hold_of(desk, aid, "ann"), "ann")
    await _settle(desk, aid)  # nobody else bid, nobody waits, no relist left: unsold
    assert await _state(desk, aid) == "unsold"
    closed = [e for e in await events(desk, "auction.closed") if e.get("reason")]
    assert [e["reason"] for e in closed] == ["unpaid"]
    lot = await desk.holds.snapshot(aid)
    assert lot is not None and (lot.sold, lot.available, lot.stopped) == (0, 1, True)


async def test_a_lot_nobody_paid_for_goes_down_its_waitlist_in_order_then_up_again(
    desk: Auctions,
) -> None:
    aid = 44
    await _lot(desk, aid)
    await desk.start(ROOM, aid, SELLER, terms(relists=1))
    assert await refused(desk.wait(ROOM, aid, "cy", "Cy")) == "not_sold_out"
    await desk.bid(ROOM, aid, "ann", "Ann", 2000, False)
    await desk.bid(ROOM, aid, "bea", "Bea", 1500, False)  # outbid: the price is 1,550
    await _close(desk, aid)
    assert await _state(desk, aid) == "awarded"
    # In line for the lot: not its winner, not the shop, not a muted viewer.
    assert await refused(desk.wait(ROOM, aid, "ann", "Ann")) == "unpaid_win"
    assert await refused(desk.wait(ROOM, aid, SELLER, "Shop")) == "shill_bid"
    await desk.store.mute(ROOM, "mo", True)
    assert await refused(desk.wait(ROOM, aid, "mo", "Mo")) == "muted"
    assert await desk.wait(ROOM, aid, "cy", "Cy") == {"place": 1, "waiting": 1}
    assert await desk.wait(ROOM, aid, "dee", "Dee") == {"place": 2, "waiting": 2}
    assert await desk.wait(ROOM, aid, "cy", "Cy") == {"place": 1, "waiting": 2}  # kept
    seen = await desk.view(ROOM, aid, "dee")
    assert seen is not None and (seen["place"], seen["waiting"]) == (2, 2)

    # Ann lets it lapse: Bea, the runner-up, at her own maximum; then the line in order, at
    # the hammer price; each a hold of the lot's one unit.
    offers = [("bea", 1500), ("cy", 1550), ("dee", 1550)]
    last = "ann"
    for user, price in offers:
        await desk.holds.release(await _hold_of(desk, aid, last), last)
        await _settle(desk, aid)
        assert await _state(desk, aid) == "awarded"
        hold = await _hold_of(desk, aid, user)
        lot = await desk.holds.snapshot(aid)
        assert lot is not None and (lot.available, lot.held, lot.deal_price) == (0, 1, price)
        await desk.holds.get_hold(hold, user)
        last = user
    offered = await events(desk, "auction.offered")
    assert [(e["auction"]["winner"], e.get("waitlist", False)) for e in offered] == [
        ("bea", False),
        ("cy", True),
        ("dee", True),
    ]
    # Dee lets it lapse too: nobody is left, so it goes up again; who let it lapse may not bid.
    await desk.holds.release(await _hold_of(desk, aid, "dee"), "dee")
    await _settle(desk, aid)
    again = await desk.view(ROOM, aid)
    assert again is not None
    assert (again["state"], again["bids"], again["waiting"], again["relisted"]) == ("open", 0, 0, 1)
    for user in ("ann", "bea", "cy", "dee"):
        assert await refused(desk.bid(ROOM, aid, user, user, 5000, False)) == "unpaid_win"
    assert (await desk.bid(ROOM, aid, "eve", "Eve", 1000, False)).outcome == "leading"
    relisted = await events(desk, "auction.relisted")
    assert [e["reason"] for e in relisted] == ["unpaid"]


async def test_leaving_the_lot_waitlist_passes_you_over(desk: Auctions) -> None:
    aid = 45
    await _lot(desk, aid)
    await desk.start(ROOM, aid, SELLER, terms(second_chance=False))
    await desk.bid(ROOM, aid, "ann", "Ann", 2000, False)
    await desk.bid(ROOM, aid, "bea", "Bea", 1500, False)  # outbid
    await _close(desk, aid)
    await desk.wait(ROOM, aid, "cy", "Cy")
    await desk.wait(ROOM, aid, "dee", "Dee")
    assert await desk.unwait(ROOM, aid, "cy") is True
    assert await desk.unwait(ROOM, aid, "cy") is False
    await desk.holds.release(await _hold_of(desk, aid, "ann"), "ann")
    await _settle(desk, aid)
    # No second chance for Bea; Cy left the line: Dee is offered it.
    await _hold_of(desk, aid, "dee")


async def test_a_banned_viewer_is_refused_banned_and_a_lifted_ban_lets_them_bid(
    desk: Auctions,
) -> None:
    await desk.start(ROOM, 46, SELLER, terms())
    await desk.store.ban(ROOM, "bo", True)
    assert await refused(desk.bid(ROOM, 46, "bo", "Bo", 1000, False)) == "banned"
    await desk.store.mute(ROOM, "mo", True)
    assert await refused(desk.bid(ROOM, 46, "mo", "Mo", 1000, False)) == "muted"
    view = await desk.view(ROOM, 46)
    assert view is not None and view["bids"] == 0
    await desk.store.ban(ROOM, "bo", False)
    assert (await desk.bid(ROOM, 46, "bo", "Bo", 1000, False)).outcome == "leading"
