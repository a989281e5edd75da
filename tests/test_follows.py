"""Follows, go-live reminders and notifications over HTTP against a real server (issue 20,
decision 0045): following is idempotent and needs an account, counts stay exact under a race,
reminders only take scheduled rooms, and a room going live tells each follower and reminded
account exactly once (one notification, one mail) even when two requests take it live."""

from __future__ import annotations

import asyncio
import email.message
import secrets
from typing import Any

import httpx
import pytest

from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import assert_error, http_room, make_seller, poll
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

PASSWORD = "violet-kettle-orbit-42"


async def new_account(
    http: httpx.AsyncClient, name: str = "Mina", lang: str = "en"
) -> tuple[str, dict[str, str]]:
    address = f"fan-{secrets.token_hex(6)}@example.com"
    body = {"email": address, "password": PASSWORD, "display_name": name}
    r = await http.post("/api/accounts", json=body, headers={"Accept-Language": lang})
    assert r.status_code == 201, r.text
    return address, {"Authorization": f"Bearer {r.json()['token']}"}


def mails_to(server: Server, address: str) -> list[email.message.Message]:
    folder = server.log.parent / "mail"
    found = [email.message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]
    return [m for m in found if m["To"] == address]


async def follow(http: httpx.AsyncClient, seller_id: int, account: dict[str, str]) -> Any:
    r = await http.put(f"/api/sellers/{seller_id}/follow", headers=account)
    assert r.status_code == 200, r.text
    return r.json()


async def followers_of_room(http: httpx.AsyncClient, room_id: int) -> int:
    r = await http.get(f"/api/rooms/{room_id}")
    assert r.status_code == 200, r.text
    count: int = r.json()["followers"]
    return count


async def notifications(http: httpx.AsyncClient, account: dict[str, str]) -> Any:
    r = await http.get("/api/accounts/me/notifications", headers=account)
    assert r.status_code == 200, r.text
    return r.json()


async def test_following_is_idempotent_and_listed(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    seller_id = seller.seller.id
    room, _, _ = await http_room(http, seller, live=False)
    _, account = await new_account(http)

    assert await follow(http, seller_id, account) == {
        "seller_id": seller_id,
        "following": True,
        "followers": 1,
    }
    assert (await follow(http, seller_id, account))["followers"] == 1
    assert await followers_of_room(http, room) == 1

    r = await http.get("/api/accounts/me/following", headers=account)
    assert r.status_code == 200, r.text
    (followed,) = r.json()["following"]
    assert (followed["seller_id"], followed["name"]) == (seller_id, "Test Seller")

    for _ in range(2):
        r = await http.delete(f"/api/sellers/{seller_id}/follow", headers=account)
        assert r.status_code == 200, r.text
        assert r.json() == {"seller_id": seller_id, "following": False, "followers": 0}
    assert await followers_of_room(http, room) == 0
    r = await http.get("/api/accounts/me/following", headers=account)
    assert r.json()["following"] == []


async def test_a_guest_is_told_to_sign_up_and_an_unknown_seller_is_404(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    _, guest = viewer_headers(sessions)
    r = await http.put(f"/api/sellers/{seller.seller.id}/follow", headers=guest)
    body = assert_error(r, 401, "account_token_required")
    assert body["details"]["sign_up"] == "/account"
    room, _, _ = await http_room(http, seller, live=False)
    assert_error(
        await http.put(f"/api/rooms/{room}/reminder", headers=guest), 401, "account_token_required"
    )
    assert_error(
        await http.get("/api/accounts/me/notifications", headers=guest),
        401,
        "account_token_required",
    )

    _, account = await new_account(http)
    assert_error(
        await http.put("/api/sellers/999999999/follow", headers=account), 404, "seller_not_found"
    )
    assert_error(
        await http.put("/api/rooms/999999999/reminder", headers=account), 404, "room_not_found"
    )
    assert await followers_of_room(http, room) == 0


async def test_fifty_accounts_following_at_once_count_fifty(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    room, _, _ = await http_room(http, seller, live=False)
    accounts = [account for _, account in [await new_account(http) for _ in range(50)]]
    # Each follows twice at once: the race is between accounts and within one.
    calls = [http.put(f"/api/sellers/{seller.seller.id}/follow", headers=a) for a in accounts * 2]
    answers = await asyncio.gather(*calls)
    assert [r.status_code for r in answers] == [200] * 100
    assert await followers_of_room(http, room) == 50


async def test_a_reminder_only_takes_a_scheduled_room(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    _, account = await new_account(http)
    scheduled, _, _ = await http_room(http, seller, live=False)
    live, _, _ = await http_room(http, seller, live=True)

    for _ in range(2):
        r = await http.put(f"/api/rooms/{scheduled}/reminder", headers=account)
        assert r.status_code == 200, r.text
        assert r.json() == {"room_id": scheduled, "reminded": True}
    body = assert_error(
        await http.put(f"/api/rooms/{live}/reminder", headers=account), 409, "room_not_scheduled"
    )
    assert body["details"]["status"] == "live"
    r = await http.get("/api/accounts/me/following", headers=account)
    assert r.json()["reminders"] == [scheduled]

    r = await http.delete(f"/api/rooms/{scheduled}/reminder", headers=account)
    assert r.status_code == 200, r.text
    r = await http.get("/api/accounts/me/following", headers=account)
    assert r.json()["reminders"] == []


async def test_going_live_tells_each_follower_and_reminded_account_once(
    http: httpx.AsyncClient, seller: SellerAccount, server: Server, db: Any
) -> None:
    room, _, _ = await http_room(http, seller, live=False)
    other = await make_seller(db, "Someone Else")
    follower, follower_h = await new_account(http, "Fan")
    reminded, reminded_h = await new_account(http, "Early")
    both, both_h = await new_account(http, "Keen")
    bystander, bystander_h = await new_account(http, "Other")
    await follow(http, seller.seller.id, follower_h)
    await follow(http, seller.seller.id, both_h)
    await follow(http, other.seller.id, bystander_h)
    for account in (reminded_h, both_h):
        r = await http.put(f"/api/rooms/{room}/reminder", headers=account)
        assert r.status_code == 200, r.text

    # Two requests take the room live at once: one tells, the other finds it told.
    went = await asyncio.gather(
        *(http.post(f"/api/rooms/{room}/live", headers=seller.headers) for _ in range(2))
    )
    assert [r.status_code for r in went] == [200, 200]

    told = (follower, reminded, both)
    sent = await poll(
        lambda: asyncio.sleep(0, [len(mails_to(server, a)) for a in told]),
        lambda counts: counts == [1, 1, 1],
    )
    assert sent == [1, 1, 1]
    (mail,) = mails_to(server, follower)
    assert mail["Subject"] == "Test Seller is live: Test live"
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes) and f"/live/{room}" in payload.decode()
    assert mails_to(server, bystander) == []

    for account in (follower_h, reminded_h, both_h):
        found = await notifications(http, account)
        assert found["unread"] == 1
        (notice,) = found["notifications"]
        assert (notice["kind"], notice["room_id"], notice["read_ms"]) == ("went_live", room, None)
        assert (notice["seller_name"], notice["title"]) == ("Test Seller", "Test live")
    assert await notifications(http, bystander_h) == {"notifications": [], "unread": 0}

    # Going live again changes nothing: no second notification, no second mail.
    r = await http.post(f"/api/rooms/{room}/live", headers=seller.headers)
    assert r.status_code == 200, r.text  # live already: a no-op
    assert (await notifications(http, follower_h))["unread"] == 1
    assert len(mails_to(server, follower)) == 1


async def test_the_go_live_mail_is_in_the_language_the_account_last_signed_in_from(
    http: httpx.AsyncClient, seller: SellerAccount, server: Server
) -> None:
    room, _, _ = await http_room(http, seller, live=False)
    in_japanese, japanese_h = await new_account(http, "Aiko", lang="ja")
    in_arabic, arabic_h = await new_account(http, "Sami", lang="ja")
    # Sami signs in again from Arabic pages: that is the language kept.
    body = {"email": in_arabic, "password": PASSWORD}
    signed = await http.post("/api/accounts/sign-in", json=body, headers={"Accept-Language": "ar"})
    assert signed.status_code == 200, signed.text
    for account in (japanese_h, arabic_h):
        await follow(http, seller.seller.id, account)
    assert (await http.post(f"/api/rooms/{room}/live", headers=seller.headers)).status_code == 200
    await poll(
        lambda: asyncio.sleep(0, [len(mails_to(server, a)) for a in (in_japanese, in_arabic)]),
        lambda counts: counts == [1, 1],
    )
    (japanese,) = mails_to(server, in_japanese)
    (arabic,) = mails_to(server, in_arabic)
    assert str(email.header.make_header(email.header.decode_header(japanese["Subject"]))) == (
        "Test Seller がライブ配信中：Test live"  # noqa: RUF001 (Japanese punctuation)
    )
    assert str(email.header.make_header(email.header.decode_header(arabic["Subject"]))) == (
        "Test Seller في بث مباشر الآن: Test live"
    )
    text = arabic.get_payload(decode=True)
    assert isinstance(text, bytes) and "مرحبًا Sami" in text.decode()


async def test_notifications_are_newest_first_and_marked_read(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    _, account = await new_account(http)
    await follow(http, seller.seller.id, account)
    first, _, _ = await http_room(http, seller, live=True)
    second, _, _ = await http_room(http, seller, live=True)

    found = await notifications(http, account)
    assert [n["room_id"] for n in found["notifications"]] == [second, first]
    assert found["unread"] == 2

    r = await http.post("/api/accounts/me/notifications/read", headers=account)
    assert r.status_code == 200, r.text
    assert r.json() == {"marked": 2, "unread": 0}
    found = await notifications(http, account)
    assert found["unread"] == 0
    assert all(n["read_ms"] is not None for n in found["notifications"])
    r = await http.post("/api/accounts/me/notifications/read", headers=account)
    assert r.json() == {"marked": 0, "unread": 0}


async def test_a_follow_during_a_live_counts_once_in_its_analytics(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    room, _, _ = await http_room(http, seller, live=True)
    _, account = await new_account(http)
    await follow(http, seller.seller.id, account)
    await follow(http, seller.seller.id, account)  # following again is not a new follower

    async def followers_counted() -> int:
        r = await http.get(f"/api/rooms/{room}/analytics", headers=seller.headers)
        assert r.status_code == 200, r.text
        counted: int = r.json()["analytics"]["totals"]["followers"]
        return counted

    assert await poll(followers_counted, lambda n: n > 0) == 1
