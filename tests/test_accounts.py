"""Buyer accounts over HTTP (decision 0041): signing up keeps the guest's hold, cart and
orders; every device signed in is one buyer for a deal's limit; signing in from a guest brings
its orders and cart; bad input changes nothing; a password reset by mail works once and ends
the older sessions. (The sign-in throttle is tested with the other limits: test_limits.py.)"""

from __future__ import annotations

import email
import email.policy
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from people.mail import FileSender, Mail
from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import (
    assert_error,
    checkout,
    deal_body,
    deal_stock,
    http_flash_deal,
    http_room,
    make_listing,
    new_product,
    new_sku,
    orders_seen_by,
    poll,
    reserve,
    until_flash_deal_live,
)
from tests.wsclient import WsViewer
from web import i18n
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

PASSWORD = "violet-kettle-orbit-42"


def new_email() -> str:
    return f"buyer-{secrets.token_hex(6)}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_up(
    http: httpx.AsyncClient, address: str, *, guest: dict[str, str] | None = None
) -> dict[str, Any]:
    body = {"email": address, "password": PASSWORD, "display_name": "Mina"}
    r = await http.post("/api/accounts", json=body, headers=guest or {})
    assert r.status_code == 201, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def sign_in(
    http: httpx.AsyncClient, address: str, *, guest: dict[str, str] | None = None
) -> httpx.Response:
    body = {"email": address, "password": PASSWORD}
    return await http.post("/api/accounts/sign-in", json=body, headers=guest or {})


async def test_a_guest_who_signs_up_keeps_the_hold_and_pays_for_it_as_the_account(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    item = await make_listing(http, seller)
    guest_id, guest = viewer_headers(sessions)
    hold = await reserve(http, item.deal_id, guest)
    sku_id = (await new_sku(http, seller, (await new_product(http, seller))["id"]))["id"]
    put = await http.put(f"/api/cart/items/{sku_id}", json={"qty": 2}, headers=guest)
    assert put.status_code == 200, put.text

    signed_up = await sign_up(http, new_email(), guest=guest)

    assert signed_up["buyer_id"] == guest_id == signed_up["account"]["buyer_id"]
    assert signed_up["token"].startswith("lc_as_")
    account = bearer(signed_up["token"])
    seen = await http.get(f"/api/holds/{hold['id']}", headers=account)
    assert seen.status_code == 200, seen.text
    cart = (await http.get("/api/cart", headers=account)).json()["cart"]
    assert [(line["sku_id"], line["qty"]) for line in cart["lines"]] == [(sku_id, 2)]
    paid = await checkout(http, hold["id"], account, key="pay-" + secrets.token_hex(4))
    assert paid.status_code == 201, paid.text
    orders = await poll(lambda: orders_seen_by(http, account), lambda found: len(found) == 1)
    assert [(o["hold_id"], o["buyer_id"]) for o in orders] == [(hold["id"], guest_id)]
    me = await http.get("/api/accounts/me", headers=account)
    assert me.json()["display_name"] == "Mina"


async def test_every_device_signed_in_is_one_buyer_for_a_deals_limit(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    product = await new_product(http, seller)
    sku = await new_sku(http, seller, product["id"], stock=10)
    body = deal_body(sku["id"], quantity=10, per_buyer_limit=1)
    made = await http.post("/api/deals", headers=seller.headers, json=body)
    deal_id = made.json()["deal"]["id"]
    assert (await http.post(f"/api/deals/{deal_id}/start", headers=seller.headers)).is_success
    address = new_email()
    phone = bearer((await sign_up(http, address))["token"])
    laptop_answer = await sign_in(http, address)
    laptop = bearer(laptop_answer.json()["token"])
    assert laptop != phone  # a new token at each sign-in

    await reserve(http, deal_id, phone)
    second = await http.post(f"/api/deals/{deal_id}/reserve", headers=laptop, json={"qty": 1})

    assert_error(second, 409, "limit_exceeded")
    guest = await http.post("/api/session")  # a guest is still someone else
    other = bearer(guest.json()["token"])
    await reserve(http, deal_id, other)


async def test_signing_in_from_a_guest_brings_its_orders_and_cart(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    address = new_email()
    account_id = (await sign_up(http, address))["buyer_id"]
    item = await make_listing(http, seller)
    guest_id, guest = viewer_headers(sessions)
    hold = await reserve(http, item.deal_id, guest)
    paid = await checkout(http, hold["id"], guest, key="pay-" + secrets.token_hex(4))
    assert paid.status_code == 201, paid.text
    await poll(lambda: orders_seen_by(http, guest), lambda found: len(found) == 1)
    put = await http.put(f"/api/cart/items/{item.sku_id}", json={"qty": 1}, headers=guest)
    assert put.status_code == 200, put.text

    answer = await sign_in(http, address, guest=guest)

    assert answer.status_code == 200, answer.text
    assert answer.json()["moved_orders"] == 1
    account = bearer(answer.json()["token"])
    orders = await orders_seen_by(http, account)
    assert [(o["hold_id"], o["buyer_id"]) for o in orders] == [(hold["id"], account_id)]
    assert await orders_seen_by(http, guest) == []
    cart = (await http.get("/api/cart", headers=account)).json()["cart"]
    assert [line["sku_id"] for line in cart["lines"]] == [item.sku_id]
    assert guest_id != account_id


async def test_a_guest_token_that_became_an_account_moves_nothing_into_another(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    """A token kept from before its guest signed up names that account's buyer: signing in to
    another account with it moves none of the first account's orders or cart."""
    item = await make_listing(http, seller)
    _, guest = viewer_headers(sessions)
    put = await http.put(f"/api/cart/items/{item.sku_id}", json={"qty": 1}, headers=guest)
    assert put.status_code == 200, put.text
    first = bearer((await sign_up(http, new_email(), guest=guest))["token"])
    other = new_email()
    await sign_up(http, other)

    answer = await sign_in(http, other, guest=guest)

    assert answer.status_code == 200, answer.text
    assert answer.json()["moved_orders"] == 0
    second = bearer(answer.json()["token"])
    first_cart = (await http.get("/api/cart", headers=first)).json()["cart"]
    second_cart = (await http.get("/api/cart", headers=second)).json()["cart"]
    assert [line["sku_id"] for line in first_cart["lines"]] == [item.sku_id]
    assert second_cart["lines"] == []


async def test_bad_sign_ups_and_sign_ins_are_refused_and_change_nothing(
    http: httpx.AsyncClient, sessions: GuestSessions
) -> None:
    address = new_email()

    def body(**changes: str) -> dict[str, str]:
        return {"email": address, "password": PASSWORD, "display_name": "Mina", **changes}

    refusals = [
        (body(password="password123"), 422, "weak_password"),
        (body(password="short-1"), 422, "weak_password"),
        (body(password=address), 422, "weak_password"),
        (body(email="not-an-address"), 422, "invalid_email"),
        (body(display_name=""), 422, "invalid_request"),
        ({**body(), "buyer_id": "someone-else"}, 422, "unknown_field"),
    ]
    for sent, status, code in refusals:
        assert_error(await http.post("/api/accounts", json=sent), status, code)
    assert_error(await sign_in(http, address), 401, "wrong_password")  # nothing was made

    _, guest = viewer_headers(sessions)
    made = await sign_up(http, address, guest=guest)
    assert_error(await http.post("/api/accounts", json=body()), 409, "email_taken")
    again = await http.post("/api/accounts", json=body(email=new_email()), headers=guest)
    assert_error(again, 409, "guest_claimed")
    signed_in = await http.post(
        "/api/accounts", json=body(email=new_email()), headers=bearer(made["token"])
    )
    assert_error(signed_in, 409, "guest_claimed")
    wrong = await http.post(
        "/api/accounts/sign-in", json={"email": address, "password": PASSWORD + "x"}
    )
    unknown = await http.post(
        "/api/accounts/sign-in", json={"email": new_email(), "password": PASSWORD}
    )
    assert assert_error(wrong, 401, "wrong_password") == {
        **assert_error(unknown, 401, "wrong_password"),
        "request_id": wrong.json()["error"]["request_id"],
    }
    assert_error(await http.get("/api/accounts/me", headers=guest), 401, "account_token_required")
    forged = made["token"][:-4] + ("AAAA" if not made["token"].endswith("AAAA") else "BBBB")
    assert_error(await http.get("/api/accounts/me", headers=bearer(forged)), 401, "invalid_token")


def mails_to(server: Server, address: str) -> list[email.message.Message]:
    folder = server.log.parent / "mail"
    found = [email.message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]
    return [m for m in found if m["To"] == address]


def reset_code(message: email.message.Message) -> str:
    text = message.get_payload(decode=True)
    assert isinstance(text, bytes)
    link = next(w for w in text.decode().split() if "/account/reset#" in w)
    return link.split("#", 1)[1]


async def test_a_password_reset_by_mail_works_once_and_ends_older_sessions(
    http: httpx.AsyncClient, server: Server
) -> None:
    address = new_email()
    old = bearer((await sign_up(http, address))["token"])
    nobody = await http.post("/api/accounts/password-reset", json={"email": new_email()})
    asked = await http.post("/api/accounts/password-reset", json={"email": address.upper()})

    assert (
        (nobody.status_code, nobody.json())
        == (asked.status_code, asked.json())
        == (
            202,
            {"sent": True},
        )
    )
    (message,) = await poll(lambda: _mails(server, address), lambda found: len(found) == 1)
    code = reset_code(message)
    weak = {"reset": code, "password": "password123"}
    assert_error(
        await http.post("/api/accounts/password-reset/confirm", json=weak), 422, "weak_password"
    )
    chosen = {"reset": code, "password": "another-long-phrase-77"}
    done = await http.post("/api/accounts/password-reset/confirm", json=chosen)
    assert done.status_code == 200, done.text
    new = bearer(done.json()["token"])

    assert (await http.get("/api/accounts/me", headers=new)).status_code == 200
    assert_error(await http.get("/api/accounts/me", headers=old), 401, "session_expired")
    replay = await http.post("/api/accounts/password-reset/confirm", json=chosen)
    assert_error(replay, 422, "reset_invalid")
    forged = {"reset": code[:-3] + "abc", "password": "another-long-phrase-78"}
    assert_error(
        await http.post("/api/accounts/password-reset/confirm", json=forged), 422, "reset_invalid"
    )
    assert_error(await sign_in(http, address), 401, "wrong_password")
    relogin = {"email": address, "password": "another-long-phrase-77"}
    assert (await http.post("/api/accounts/sign-in", json=relogin)).status_code == 200


async def _mails(server: Server, address: str) -> list[email.message.Message]:
    return mails_to(server, address)


async def test_mail_goes_to_files_that_a_mail_reader_opens(tmp_path: Path) -> None:
    """The file sender's messages are plain RFC 5322 files (what a person running the demo
    opens to follow a reset link)."""
    sender = FileSender(tmp_path / "mail", "livecart <no-reply@localhost>")
    await sender.send(Mail("a@example.com", "Hello", "Line one\nhttps://x/account/reset#c"))
    (path,) = (tmp_path / "mail").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes())
    assert (message["To"], message["Subject"]) == ("a@example.com", "Hello")
    assert reset_code(message) == "c"


async def test_an_accounts_only_deal_refuses_guests_and_counts_an_account_once(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    """Over HTTP, the websocket and a "SOLD" comment: a guest is refused `account_required`
    with nothing held; an account buys; its second device meets the per-buyer limit; chat shows
    the account's name, not the name its hello chose."""
    room, product, sku = await http_room(http, seller, stock=20)
    h = seller.headers
    pin = await http.post(f"/api/rooms/{room}/pin", headers=h, json={"product_id": product})
    assert pin.status_code == 200, pin.text
    on = await http.put(f"/api/rooms/{room}/comment-to-buy", headers=h, json={"keywords": ["SOLD"]})
    assert on.status_code == 200, on.text
    deal = await http_flash_deal(http, seller, room, sku, quantity=5, limit=1, accounts_only=True)
    deal_id = int(deal["deal_id"])
    await until_flash_deal_live(http, room, deal_id)
    _, guest = viewer_headers(sessions)
    address = new_email()
    phone = bearer((await sign_up(http, address))["token"])
    laptop_token = (await sign_in(http, address)).json()["token"]

    refused = await http.post(f"/api/deals/{deal_id}/reserve", headers=guest, json={"qty": 1})
    assert_error(refused, 403, "account_required")
    waiting = await http.post(f"/api/deals/{deal_id}/waitlist", headers=guest)
    assert_error(waiting, 403, "account_required")  # a unit that came back would go to a guest
    guest_ws = await WsViewer.open(server.base_url, room)
    await guest_ws.hello(guest["Authorization"].split()[1], name="guest")
    await guest_ws.send(type="buy", deal_id=deal_id, qty=1, request_id="g1")
    assert (await guest_ws.answer("g1"))["code"] == "account_required"
    await guest_ws.send(type="chat", text="SOLD")
    assert (await guest_ws.next("claim.refused", within=30))["code"] == "account_required"
    assert (await deal_stock(http, deal_id))["available"] == 5  # nothing held for a guest

    await reserve(http, deal_id, phone)
    laptop = await WsViewer.open(server.base_url, room)
    await laptop.hello(laptop_token, name="someone-else")
    await laptop.send(type="buy", deal_id=deal_id, qty=1, request_id="l1")
    assert (await laptop.answer("l1"))["code"] == "limit_exceeded"
    await laptop.send(type="chat", text="hello from the laptop")
    line = await laptop.next("chat", text="hello from the laptop")
    assert line["name"] == "Mina"
    await guest_ws.close()
    await laptop.close()


async def test_an_accounts_only_auction_and_giveaway_refuse_guests(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    """A guest's bid (HTTP and websocket) and giveaway entry are refused `account_required`
    and change nothing; an account bids and enters; a bid shows the account's name."""
    room, _product, sku = await http_room(http, seller, stock=3)
    h = seller.headers
    body = {"sku_id": sku, "start_price": 1000, "duration_s": 600, "card_required": False}
    made = await http.post(
        f"/api/rooms/{room}/auctions", headers=h, json={**body, "accounts_only": True}
    )
    assert made.status_code == 201, made.text
    auction = made.json()["auction"]
    assert auction["accounts_only"] is True
    aid = auction["auction_id"]
    given = await http.post(
        f"/api/rooms/{room}/giveaways",
        headers=h,
        json={"sku_id": sku, "duration_s": 600, "accounts_only": True},
    )
    assert given.status_code == 201, given.text
    assert given.json()["giveaway"]["accounts_only"] is True
    gid = given.json()["giveaway"]["giveaway_id"]
    _, guest = viewer_headers(sessions)
    account = bearer((await sign_up(http, new_email()))["token"])

    bids = f"/api/rooms/{room}/auctions/{aid}/bids"
    assert_error(
        await http.post(bids, headers=guest, json={"amount": 5000}), 403, "account_required"
    )
    guest_ws = await WsViewer.open(server.base_url, room)
    await guest_ws.hello(guest["Authorization"].split()[1])
    await guest_ws.send(type="bid", auction_id=aid, amount=5000, ref="b1")
    assert (await guest_ws.answer("b1"))["code"] == "account_required"
    entries = f"/api/rooms/{room}/giveaways/{gid}/entries"
    assert_error(await http.post(entries, headers=guest), 403, "account_required")
    seen = (await http.get(f"/api/rooms/{room}/auctions/{aid}")).json()["auction"]
    assert (seen["bids"], seen["leader"]) == (0, "")
    assert (await http.get(f"/api/rooms/{room}/giveaways/{gid}")).json()["giveaway"]["entries"] == 0

    bid = await http.post(bids, headers=account, json={"amount": 1500, "name": "Not me"})
    assert bid.status_code == 201, bid.text
    seen = (await http.get(f"/api/rooms/{room}/auctions/{aid}")).json()["auction"]
    assert (seen["bids"], seen["leader_name"]) == (1, "Mina")
    entered = await http.post(entries, headers=account)
    assert (entered.status_code, entered.json()) == (200, {"entries": 1})
    # An auction open to guests takes their bids, under their alias for the room.
    other = await http.post(f"/api/rooms/{room}/auctions", headers=h, json=body)
    assert other.status_code == 201, other.text
    other_id = other.json()["auction"]["auction_id"]
    assert other.json()["auction"]["accounts_only"] is False
    open_bid = await http.post(
        f"/api/rooms/{room}/auctions/{other_id}/bids",
        headers=guest,
        json={"amount": 1500, "name": "Creator"},
    )
    assert open_bid.status_code == 201, open_bid.text
    seen = (await http.get(f"/api/rooms/{room}/auctions/{other_id}")).json()["auction"]
    guest_id = guest["Authorization"].split()[1]
    assert seen["leader_name"] == sessions.alias(room, sessions.verify(guest_id))
    await guest_ws.close()


async def test_guests_are_named_by_a_per_room_alias_that_shows_nothing_of_their_id(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    """A guest's hello name is not theirs to choose: chat shows "Viewer NNNN", the same on
    every visit to the room and (almost always) another in another room, with nothing of the
    buyer id in it."""
    room, _, _ = await http_room(http, seller, stock=1)
    other_room, _, _ = await http_room(http, seller, stock=1)
    buyer, token = sessions.issue()
    names = []
    for visit in range(2):
        ws = await WsViewer.open(server.base_url, room)
        welcome = await ws.hello(token, name="The Creator")
        await ws.send(type="chat", text=f"visit {visit}")
        line = await ws.next("chat", text=f"visit {visit}")
        assert line["name"] == welcome["name"]
        names.append(line["name"])
        await ws.close()
    assert names[0] == names[1] == sessions.alias(room, buyer)
    assert names[0].startswith("Viewer ") and names[0] != "The Creator"
    assert not any(buyer[i : i + 4] in names[0] for i in range(len(buyer) - 3))
    # Over 50 rooms, one guest's aliases are not all the same (one per room, not one per guest).
    assert len({sessions.alias(r, buyer) for r in range(1, 51)}) > 40
    elsewhere = await WsViewer.open(server.base_url, other_room)
    assert (await elsewhere.hello(token))["name"] == sessions.alias(other_room, buyer)
    await elsewhere.close()


@pytest.mark.parametrize(("asked_in", "lang"), [({"lc_lang": "ja"}, "ja"), ({}, "ar")])
async def test_a_reset_mail_is_in_the_language_of_the_page_that_asked(
    http: httpx.AsyncClient, server: Server, asked_in: dict[str, str], lang: str
) -> None:
    """The switcher's cookie, else the browser's Accept-Language (decision 0047)."""
    address = new_email()
    await sign_up(http, address)
    browser = {"Accept-Language": "ar-EG,ar;q=0.9,en;q=0.5"}
    async with httpx.AsyncClient(base_url=server.base_url, cookies=asked_in) as page:
        asked = await page.post(
            "/api/accounts/password-reset", json={"email": address}, headers=browser
        )
    assert asked.status_code == 202
    (message,) = await poll(lambda: _mails(server, address), lambda found: len(found) == 1)
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == i18n.translate(lang, "mail_reset_subject")
    body = parsed.get_body().get_content()  # type: ignore[union-attr]
    words = [w.strip() for w in i18n.PLACEHOLDER.split(i18n.catalog(lang)["mail_reset_body"])]
    assert all(w in body for w in words if w not in ("", "name", "link")), body
    assert "/account/reset#" in body
    assert "Open this link" not in body  # no English left over
