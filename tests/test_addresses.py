"""Saved addresses of buyer accounts over HTTP (issue 20): kept, listed default first, replaced
and deleted; ten at most and exactly one default, even when requests race; another account's
address is as good as missing; a guest cannot keep any; bad bodies change nothing."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest

from tests.conftest import viewer_headers
from tests.helpers import assert_error
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

MINE = "/api/accounts/me/addresses"


def address(name: str = "Mina Park", **changes: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "line1": "12 Harbour Road",
        "line2": "Flat 3",
        "city": "Busan",
        "postal_code": "48058",
        "country": "KR",
    }
    return {**body, **changes}


async def new_account(http: httpx.AsyncClient) -> dict[str, str]:
    body = {
        "email": f"buyer-{secrets.token_hex(6)}@example.com",
        "password": "violet-kettle-orbit-42",
        "display_name": "Mina",
    }
    r = await http.post("/api/accounts", json=body)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def saved(http: httpx.AsyncClient, account: dict[str, str]) -> list[dict[str, Any]]:
    r = await http.get(MINE, headers=account)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["addresses"]
    return found


async def add(http: httpx.AsyncClient, account: dict[str, str], **body: Any) -> dict[str, Any]:
    r = await http.post(MINE, json=address(**body), headers=account)
    assert r.status_code == 201, r.text
    kept: dict[str, Any] = r.json()["address"]
    return kept


async def test_an_account_keeps_lists_replaces_and_deletes_addresses(
    http: httpx.AsyncClient,
) -> None:
    account = await new_account(http)
    assert await saved(http, account) == []

    home = await add(http, account, name="Home")
    work = await add(http, account, name="Work", line2="")
    cabin = await add(http, account, name="Cabin")

    assert home["is_default"] and not work["is_default"] and not cabin["is_default"]
    assert {k: home[k] for k in address()} == address(name="Home")
    assert [a["name"] for a in await saved(http, account)] == ["Home", "Cabin", "Work"]

    changed = address(name="Work", line1="1 Tower Lane", city="Seoul", country="KR")
    r = await http.put(f"{MINE}/{work['id']}", json=changed, headers=account)
    assert r.status_code == 200, r.text
    assert {k: r.json()["address"][k] for k in changed} == changed
    assert not r.json()["address"]["is_default"]  # default: false leaves the default alone

    r = await http.post(f"{MINE}/{work['id']}/default", headers=account)
    assert r.status_code == 200, r.text
    assert [(a["name"], a["is_default"]) for a in r.json()["addresses"]] == [
        ("Work", True),
        ("Cabin", False),
        ("Home", False),
    ]
    assert r.json()["addresses"] == await saved(http, account)

    r = await http.delete(f"{MINE}/{home['id']}", headers=account)
    assert r.status_code == 204, r.text
    assert [a["name"] for a in await saved(http, account)] == ["Work", "Cabin"]
    again = await http.delete(f"{MINE}/{home['id']}", headers=account)
    assert_error(again, 404, "address_not_found")


async def test_deleting_the_default_makes_the_newest_left_the_default(
    http: httpx.AsyncClient,
) -> None:
    account = await new_account(http)
    first = await add(http, account, name="First")
    await add(http, account, name="Second")
    await add(http, account, name="Third")
    assert (await http.delete(f"{MINE}/{first['id']}", headers=account)).status_code == 204
    assert [(a["name"], a["is_default"]) for a in await saved(http, account)] == [
        ("Third", True),
        ("Second", False),
    ]


async def test_a_new_address_sent_as_default_takes_it_over(http: httpx.AsyncClient) -> None:
    account = await new_account(http)
    await add(http, account, name="Old")
    new = await add(http, account, name="New", default=True)
    assert new["is_default"]
    assert [(a["name"], a["is_default"]) for a in await saved(http, account)] == [
        ("New", True),
        ("Old", False),
    ]
    r = await http.put(f"{MINE}/{new['id']}", json=address(name="New"), headers=account)
    assert r.json()["address"]["is_default"]  # still: a default changes by choosing another


async def test_an_eleventh_address_is_refused(http: httpx.AsyncClient) -> None:
    account = await new_account(http)
    for n in range(10):
        await add(http, account, name=f"Place {n}")
    r = await http.post(MINE, json=address(name="One too many", default=True), headers=account)
    error = assert_error(r, 409, "too_many_addresses")
    assert error["details"]["max"] == 10
    kept = await saved(http, account)
    assert len(kept) == 10 and "One too many" not in {a["name"] for a in kept}
    assert [a["name"] for a in kept if a["is_default"]] == ["Place 0"]


async def test_twenty_racing_creates_keep_exactly_ten(http: httpx.AsyncClient) -> None:
    account = await new_account(http)
    answers = await asyncio.gather(
        *(http.post(MINE, json=address(name=f"Racer {n}"), headers=account) for n in range(20))
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] * 10 + [409] * 10, [r.text for r in answers if r.status_code >= 500]
    for refused in (r for r in answers if r.status_code == 409):
        assert_error(refused, 409, "too_many_addresses")
    kept = await saved(http, account)
    assert len(kept) == 10
    assert sum(a["is_default"] for a in kept) == 1


async def test_racing_default_switches_leave_exactly_one_default(
    http: httpx.AsyncClient,
) -> None:
    account = await new_account(http)
    ids = [(await add(http, account, name=f"Place {n}"))["id"] for n in range(10)]
    answers = await asyncio.gather(
        *(http.post(f"{MINE}/{i}/default", headers=account) for i in ids + ids[::-1])
    )
    assert [r.status_code for r in answers] == [200] * 20, [r.text for r in answers]
    kept = await saved(http, account)
    defaults = [a["id"] for a in kept if a["is_default"]]
    assert len(defaults) == 1 and kept[0]["id"] == defaults[0]
    # Deletes racing with switches still leave one default among what is left.
    more = [http.delete(f"{MINE}/{i}", headers=account) for i in ids[:5]]
    more += [http.post(f"{MINE}/{i}/default", headers=account) for i in ids]
    mixed = await asyncio.gather(*more)
    assert [r.status_code for r in mixed[:5]] == [204] * 5
    # A switch to an address deleted first is 404; none fails otherwise.
    assert {r.status_code for r in mixed[5:]} <= {200, 404}, [r.text for r in mixed[5:]]
    kept = await saved(http, account)
    assert len(kept) == 5 and sum(a["is_default"] for a in kept) == 1


async def test_another_accounts_address_is_not_found(http: httpx.AsyncClient) -> None:
    mine, theirs = await new_account(http), await new_account(http)
    their_address = await add(http, theirs, name="Theirs")
    mine_address = await add(http, mine, name="Mine")
    url = f"{MINE}/{their_address['id']}"
    missing = f"{MINE}/{their_address['id'] + 10_000}"

    for target in (url, missing):
        assert_error(await http.put(target, json=address(), headers=mine), 404, "address_not_found")
        assert_error(await http.delete(target, headers=mine), 404, "address_not_found")
        refused = await http.post(f"{target}/default", headers=mine)
        assert_error(refused, 404, "address_not_found")

    assert await saved(http, theirs) == [their_address]
    assert await saved(http, mine) == [mine_address]


async def test_a_guest_or_no_token_keeps_no_addresses(
    http: httpx.AsyncClient, sessions: GuestSessions
) -> None:
    _, guest = viewer_headers(sessions)
    assert_error(await http.get(MINE, headers=guest), 401, "account_token_required")
    r = await http.post(MINE, json=address(), headers=guest)
    assert_error(r, 401, "account_token_required")
    assert_error(await http.post(MINE, json=address()), 401, "missing_token")
    assert_error(await http.delete(f"{MINE}/1", headers=guest), 401, "account_token_required")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (address(name=""), "invalid_request"),
        (address(name="x" * 101), "invalid_request"),
        (address(line1=""), "invalid_request"),
        (address(line2="x" * 201), "invalid_request"),
        (address(postal_code="1" * 21), "invalid_request"),
        (address(country="kr"), "invalid_request"),
        (address(country="KOR"), "invalid_request"),
        (address(city="Bu\x00san"), "invalid_request"),
        (address(default="yes"), "invalid_request"),
        (address(is_default=True), "unknown_field"),
        ({k: v for k, v in address().items() if k != "city"}, "invalid_request"),
    ],
)
async def test_a_bad_body_is_refused_and_nothing_is_stored(
    http: httpx.AsyncClient, body: dict[str, Any], code: str
) -> None:
    account = await new_account(http)
    assert_error(await http.post(MINE, json=body, headers=account), 422, code)
    assert await saved(http, account) == []
    kept = await add(http, account, name="Kept")
    assert_error(await http.put(f"{MINE}/{kept['id']}", json=body, headers=account), 422, code)
    assert await saved(http, account) == [kept]
