"""A seller's staff over HTTP (decision 0043): every seller route and page checked against
every role, generated from the OpenAPI document and the page table (no route left out);
invitations by mail joined once; members signing in with e-mail and password; role changes,
removals and revoked tokens taking effect on the next request."""

from __future__ import annotations

import asyncio
import email
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from catalog import service
from catalog.models import Seller
from kernel.db import Database
from people import staff
from people.auth_stamps import AuthStamps
from people.roles import DUTIES, Role
from tests.conftest import SellerAccount
from tests.harness import Server
from tests.helpers import assert_error, make_seller
from tests.test_seller_pages import CSRF, login_form_csrf, sign_in
from web.app import page_routes

pytestmark = pytest.mark.storage

PASSWORD = "violet-kettle-orbit-42"
NO_SUCH_ID = "999999"  # every id in the matrix: nothing is changed by a role that may act
# Pages anyone may open: signing in, and the invitation's page (its code is the key).
PUBLIC_PAGES = {"/seller/login", "/seller/join/{token}"}
PAGE_PARAMS = {"action": "ship", "token": "x" * 43}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def role_tokens(http: httpx.AsyncClient, owner: SellerAccount) -> dict[Role, str]:
    """A scoped API token for each role (the owner's is the seller's own)."""
    tokens = {Role.OWNER: owner.token}
    for role in Role:
        if role is not Role.OWNER:
            body = {"name": f"{role} script", "role": role}
            made = await http.post("/api/staff/tokens", json=body, headers=owner.headers)
            assert made.status_code == 201, made.text
            tokens[role] = made.json()["token"]
    return tokens


def _fill(path: str, parameters: list[dict[str, Any]]) -> str:
    for param in parameters:
        if param["in"] != "path":
            continue
        schema = param["schema"]
        value = (
            sorted(schema["enum"])[0]
            if "enum" in schema
            else NO_SUCH_ID
            if schema.get("type") == "integer"
            else "nobody"
        )
        path = path.replace("{" + param["name"] + "}", value)
    return path


def _request_body(operation: dict[str, Any]) -> dict[str, Any]:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return {"json": {}}
    for media_type in content:  # an SDP offer, say: something the route will refuse
        return {"content": b"v=0", "headers": {"Content-Type": media_type}}
    return {}


def _refused_for_role(response: httpx.Response) -> bool:
    if response.status_code != 403 or "json" not in response.headers.get("content-type", ""):
        return False
    return bool(response.json()["error"]["code"] == "role_forbidden")


async def test_every_seller_route_checks_the_role_of_every_token(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    tokens = await role_tokens(http, seller)
    document = (await http.get("/openapi.json")).json()
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            schemes = {name for scheme in operation.get("security", []) for name in scheme}
            if "seller" not in schemes:
                assert "x-roles" not in operation, (method, path)
                continue
            allowed = set(operation["x-roles"])
            assert Role.OWNER in allowed, (method, path)  # the owner may do everything
            url = _fill(path, operation.get("parameters", []))
            for role, token in tokens.items():
                extra = _request_body(operation)
                headers = {**bearer(token), **extra.pop("headers", {})}
                answer = await http.request(method.upper(), url, headers=headers, **extra)
                refused = _refused_for_role(answer)
                assert refused == (role not in allowed), (role, method, path, answer.text)
                assert answer.status_code not in (401, 500), (role, method, path, answer.text)
                checked += 1
    seller_routes = sum(
        1
        for operations in document["paths"].values()
        for operation in operations.values()
        if any("seller" in scheme for scheme in operation.get("security", []))
    )
    assert seller_routes > 60 and checked == seller_routes * len(Role)


def _seller_pages() -> list[tuple[str, str, Any]]:
    """(method, path, duty) of every seller page, from the app's page table."""
    pages = []
    for route in page_routes():
        if not isinstance(route, Route):
            continue
        if not route.path.startswith(("/seller", "/studio")) or route.path in PUBLIC_PAGES:
            continue
        duty = getattr(route.endpoint, "duty", None)
        assert duty is not None, f"{route.path} names no duty"  # none left out
        for method in sorted((route.methods or set()) - {"HEAD"}):
            pages.append((method, route.path, duty))
    return pages


def _page_path(path: str, action: str | None) -> str:
    path = re.sub(r"\{\w+:id\}", NO_SUCH_ID, path)
    params = {**PAGE_PARAMS, **({"action": action} if action else {})}
    return re.sub(r"\{(\w+)\}", lambda m: params[m.group(1)], path)


@pytest.fixture
async def role_browsers(
    http: httpx.AsyncClient, seller: SellerAccount, server: Server
) -> AsyncIterator[dict[Role, tuple[httpx.AsyncClient, str]]]:
    """A browser signed in to the seller center with each role's token, and its CSRF token."""
    tokens = await role_tokens(http, seller)
    browsers: dict[Role, tuple[httpx.AsyncClient, str]] = {}
    try:
        for role, token in tokens.items():
            client = httpx.AsyncClient(base_url=server.base_url, timeout=30)
            browsers[role] = (client, await sign_in(client, token))
        yield browsers
    finally:
        for client, _ in browsers.values():
            await client.aclose()


async def test_every_seller_page_checks_the_role_of_who_signed_in(
    role_browsers: dict[Role, tuple[httpx.AsyncClient, str]],
) -> None:
    # Signing out last: it ends the session the other pages use.
    pages = sorted(_seller_pages(), key=lambda page: page[1] == "/seller/logout")
    assert len(pages) >= 20
    for method, path, duty in pages:
        cases = duty.items() if isinstance(duty, dict) else [(None, duty)]
        for action, needed in cases:
            url = _page_path(path, action)
            for role, (client, csrf) in role_browsers.items():
                if method == "GET":
                    answer = await client.get(url)
                else:
                    answer = await client.post(url, data={"csrf": csrf})
                refused = answer.status_code == 403 and "may not do this" in answer.text
                allowed = needed in DUTIES[role]
                assert refused == (not allowed), (role, method, url, answer.status_code)
                assert answer.status_code != 500, (role, method, url)


def mails_to(server: Server, address: str) -> list[email.message.Message]:
    folder = server.log.parent / "mail"
    found = [email.message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]
    return [m for m in found if m["To"] == address]


def invitation_code(server: Server, address: str) -> str:
    (message,) = mails_to(server, address)
    text = message.get_payload(decode=True)
    assert isinstance(text, bytes)
    link = next(word for word in text.decode().split() if "/seller/join/" in word)
    return link.rsplit("/", 1)[1]


async def account(http: httpx.AsyncClient, address: str) -> dict[str, Any]:
    body = {"email": address, "password": PASSWORD, "display_name": "Sam"}
    made = await http.post("/api/accounts", json=body)
    assert made.status_code == 201, made.text
    answer: dict[str, Any] = made.json()
    return answer


def new_address(seller: SellerAccount, who: str) -> str:
    return f"{who}-{seller.seller.id}-{id(seller)}@example.com"


async def test_an_invitation_joins_once_by_its_email_and_the_member_signs_in_with_a_password(
    http: httpx.AsyncClient, seller: SellerAccount, server: Server
) -> None:
    address = new_address(seller, "host")
    invited = await http.post(
        "/api/staff/invitations", json={"email": address.upper(), "role": "host"}, **_h(seller)
    )
    assert invited.status_code == 201, invited.text
    assert invited.json()["mailed"] is True and invited.json()["email"] == address
    code = invitation_code(server, address)

    stranger = await account(http, new_address(seller, "stranger"))
    wrong = await http.post(
        "/api/staff/join", json={"invitation": code}, headers=bearer(stranger["token"])
    )
    assert_error(wrong, 403, "invitation_email_mismatch")

    mine = await account(http, address)
    # Ten joins at once with the same code: one member, the rest refused, nothing half-done.
    answers = await asyncio.gather(
        *(
            http.post("/api/staff/join", json={"invitation": code}, headers=bearer(mine["token"]))
            for _ in range(10)
        )
    )
    assert sorted(a.status_code for a in answers) == [201] + [404] * 9
    listed = (await http.get("/api/staff", headers=seller.headers)).json()
    assert [m["email"] for m in listed["members"]] == [address]
    assert listed["members"][0]["role"] == "host" and listed["invitations"] == []

    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as browser:
        page = await browser.get("/seller/login")
        csrf = login_form_csrf(page.text)
        signed = await browser.post(
            "/seller/login", data={"csrf": csrf, "email": address, "password": PASSWORD}
        )
        assert signed.status_code == 303, signed.text
        me = (await browser.get("/api/staff/me")).json()
        assert me == {
            "seller_id": seller.seller.id,
            "seller_name": seller.seller.name,
            "role": "host",
            "duties": ["lives", "read"],
        }
        assert_error(await browser.get("/api/finance"), 403, "role_forbidden")


def _h(seller: SellerAccount) -> dict[str, Any]:
    return {"headers": seller.headers}


async def clerk(
    http: httpx.AsyncClient, seller: SellerAccount, server: Server
) -> tuple[str, dict[str, Any], int]:
    """A fulfilment member of ``seller``, invited and joined: their e-mail, account (with its
    token) and member id."""
    address = new_address(seller, "clerk")
    await http.post(
        "/api/staff/invitations", json={"email": address, "role": "fulfilment"}, **_h(seller)
    )
    mine = await account(http, address)
    joined = await http.post(
        "/api/staff/join",
        json={"invitation": invitation_code(server, address)},
        headers=bearer(mine["token"]),
    )
    assert joined.status_code == 201, joined.text
    member_id: int = joined.json()["member_id"]
    return address, mine, member_id


async def test_role_changes_removals_and_revocations_apply_to_the_next_request(
    http: httpx.AsyncClient, seller: SellerAccount, server: Server, db: Database
) -> None:
    address, _, member_id = await clerk(http, seller, server)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as browser:
        page = await browser.get("/seller/login")
        csrf = login_form_csrf(page.text)
        await browser.post(
            "/seller/login", data={"csrf": csrf, "email": address, "password": PASSWORD}
        )
        orders = await browser.get("/api/orders")
        assert orders.status_code == 200, orders.text
        assert_error(await browser.get("/api/finance"), 403, "role_forbidden")

        changed = await http.put(
            f"/api/staff/members/{member_id}", json={"role": "finance"}, **_h(seller)
        )
        assert changed.status_code == 204
        assert not _refused_for_role(await browser.get("/api/finance"))  # (422: no ?shop_id)

        removed = await http.delete(f"/api/staff/members/{member_id}", **_h(seller))
        assert removed.status_code == 204
        assert_error(await browser.get("/api/orders"), 401, "session_expired")

    # The owner's place is fixed: an admin cannot demote or remove them, nor make an owner.
    owner_account = await account(http, new_address(seller, "owner"))
    async with db.session() as session:
        assert seller.seller.id is not None
        owner = await staff.add_owner(session, seller.seller.id, owner_account["account"]["id"])
    admin = (
        await http.post("/api/staff/tokens", json={"name": "ops", "role": "admin"}, **_h(seller))
    ).json()
    as_admin = bearer(admin["token"])
    demote = await http.put(
        f"/api/staff/members/{owner.id}", json={"role": "host"}, headers=as_admin
    )
    assert_error(demote, 409, "owner_fixed")
    assert_error(
        await http.delete(f"/api/staff/members/{owner.id}", headers=as_admin), 409, "owner_fixed"
    )
    promote = await http.post(
        "/api/staff/invitations", json={"email": "x@example.com", "role": "owner"}, headers=as_admin
    )
    assert_error(promote, 422, "invalid_request")

    # A revoked token stops at once.
    assert (await http.get("/api/staff", headers=as_admin)).status_code == 200
    revoked = await http.delete(f"/api/staff/tokens/{admin['id']}", **_h(seller))
    assert revoked.status_code == 204
    assert_error(await http.get("/api/staff", headers=as_admin), 401, "invalid_token")
    again = await http.delete(f"/api/staff/tokens/{admin['id']}", **_h(seller))
    assert_error(again, 404, "token_not_found")


async def test_another_sellers_staff_ids_are_not_found(
    http: httpx.AsyncClient, seller: SellerAccount, db: Database
) -> None:
    address = new_address(seller, "other")
    invitation = await http.post(
        "/api/staff/invitations", json={"email": address, "role": "host"}, **_h(seller)
    )
    token = await http.post("/api/staff/tokens", json={"name": "x", "role": "admin"}, **_h(seller))
    invitation_id, token_id = invitation.json()["id"], token.json()["id"]
    other = bearer((await make_seller(db)).token)
    withdraw = await http.delete(f"/api/staff/invitations/{invitation_id}", headers=other)
    assert_error(withdraw, 404, "invitation_invalid")
    revoke = await http.delete(f"/api/staff/tokens/{token_id}", headers=other)
    assert_error(revoke, 404, "token_not_found")
    listed = (await http.get("/api/staff", headers=seller.headers)).json()
    assert invitation_id in [i["id"] for i in listed["invitations"]]
    tokens = (await http.get("/api/staff/tokens", headers=seller.headers)).json()["tokens"]
    assert token_id in [t["id"] for t in tokens if t["revoked_ms"] is None]


async def test_an_owner_token_whose_hash_starts_with_a_letter_signs_in(
    db: Database, server: Server, auth_stamps: AuthStamps
) -> None:
    """The page session's tag of an owner's token is 16 hex digits: one starting with "a" must
    not be read as a member's tag (it was, once: a 500)."""
    owner = await make_seller(db)
    async with db.session() as session:
        found = await session.get(Seller, owner.seller.id)
        assert found is not None
        token = await service.rotate_token(session, auth_stamps, found)
        while not found.token_hash.startswith("a"):
            token = await service.rotate_token(session, auth_stamps, found)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as browser:
        await sign_in(browser, token)  # the seller center opens (200) with the cookie


SECTIONS = {  # a seller center section, and the roles that see it
    'id="orders"': {Role.OWNER, Role.ADMIN, Role.FULFILMENT, Role.FINANCE},
    'id="finance"': {Role.OWNER, Role.ADMIN, Role.FINANCE},
    'id="tile-today-sales"': {Role.OWNER, Role.ADMIN, Role.FINANCE},
    'id="promotions"': {Role.OWNER, Role.ADMIN},
    'id="add-product"': {Role.OWNER, Role.ADMIN},
    'id="staff"': {Role.OWNER, Role.ADMIN},
    'class="inline-form room-form"': {Role.OWNER, Role.ADMIN, Role.HOST},
    'id="deals"': set(Role),
    'id="live"': set(Role),
}


async def test_the_seller_center_shows_each_role_only_its_sections(
    role_browsers: dict[Role, tuple[httpx.AsyncClient, str]],
) -> None:
    for role, (client, _) in role_browsers.items():
        center = await client.get("/seller")
        assert center.status_code == 200
        shown = {marker for marker in SECTIONS if marker in center.text}
        assert shown == {marker for marker, roles in SECTIONS.items() if role in roles}, role


async def test_the_staff_forms_invite_a_member_who_joins_on_the_page_and_make_a_token(
    role_browsers: dict[Role, tuple[httpx.AsyncClient, str]], server: Server
) -> None:
    owner, csrf = role_browsers[Role.OWNER]
    made = await owner.post(
        "/seller/staff/tokens", data={"csrf": csrf, "name": "ci", "role": "host"}
    )
    assert made.status_code == 200
    (token,) = re.findall(r"shown only now: (lc_sk_[A-Za-z0-9_-]+)", made.text)
    me = await owner.get("/api/staff/me", headers=bearer(token))
    assert me.json()["role"] == "host"
    refused = await owner.post(
        "/seller/staff/tokens", data={"csrf": csrf, "name": "", "role": "host"}
    )
    assert refused.status_code == 422 and 'id="staff"' in refused.text

    address = f"packer-{id(owner)}@example.com"
    invited = await owner.post(
        "/seller/staff/invitations", data={"csrf": csrf, "email": address, "role": "fulfilment"}
    )
    assert invited.status_code == 303
    code = invitation_code(server, address)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as newcomer:
        page = await newcomer.get(f"/seller/join/{code}")
        assert page.status_code == 200 and "Make an account" in page.text
        (join_csrf,) = CSRF.findall(page.text)
        weak = await newcomer.post(
            f"/seller/join/{code}", data={"csrf": join_csrf, "password": "password"}
        )
        assert weak.status_code == 422  # refused, and the invitation is still good
        joined = await newcomer.post(
            f"/seller/join/{code}",
            data={"csrf": join_csrf, "password": PASSWORD, "display_name": "Pat"},
        )
        assert joined.status_code == 303, joined.text
        assert (await newcomer.get("/api/staff/me")).json()["role"] == "fulfilment"
        used = await newcomer.get(f"/seller/join/{code}")
        assert used.status_code == 404 and "not valid" in used.text
    center = await owner.get("/seller")
    assert address in center.text and "Pat" in center.text


async def test_a_member_of_two_sellers_switches_between_them(
    http: httpx.AsyncClient, seller: SellerAccount, server: Server, db: Database
) -> None:
    other = await make_seller(db, "Second Shop Co")
    address = new_address(seller, "both")
    mine = await account(http, address)
    for owner, role in ((seller, "host"), (other, "finance")):
        await http.post(
            "/api/staff/invitations", json={"email": address, "role": role}, **_h(owner)
        )
        code = _newest_code(server, address)
        joined = await http.post(
            "/api/staff/join", json={"invitation": code}, headers=bearer(mine["token"])
        )
        assert joined.status_code == 201, joined.text
    stranger = await make_seller(db, "Not Mine")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as browser:
        page = await browser.get("/seller/login")
        csrf = login_form_csrf(page.text)
        await browser.post(
            "/seller/login", data={"csrf": csrf, "email": address, "password": PASSWORD}
        )
        me = (await browser.get("/api/staff/me")).json()
        assert (me["seller_id"], me["role"]) == (seller.seller.id, "host")
        center = await browser.get("/seller")
        assert 'id="switch-seller"' in center.text and "Second Shop Co" in center.text
        (csrf,) = set(CSRF.findall(center.text))
        refused = await browser.post(
            "/seller/switch", data={"csrf": csrf, "seller_id": str(stranger.seller.id)}
        )
        assert refused.status_code == 403
        assert (await browser.get("/api/staff/me")).json()["seller_id"] == seller.seller.id
        switched = await browser.post(
            "/seller/switch", data={"csrf": csrf, "seller_id": str(other.seller.id)}
        )
        assert switched.status_code == 303, switched.text
        me = (await browser.get("/api/staff/me")).json()
        assert (me["seller_id"], me["role"]) == (other.seller.id, "finance")


def _newest_code(server: Server, address: str) -> str:
    """The code of the last invitation mailed to ``address`` (files are named in order)."""
    (*_, message) = mails_to(server, address)
    text = message.get_payload(decode=True)
    assert isinstance(text, bytes)
    link = next(word for word in text.decode().split() if "/seller/join/" in word)
    return link.rsplit("/", 1)[1]
