"""Passkeys over HTTP (decision 0041) with a software authenticator (tests/authenticator.py):
adding one and signing in with it, as a password sign-in answers (the guest's orders and cart
come along); a challenge works once and for its own account; a response signed for another
origin, a deleted credential and a counter that went backwards are refused without changing
anything; another account cannot delete yours; a site opened by IP address has none, and one
with LIVECART_PUBLIC_URL is that URL's site whatever the Host header says."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from kernel.errors import Conflict
from people.keys import PeopleKeys
from people.passkeys import RelyingParty, relying_party
from tests.authenticator import SoftAuthenticator, b64url
from tests.conftest import PREFIX, SellerAccount, start_server, viewer_headers
from tests.harness import Server, stop_server
from tests.helpers import assert_error, checkout, make_listing, orders_seen_by, poll, reserve
from tests.test_accounts import bearer, new_email, sign_up
from web.auth import GuestSessions

pytestmark = pytest.mark.storage


@pytest.fixture
async def site(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """The test server as a browser at http://localhost:<port> reaches it: WebAuthn takes no
    IP address as the site's name, so the requests name the host."""
    headers = {"Host": f"localhost:{server.port}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as client:
        yield client


def origin_of(server: Server) -> str:
    return f"http://localhost:{server.port}"


async def add_passkey(
    http: httpx.AsyncClient, account: dict[str, str], device: SoftAuthenticator, name: str = ""
) -> httpx.Response:
    options = await http.post("/api/accounts/me/passkeys/options", headers=account)
    assert options.status_code == 200, options.text
    started = options.json()
    body = {
        "challenge_id": started["challenge_id"],
        "credential": device.create(started["options"]),
        "name": name,
    }
    return await http.post("/api/accounts/me/passkeys", json=body, headers=account)


async def sign_in_options(http: httpx.AsyncClient) -> dict[str, Any]:
    r = await http.post("/api/accounts/passkeys/sign-in/options")
    assert r.status_code == 200, r.text
    started: dict[str, Any] = r.json()
    return started


async def sign_in_with(
    http: httpx.AsyncClient,
    device: SoftAuthenticator,
    *,
    sign_count: int | None = None,
    verified: bool = True,
    guest: dict[str, str] | None = None,
) -> httpx.Response:
    started = await sign_in_options(http)
    credential = device.get(started["options"], sign_count=sign_count, verified=verified)
    body = {"challenge_id": started["challenge_id"], "credential": credential}
    return await http.post("/api/accounts/passkeys/sign-in", json=body, headers=guest or {})


async def new_account_with_passkey(
    site: httpx.AsyncClient, server: Server
) -> tuple[dict[str, Any], SoftAuthenticator]:
    signed_up = await sign_up(site, new_email())
    device = SoftAuthenticator(origin_of(server))
    added = await add_passkey(site, bearer(signed_up["token"]), device, name="Phone")
    assert added.status_code == 201, added.text
    return signed_up, device


async def passkeys_of(http: httpx.AsyncClient, account: dict[str, str]) -> list[dict[str, Any]]:
    r = await http.get("/api/accounts/me/passkeys", headers=account)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["passkeys"]
    return found


async def test_a_passkey_added_signs_its_account_in(
    site: httpx.AsyncClient, server: Server
) -> None:
    signed_up, device = await new_account_with_passkey(site, server)
    account = bearer(signed_up["token"])
    [listed] = await passkeys_of(site, account)
    assert (listed["name"], listed["transports"], listed["last_used_ms"]) == (
        "Phone",
        ["internal"],
        None,
    )

    answer = await sign_in_with(site, device)

    assert answer.status_code == 200, answer.text
    session = answer.json()
    assert session["account"] == signed_up["account"]
    assert session["buyer_id"] == signed_up["buyer_id"]
    assert session["moved_orders"] == 0
    assert session["token"].startswith("lc_as_") and session["token"] != signed_up["token"]
    me = await site.get("/api/accounts/me", headers=bearer(session["token"]))
    assert me.status_code == 200 and me.json()["email"] == signed_up["account"]["email"]
    [used] = await passkeys_of(site, account)
    assert used["last_used_ms"] is not None


async def test_a_passkey_made_with_no_attestation_is_kept_too(
    site: httpx.AsyncClient, server: Server
) -> None:
    account = bearer((await sign_up(site, new_email()))["token"])
    device = SoftAuthenticator(origin_of(server))
    started = (await site.post("/api/accounts/me/passkeys/options", headers=account)).json()
    body = {
        "challenge_id": started["challenge_id"],
        "credential": device.create(started["options"], attestation="none"),
    }
    added = await site.post("/api/accounts/me/passkeys", json=body, headers=account)
    assert added.status_code == 201, added.text
    assert added.json()["name"] == "Passkey"
    assert (await sign_in_with(site, device)).status_code == 200


async def test_signing_in_with_a_passkey_brings_the_guests_orders_and_cart(
    site: httpx.AsyncClient,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    server: Server,
) -> None:
    signed_up, device = await new_account_with_passkey(site, server)
    item = await make_listing(http, seller)
    _, guest = viewer_headers(sessions)
    hold = await reserve(http, item.deal_id, guest)
    paid = await checkout(http, hold["id"], guest, key="pay-" + secrets.token_hex(4))
    assert paid.status_code == 201, paid.text
    await poll(lambda: orders_seen_by(http, guest), lambda found: len(found) == 1)
    put = await http.put(f"/api/cart/items/{item.sku_id}", json={"qty": 1}, headers=guest)
    assert put.status_code == 200, put.text

    answer = await sign_in_with(site, device, guest=guest)

    assert answer.status_code == 200, answer.text
    assert answer.json()["moved_orders"] == 1
    account = bearer(answer.json()["token"])
    orders = await orders_seen_by(http, account)
    assert [(o["hold_id"], o["buyer_id"]) for o in orders] == [(hold["id"], signed_up["buyer_id"])]
    assert await orders_seen_by(http, guest) == []
    cart = (await http.get("/api/cart", headers=account)).json()["cart"]
    assert [line["sku_id"] for line in cart["lines"]] == [item.sku_id]


async def test_a_challenge_works_once(site: httpx.AsyncClient, server: Server) -> None:
    _, device = await new_account_with_passkey(site, server)
    started = await sign_in_options(site)
    body = {"challenge_id": started["challenge_id"], "credential": device.get(started["options"])}
    first = await site.post("/api/accounts/passkeys/sign-in", json=body)
    assert first.status_code == 200, first.text

    replayed = await site.post("/api/accounts/passkeys/sign-in", json=body)

    assert_error(replayed, 422, "passkey_challenge_invalid")
    # The same signed answer against a fresh challenge: it signed the old one.
    fresh = await sign_in_options(site)
    again = {"challenge_id": fresh["challenge_id"], "credential": body["credential"]}
    assert_error(
        await site.post("/api/accounts/passkeys/sign-in", json=again), 401, "passkey_rejected"
    )


async def test_a_challenge_is_for_its_own_ceremony_and_account(
    site: httpx.AsyncClient, server: Server
) -> None:
    mine = bearer((await sign_up(site, new_email()))["token"])
    theirs = bearer((await sign_up(site, new_email()))["token"])
    device = SoftAuthenticator(origin_of(server))
    started = (await site.post("/api/accounts/me/passkeys/options", headers=mine)).json()
    body = {
        "challenge_id": started["challenge_id"],
        "credential": device.create(started["options"]),
    }

    taken = await site.post("/api/accounts/me/passkeys", json=body, headers=theirs)
    assert_error(taken, 422, "passkey_challenge_invalid")
    assert await passkeys_of(site, theirs) == []
    # Tried once, even by the wrong account: gone for the right one too.
    late = await site.post("/api/accounts/me/passkeys", json=body, headers=mine)
    assert_error(late, 422, "passkey_challenge_invalid")
    sign_in = await sign_in_options(site)
    crossed = {"challenge_id": sign_in["challenge_id"], "credential": body["credential"]}
    assert_error(
        await site.post("/api/accounts/me/passkeys", json=crossed, headers=mine),
        422,
        "passkey_challenge_invalid",
    )
    assert await passkeys_of(site, mine) == []


async def test_a_response_signed_for_another_origin_is_refused(
    site: httpx.AsyncClient, server: Server
) -> None:
    account = bearer((await sign_up(site, new_email()))["token"])
    phished = SoftAuthenticator("http://evil.example")
    added = await add_passkey(site, account, phished)
    assert_error(added, 422, "passkey_not_verified")
    assert await passkeys_of(site, account) == []

    _, device = await new_account_with_passkey(site, server)
    device.origin = "http://localhost:1"
    assert_error(await sign_in_with(site, device), 401, "passkey_rejected")


async def test_a_passkey_that_did_not_verify_its_user_does_not_sign_in(
    site: httpx.AsyncClient, server: Server
) -> None:
    _, device = await new_account_with_passkey(site, server)
    started = await sign_in_options(site)
    assert started["options"]["userVerification"] == "required"

    assert_error(await sign_in_with(site, device, verified=False), 401, "passkey_rejected")
    assert (await sign_in_with(site, device)).status_code == 200


async def test_a_challenge_expires_in_five_minutes(
    site: httpx.AsyncClient, server: Server, redis: Redis
) -> None:
    started = await sign_in_options(site)
    key = PeopleKeys(PREFIX).passkey_challenge(started["challenge_id"])
    assert 290_000 <= await redis.pttl(key) <= 300_000


async def test_a_sign_count_that_went_backwards_is_refused(
    site: httpx.AsyncClient, server: Server
) -> None:
    _, device = await new_account_with_passkey(site, server)
    assert (await sign_in_with(site, device, sign_count=5)).status_code == 200

    for stale in (5, 3, 0):
        refused = await sign_in_with(site, device, sign_count=stale)
        assert_error(refused, 401, "passkey_sign_count")

    # The refusals stored nothing: the counter is still 5, so 6 signs in.
    assert (await sign_in_with(site, device, sign_count=6)).status_code == 200


async def test_another_account_cannot_delete_your_passkey(
    site: httpx.AsyncClient, server: Server
) -> None:
    signed_up, device = await new_account_with_passkey(site, server)
    mine = bearer(signed_up["token"])
    [passkey] = await passkeys_of(site, mine)
    other = bearer((await sign_up(site, new_email()))["token"])

    refused = await site.delete(f"/api/accounts/me/passkeys/{passkey['id']}", headers=other)

    assert_error(refused, 404, "passkey_not_found")
    assert await passkeys_of(site, mine) == [passkey]
    assert (await sign_in_with(site, device)).status_code == 200
    deleted = await site.delete(f"/api/accounts/me/passkeys/{passkey['id']}", headers=mine)
    assert deleted.status_code == 204, deleted.text
    assert await passkeys_of(site, mine) == []
    assert_error(await sign_in_with(site, device), 401, "passkey_unknown")


async def test_a_registered_passkey_is_excluded_and_not_added_twice(
    site: httpx.AsyncClient, server: Server
) -> None:
    signed_up, device = await new_account_with_passkey(site, server)
    account = bearer(signed_up["token"])
    started = (await site.post("/api/accounts/me/passkeys/options", headers=account)).json()
    assert [c["id"] for c in started["options"]["excludeCredentials"]] == [
        b64url(device.credential_id)
    ]
    assert started["options"]["authenticatorSelection"]["residentKey"] == "required"

    again = await add_passkey(site, account, device)

    assert_error(again, 409, "passkey_exists")
    assert len(await passkeys_of(site, account)) == 1


async def test_malformed_answers_are_refused_not_crashed_on(
    site: httpx.AsyncClient, server: Server
) -> None:
    account = bearer((await sign_up(site, new_email()))["token"])
    for credential in ({}, {"id": "x", "rawId": "x", "type": "public-key", "response": {}}):
        started = (await site.post("/api/accounts/me/passkeys/options", headers=account)).json()
        body = {"challenge_id": started["challenge_id"], "credential": credential}
        added = await site.post("/api/accounts/me/passkeys", json=body, headers=account)
        assert_error(added, 422, "passkey_not_verified")
        started = await sign_in_options(site)
        body = {"challenge_id": started["challenge_id"], "credential": credential}
        signed = await site.post("/api/accounts/passkeys/sign-in", json=body)
        assert_error(signed, 401, "passkey_rejected")
    unknown = {"challenge_id": "no-such-challenge", "credential": {}}
    assert_error(
        await site.post("/api/accounts/passkeys/sign-in", json=unknown),
        422,
        "passkey_challenge_invalid",
    )
    assert await passkeys_of(site, account) == []


async def test_a_credential_id_longer_than_webauthn_allows_is_refused(
    site: httpx.AsyncClient, server: Server
) -> None:
    account = bearer((await sign_up(site, new_email()))["token"])
    device = SoftAuthenticator(origin_of(server))
    device.credential_id = os.urandom(1024)
    assert_error(await add_passkey(site, account, device), 422, "passkey_not_verified")
    device.credential_id = os.urandom(1023)
    assert (await add_passkey(site, account, device)).status_code == 201
    assert (await sign_in_with(site, device)).status_code == 200


async def test_a_site_opened_by_ip_address_has_no_passkeys(http: httpx.AsyncClient) -> None:
    account = bearer((await sign_up(http, new_email()))["token"])
    assert_error(
        await http.post("/api/accounts/me/passkeys/options", headers=account),
        409,
        "passkeys_unavailable",
    )
    assert_error(
        await http.post("/api/accounts/passkeys/sign-in/options"), 409, "passkeys_unavailable"
    )


@pytest.mark.parametrize(
    ("url", "site"),
    [
        ("https://shop.example", RelyingParty("shop.example", "https://shop.example")),
        ("https://Shop.Example:443/", RelyingParty("shop.example", "https://shop.example")),
        ("http://localhost:8000", RelyingParty("localhost", "http://localhost:8000")),
        (
            "https://shop.example:8443/live",
            RelyingParty("shop.example", "https://shop.example:8443"),
        ),
    ],
)
def test_a_sites_name_and_origin_come_from_its_url(url: str, site: RelyingParty) -> None:
    assert relying_party(url) == site


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://[::1]:8000",
        "http://",
        "http://host:port",
        "http://[::1",
        "ftp://a",
    ],
)
def test_an_address_or_a_broken_url_has_no_passkeys(url: str) -> None:
    with pytest.raises(Conflict) as refused:
        relying_party(url)
    assert refused.value.code == "passkeys_unavailable"


PUBLIC_URL = "https://shop.example"


@pytest.fixture(scope="module")
def public_server(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(
        redis_url,
        database_url,
        tmp_path_factory.mktemp("passkeys-public") / "server.log",
        LIVECART_PUBLIC_URL=PUBLIC_URL,
    )
    yield running
    stop_server(running)


async def test_a_configured_public_url_is_the_site_whatever_the_host(
    public_server: Server,
) -> None:
    headers = {"Host": f"localhost:{public_server.port}"}
    async with httpx.AsyncClient(base_url=public_server.base_url, headers=headers) as http:
        account = bearer((await sign_up(http, new_email()))["token"])
        started = (await http.post("/api/accounts/me/passkeys/options", headers=account)).json()
        assert started["options"]["rp"]["id"] == "shop.example"
        by_host = SoftAuthenticator(f"http://localhost:{public_server.port}")
        assert_error(await add_passkey(http, account, by_host), 422, "passkey_not_verified")

        device = SoftAuthenticator(PUBLIC_URL)
        added = await add_passkey(http, account, device)

        assert added.status_code == 201, added.text
        assert (await sign_in_with(http, device)).status_code == 200
