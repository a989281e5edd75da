"""Per-client-address limits (decision 0019), against real Valkey/Redis and a real server:
token buckets for sessions, reservations and chat, the cap on units one address holds in a deal,
which address a request counts against (trusted proxies only), and the farming attack of issue
14: one address minting sessions and reserving as fast as it can, and a real buyer elsewhere.

Every client here is on the loopback; a client "from another address" binds its socket to
another loopback address (127.0.0.x), which the server sees as a different peer."""

from __future__ import annotations

import asyncio
import math
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from checkout.holds import HoldStore, ReserveRequest
from checkout.keys import Keyspace
from checkout.limits import Rate, RateLimiter, ReserveLimits, client_address
from kernel.db import Database
from kernel.errors import Throttled
from tests.conftest import SellerAccount, start_server
from tests.harness import Server, stop_server
from tests.helpers import http_live_deal, http_room, make_live_deal, outcome, until
from tests.wsclient import WsViewer
from web.auth import GuestSessions
from web.settings import Settings

pytestmark = pytest.mark.storage

CARD = "4242424242424242"
SESSION_BURST = 5
RESERVE_BURST = 40
HOLD_CAP = 5
SIGN_IN_BURST = 6
ACCOUNT_SIGN_IN_BURST = 3
LIMITED_ENV = {
    # 127.0.0.1 (this test's own client) and 10/8 are proxies; 127.0.0.2 and up are clients.
    "LIVECART_TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8",
    "LIVECART_SESSION_RATE": "0.05",  # one new session every 20 s after the burst
    "LIVECART_SESSION_BURST": str(SESSION_BURST),
    "LIVECART_RESERVE_RATE": "0.5",
    "LIVECART_RESERVE_BURST": str(RESERVE_BURST),
    "LIVECART_ADDRESS_HOLD_CAP": str(HOLD_CAP),
    "LIVECART_CHAT_RATE": "0.05",
    "LIVECART_CHAT_BURST": "2",
    "LIVECART_SIGN_IN_RATE": "0.05",
    "LIVECART_SIGN_IN_BURST": str(SIGN_IN_BURST),
    "LIVECART_ACCOUNT_SIGN_IN_RATE": "0.05",
    "LIVECART_ACCOUNT_SIGN_IN_BURST": str(ACCOUNT_SIGN_IN_BURST),
}


@pytest.fixture(scope="module")
def limited(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(
        redis_url, database_url, tmp_path_factory.mktemp("limited") / "server.log", **LIMITED_ENV
    )
    yield running
    stop_server(running)


def client_from(server: Server, address: str) -> httpx.AsyncClient:
    """A client whose connections come from ``address`` (a loopback address)."""
    # Idle connections are dropped well before the server's keep-alive timeout (5 s), so a
    # request never goes out on a connection the server is closing.
    limits = httpx.Limits(max_connections=100, keepalive_expiry=1)
    transport = httpx.AsyncHTTPTransport(local_address=address, limits=limits)
    return httpx.AsyncClient(base_url=server.base_url, transport=transport, timeout=60)


@pytest.fixture
async def proxy(limited: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A client on 127.0.0.1, which the limited server trusts as a proxy."""
    async with client_from(limited, "127.0.0.1") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- which address ---------------------------------------------------------------------------


def test_addresses_are_bucketed_ipv4_as_is_ipv6_by_its_64() -> None:
    assert client_address("203.0.113.7") == "203.0.113.7"
    assert client_address("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_address("2001:db8::1") == client_address("2001:db8:0:0:ffff::2")
    assert client_address("2001:db8::1") == "2001:db8::/64"
    assert client_address("2001:db8:0:1::1") != client_address("2001:db8::1")
    assert client_address(None) == client_address("") == ""
    odd = client_address("unknown host\n")
    assert odd.startswith("x-") and " " not in odd and "\n" not in odd


def test_settings_default_on_and_each_can_be_turned_off() -> None:
    default = Settings.from_env({})
    assert default.trusted_proxies == ("127.0.0.1", "::1")
    assert min(default.session_rate_per_s, default.reserve_rate_per_s, default.chat_rate_per_s)
    assert min(default.session_burst, default.reserve_burst, default.chat_burst) > 0
    assert default.address_hold_cap > 0
    off = Settings.from_env(
        {
            "LIVECART_TRUSTED_PROXIES": "none",
            "LIVECART_SESSION_RATE": "0",
            "LIVECART_RESERVE_BURST": "0",
            "LIVECART_CHAT_RATE": "0",
            "LIVECART_ADDRESS_HOLD_CAP": "0",
        }
    )
    assert off.trusted_proxies == ()
    assert not Rate(off.session_rate_per_s, off.session_burst).on
    assert not Rate(off.reserve_rate_per_s, off.reserve_burst).on
    assert not Rate(off.chat_rate_per_s, off.chat_burst).on
    assert off.address_hold_cap == 0
    proxies = Settings.from_env({"LIVECART_TRUSTED_PROXIES": "10.1.2.3/8, 2001:db8::1"})
    assert proxies.trusted_proxies == ("10.0.0.0/8", "2001:db8::1")
    for name, value in [
        ("LIVECART_TRUSTED_PROXIES", "*"),
        ("LIVECART_TRUSTED_PROXIES", "proxy.internal"),
        ("LIVECART_SESSION_RATE", "-1"),
        ("LIVECART_ADDRESS_HOLD_CAP", "-2"),
    ]:
        with pytest.raises(SystemExit, match=name):
            Settings.from_env({name: value})


# -- the buckets -----------------------------------------------------------------------------


@pytest.fixture
async def limiter(redis: Redis, keys: Keyspace) -> RateLimiter:
    found = RateLimiter(redis, keys.prefix)
    await found.install()
    return found


async def admitted(limiter: RateLimiter, name: str, address: str, rate: Rate) -> int | None:
    """None if a token was taken, else the wait it was refused with (ms)."""
    try:
        await limiter.take(name, address, rate, "tests")
    except Throttled as err:
        wait: int = err.details["retry_after_ms"]
        assert err.details["retry_after_s"] == max(1, math.ceil(wait / 1000))
        return wait
    return None


async def test_a_bucket_gives_its_burst_refills_and_vanishes_when_idle(
    limiter: RateLimiter, redis: Redis
) -> None:
    name, address, rate = f"t{secrets.token_hex(4)}", "192.0.2.1", Rate(per_s=10, burst=3)
    assert [await admitted(limiter, name, address, rate) for _ in range(3)] == [None] * 3
    waits = [await admitted(limiter, name, address, rate) for _ in range(50)]
    wait = next(w for w in waits if w is not None)  # refused once the burst is spent
    assert 0 < wait <= 100  # one token every 100 ms
    assert await admitted(limiter, name, "192.0.2.2", rate) is None  # another address's bucket
    assert await admitted(limiter, name, "", rate) is None  # no address: not limited
    assert await admitted(limiter, name, address, Rate(0, 3)) is None  # off
    await until(lambda: _admitted_now(limiter, name, address, rate), "the bucket refills", 5)
    # Full again (and so forgotten) within burst x interval: the key has a TTL that short.
    key = limiter.key(name, address)
    assert await redis.pttl(key) <= 300
    await until(lambda: _gone(redis, key), "the idle bucket expires", 5)


async def _admitted_now(limiter: RateLimiter, name: str, address: str, rate: Rate) -> bool:
    return await admitted(limiter, name, address, rate) is None


async def _gone(redis: Redis, key: str) -> bool:
    return not await redis.exists(key)


async def test_retry_after_is_the_wait_for_one_token_rounded_up(limiter: RateLimiter) -> None:
    name, address, rate = f"t{secrets.token_hex(4)}", "192.0.2.3", Rate(per_s=0.1, burst=1)
    assert await admitted(limiter, name, address, rate) is None
    with pytest.raises(Throttled) as refused:
        await limiter.take(name, address, rate, "tests")
    details = refused.value.details
    assert 9000 < details["retry_after_ms"] <= 10_000  # one token per 10 s, just spent
    assert details["retry_after_s"] == 10
    assert refused.value.code == "rate_limited"
    # A refused request takes no token: asking again does not push the wait further out.
    again = await admitted(limiter, name, address, rate)
    assert again is not None and again <= details["retry_after_ms"]


# -- per deal, inside the reservation --------------------------------------------------------


@pytest.fixture
async def limited_holds(redis: Redis, private_keys: Keyspace) -> HoldStore:
    # One reserve token every 10 s after a burst of 3: no refill during a test.
    limits = ReserveLimits(Rate(per_s=0.1, burst=3), address_cap=2)
    store = HoldStore(redis, private_keys, limits)
    await store.install()
    return store


async def test_reserve_bucket_is_per_address_and_per_deal(
    db: Database, limited_holds: HoldStore, seller: SellerAccount, redis: Redis
) -> None:
    deal = await make_live_deal(db, limited_holds, seller, quantity=50, limit=1)
    other = await make_live_deal(db, limited_holds, seller, quantity=50, limit=1)
    assert deal.id is not None and other.id is not None
    tries = [
        ReserveRequest(secrets.token_hex(8), 1, "", "198.51.100.1") for _ in range(4)
    ]  # a burst of 3, and the cap of 2 refuses the third
    got = [await outcome(limited_holds.reserve(deal.id, r)) for r in tries]
    assert [g if isinstance(g, str) else "ok" for g in got] == [
        "ok",
        "ok",
        "address_hold_limit",
        "rate_limited",
    ]
    with pytest.raises(Throttled) as refused:
        await limited_holds.reserve(deal.id, tries[0])  # even a replay spends a token
    assert 0 < refused.value.details["retry_after_ms"] <= 10_000
    # Another deal, another address, or no address (a caller inside livecart): not refused.
    fresh = ReserveRequest(secrets.token_hex(8), 1, "", "198.51.100.1")
    assert not isinstance(await outcome(limited_holds.reserve(other.id, fresh)), str)
    elsewhere = ReserveRequest(secrets.token_hex(8), 1, "", "198.51.100.2")
    assert not isinstance(await outcome(limited_holds.reserve(deal.id, elsewhere)), str)
    for _ in range(5):
        inside = ReserveRequest(secrets.token_hex(8), 1)
        assert not isinstance(await outcome(limited_holds.reserve(deal.id, inside)), str)
    rates = limited_holds.keys.deal(deal.id).rates
    assert 0 < await redis.pttl(rates) <= 30_000  # gone once every bucket in it is full


async def test_one_batch_from_one_address_is_limited_line_by_line(
    db: Database, limited_holds: HoldStore, seller: SellerAccount, redis: Redis
) -> None:
    """The per-address state is read once per batch and written back at its end: what the
    batch did must be what a line-by-line reading would have done, and what is stored."""
    deal = await make_live_deal(db, limited_holds, seller, quantity=50, limit=1)
    assert deal.id is not None
    address = "198.51.100.77"
    batch = [ReserveRequest(secrets.token_hex(8), 1, "", address) for _ in range(10)]
    got = await limited_holds.reserve_many(deal.id, batch)
    codes = [g.code if isinstance(g, Exception) else "ok" for g in got]
    assert codes == ["ok", "ok", "address_hold_limit"] + ["rate_limited"] * 7
    keys = limited_holds.keys.deal(deal.id)
    assert await redis.hget(keys.addresses, address) == "2"
    held = [g.id for g in got if not isinstance(g, Exception)]
    assert await redis.hmget(keys.hold_addresses, held) == [address, address]
    # The next batch sees the stored state: no token left, the cap reached.
    (again,) = await limited_holds.reserve_many(deal.id, batch[:1])
    assert isinstance(again, Throttled)


async def test_the_address_cap_counts_live_holds_only(
    db: Database, limited_holds: HoldStore, seller: SellerAccount, redis: Redis
) -> None:
    """Closed holds give their units back to the address's cap: released, expired, stopped,
    and sold (sold units count against the per-buyer limit instead)."""
    store = HoldStore(redis, limited_holds.keys, ReserveLimits(address_cap=2))
    deal = await make_live_deal(db, store, seller, quantity=50, limit=5, hold_ttl_ms=1500)
    assert deal.id is not None
    deal_id, address, buyer = deal.id, "198.51.100.9", secrets.token_hex(8)
    keys = store.keys.deal(deal_id)

    async def reserve(qty: int = 1) -> str:
        """The hold's id, or the error's code."""
        got = await outcome(store.reserve(deal_id, ReserveRequest(buyer, qty, "", address)))
        return got if isinstance(got, str) else got.id

    async def held_units() -> int:
        return int(await redis.hget(keys.addresses, address) or 0)

    async def two_more() -> bool:
        return "-" in await reserve(2)

    first, second = await reserve(), await reserve()
    assert await reserve() == "address_hold_limit"
    assert await held_units() == 2
    await store.release(first, buyer)
    third = await reserve()
    assert await reserve() == "address_hold_limit"
    await store.begin_payment(second, buyer, "pay-1")
    assert await reserve() == "address_hold_limit"  # paying still counts
    await store.commit(second, buyer, "ref-1", "pay-1")
    assert await held_units() == 1 and third.startswith(f"{deal_id}-")
    assert (await reserve()).startswith(f"{deal_id}-")
    # Both live holds lapse (1.5 s holds): the cap is free again, without a sweeper.
    await until(two_more, "lapsed holds free the cap", 10)
    assert await held_units() == 2
    await store.stop_deal(deal_id)
    assert await held_units() == 0
    assert not await redis.hlen(keys.hold_addresses)
    state = await store.snapshot(deal_id)
    assert state is not None and state.available + state.held + state.sold == state.quantity


# -- over HTTP: sessions, and which address counts -------------------------------------------


async def test_session_minting_is_limited_with_retry_after(limited: Server) -> None:
    async with client_from(limited, "127.0.0.6") as client:
        made = [await client.post("/api/session") for _ in range(SESSION_BURST)]
        assert [r.status_code for r in made] == [201] * SESSION_BURST
        refused = await client.post("/api/session")
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and "try again" in error["message"]
    wait_ms = error["details"]["retry_after_ms"]
    assert 0 < wait_ms <= 20_000  # one session every 20 s
    assert refused.headers["Retry-After"] == str(max(1, math.ceil(wait_ms / 1000)))


async def mint(client: httpx.AsyncClient, forwarded_for: str | None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return (await client.post("/api/session", headers=headers)).status_code


async def mint_burst(client: httpx.AsyncClient, forwarded_for: str) -> None:
    statuses = [await mint(client, forwarded_for) for _ in range(SESSION_BURST)]
    assert statuses == [201] * SESSION_BURST


async def test_forwarded_for_counts_only_from_a_trusted_proxy(
    limited: Server, proxy: httpx.AsyncClient
) -> None:
    # From a trusted proxy: the address it names is the client's, each with its own bucket.
    await mint_burst(proxy, "203.0.113.10")
    assert await mint(proxy, "203.0.113.10") == 429
    assert await mint(proxy, "203.0.113.11") == 201
    # The right-most address that is not a trusted proxy: what the client wrote to the left
    # of it is not believed; a trusted proxy (10/8) on the right is skipped.
    assert await mint(proxy, "198.51.100.1, 203.0.113.10") == 429
    assert await mint(proxy, "203.0.113.10, 10.0.0.7") == 429
    assert await mint(proxy, "198.51.100.1, 203.0.113.12, 10.0.0.7") == 201
    # IPv6 clients count by their /64.
    await mint_burst(proxy, "2001:db8::1")
    assert await mint(proxy, "2001:db8::2") == 429
    assert await mint(proxy, "2001:db8:0:1::1") == 201
    # From a peer that is no proxy (127.0.0.7), X-Forwarded-For is ignored: one bucket.
    async with client_from(limited, "127.0.0.7") as direct:
        for n in range(SESSION_BURST):
            assert await mint(direct, f"192.0.2.{n + 1}") == 201
        assert await mint(direct, "192.0.2.99") == 429
        assert await mint(direct, None) == 429


# -- guessing passwords (decision 0041) --------------------------------------------------------


async def test_guessing_an_accounts_password_is_throttled_per_email_and_per_address(
    limited: Server,
) -> None:
    """Wrong passwords for one e-mail from two addresses: the e-mail's bucket runs dry whoever
    asks (a right password then waits too: the attacker cannot tell). One address trying many
    e-mails: its own bucket runs dry. Nothing refused changes anything."""
    target = f"target-{secrets.token_hex(4)}@example.com"
    password = "violet-kettle-orbit-42"
    async with client_from(limited, "127.0.0.8") as owner:
        made = await owner.post(
            "/api/accounts", json={"email": target, "password": password, "display_name": "T"}
        )
        assert made.status_code == 201, made.text

    def attempt(email: str, guess: str) -> dict[str, str]:
        return {"email": email, "password": guess}

    async with client_from(limited, "127.0.0.9") as one, client_from(limited, "127.0.0.10") as two:
        tries = [
            await client.post("/api/accounts/sign-in", json=attempt(target, f"guess-{n}-xyzw"))
            for n, client in enumerate([one, two, one, two])
        ]
        right = await one.post("/api/accounts/sign-in", json=attempt(target, password))
    assert [r.status_code for r in tries] == [401] * ACCOUNT_SIGN_IN_BURST + [429]
    assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1

    async with client_from(limited, "127.0.0.11") as sprayer:
        sprayed = [
            await sprayer.post(
                "/api/accounts/sign-in",
                json=attempt(f"n{n}-{secrets.token_hex(3)}@example.com", "guess-xyzw-1"),
            )
            for n in range(SIGN_IN_BURST + 1)
        ]
    assert [r.status_code for r in sprayed] == [401] * SIGN_IN_BURST + [429]
    assert sprayed[-1].json()["error"]["code"] == "rate_limited"


# -- the farming attack (issue 14) ----------------------------------------------------------


async def test_a_farming_address_is_throttled_and_a_real_buyer_still_gets_a_unit(
    limited: Server, proxy: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    """One address mints sessions and reserves a 300-unit, limit-1 deal as fast as it can,
    concurrently, with the sessions it minted and 320 it had made earlier (slowly, or on other
    days: the session limit cannot stop a patient farmer, the cap on held units does). Then a
    buyer from another address reserves and pays. The deal never oversells."""
    deal = await http_live_deal(proxy, seller, quantity=300, limit=1)
    path = f"/api/deals/{deal['id']}/reserve"
    async with client_from(limited, "127.0.0.2") as farmer:
        minted = await asyncio.gather(*(farmer.post("/api/session") for _ in range(100)))
        statuses = Counter(r.status_code for r in minted)
        assert statuses[429] > 0 and set(statuses) == {201, 429}, statuses
        assert all(int(r.headers["Retry-After"]) >= 1 for r in minted if r.status_code == 429)
        tokens = [r.json()["token"] for r in minted if r.status_code == 201]
        tokens += [sessions.issue()[1] for _ in range(320)]
        taps = await asyncio.gather(
            *(farmer.post(path, headers=bearer(t), json={"qty": 1}) for t in tokens)
        )
    codes = Counter("held" if r.status_code == 201 else r.json()["error"]["code"] for r in taps)
    assert codes["rate_limited"] > 0, codes  # reserving at full speed is throttled
    assert codes["held"] == HOLD_CAP, codes  # and one address holds at most the cap
    assert set(codes) <= {"held", "rate_limited", "address_hold_limit"}
    for refused in (r for r in taps if r.status_code == 429):
        wait_ms = refused.json()["error"]["details"]["retry_after_ms"]
        assert refused.headers["Retry-After"] == str(max(1, math.ceil(wait_ms / 1000)))

    async with client_from(limited, "127.0.0.3") as buyer:
        session = await buyer.post("/api/session")
        assert session.status_code == 201, session.text
        me = bearer(session.json()["token"])
        hold = await buyer.post(path, headers=me, json={"qty": 1, "request_id": "mine"})
        assert hold.status_code == 201, hold.text
        paid = await buyer.post(
            f"/api/holds/{hold.json()['hold']['id']}/checkout",
            headers={**me, "Idempotency-Key": "pay-mine"},
            json={"card": CARD},
        )
        assert paid.status_code == 201, paid.text
    stock = (await proxy.get(f"/api/deals/{deal['id']}")).json()["deal"]["stock"]
    assert stock["available"] + stock["held"] + stock["sold"] == 300
    assert stock["sold"] == 1 and stock["held"] == HOLD_CAP


async def test_one_address_holds_at_most_the_cap_of_a_sku_in_cart_checkouts(
    limited: Server, proxy: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    """Cart holds have the deal's cap per SKU: a farmer's 40 sessions buying one unit each of a
    40-unit SKU get the cap, every other checkout 409 with the SKU named; another address
    still buys."""
    h, shop_id = seller.headers, seller.shop.id
    product = (
        await proxy.post(f"/api/shops/{shop_id}/products", headers=h, json={"title": "Cap mug"})
    ).json()["product"]
    fields = {"variant": "Sand", "list_price": 1500, "currency": "USD", "stock": 40}
    sku = (await proxy.post(f"/api/products/{product['id']}/skus", headers=h, json=fields)).json()
    body = {"items": [{"sku_id": sku["sku"]["id"], "qty": 1}], "shop_id": shop_id}
    async with client_from(limited, "127.0.0.4") as farmer:
        taps = await asyncio.gather(
            *(
                farmer.post("/api/cart/checkout", headers=bearer(sessions.issue()[1]), json=body)
                for _ in range(40)
            )
        )
    codes = Counter("held" if r.status_code == 201 else r.json()["error"]["code"] for r in taps)
    assert codes == {"held": HOLD_CAP, "address_hold_limit": 40 - HOLD_CAP}, codes
    refused = next(r.json()["error"] for r in taps if r.status_code == 409)
    assert refused["details"] == {
        "limit": HOLD_CAP,
        "lines": [{"sku_id": sku["sku"]["id"], "held": HOLD_CAP}],
    }
    async with client_from(limited, "127.0.0.5") as buyer:
        mine = await buyer.post(
            "/api/cart/checkout", headers=bearer(sessions.issue()[1]), json=body
        )
    assert mine.status_code == 201, mine.text


async def test_without_the_cap_one_address_takes_the_whole_deal(
    redis_url: str,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    """The control for the farming test: the same farmer, no per-address limits. It is what
    the issue saw, and what the test above would see if the cap did not work."""
    server = start_server(
        redis_url, database_url, tmp_path_factory.mktemp("unlimited") / "server.log"
    )
    try:
        async with client_from(server, "127.0.0.1") as seller_client:
            deal = await http_live_deal(seller_client, seller, quantity=60, limit=1)
        path = f"/api/deals/{deal['id']}/reserve"
        async with client_from(server, "127.0.0.2") as farmer:
            taps = await asyncio.gather(
                *(
                    farmer.post(path, headers=bearer(sessions.issue()[1]), json={"qty": 1})
                    for _ in range(80)
                )
            )
        assert Counter(r.status_code for r in taps)[201] == 60
        async with client_from(server, "127.0.0.3") as buyer:
            late = await buyer.post(path, headers=bearer(sessions.issue()[1]), json={"qty": 1})
        assert late.json()["error"]["code"] == "sold_out"
    finally:
        stop_server(server)


# -- chat ------------------------------------------------------------------------------------


async def test_chat_is_limited_per_address_across_users(
    limited: Server, proxy: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    room, _, _ = await http_room(proxy, seller)
    same = [
        await WsViewer.open(limited.base_url, room, local_addr=("127.0.0.4", 0)) for _ in range(2)
    ]
    other = await WsViewer.open(limited.base_url, room, local_addr=("127.0.0.5", 0))
    for viewer in (*same, other):
        await viewer.hello(sessions.issue()[1])
        await viewer.next("holds")
    first, second = same
    await first.send(type="chat", text="one")
    await first.next("chat", text="one")
    await second.send(type="chat", text="two")  # another user, the same address: burst of 2
    await second.next("chat", text="two")
    await second.send(type="chat", text="three")
    refused = await second.next("error", ref="chat")
    assert refused["code"] == "chat_rate_limited"
    assert refused["details"]["per"] == "address" and refused["details"]["retry_after_ms"] > 0
    await other.send(type="chat", text="from elsewhere")
    await other.next("chat", text="from elsewhere")
    assert not [m for m in second.of("chat") if m["text"] == "three"]
    for viewer in (*same, other):
        await viewer.close()
