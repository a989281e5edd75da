"""Follows in a real browser (Debian's Chromium): a signed-in viewer follows the creator from
the live page, the creator's next room goes live, and the viewer's home page shows it in the
notification bell, which opening marks read; a guest is offered a sign-up instead."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.browser import PHONE, new_page
from tests.conftest import SellerAccount
from tests.harness import Server
from tests.helpers import http_room
from tests.test_addresses_browser import signed_in_page
from tests.test_follows import new_account, notifications

pytestmark = pytest.mark.storage


async def test_a_follower_sees_the_creators_next_live_on_the_home_page(
    browser: Browser, server: Server, http: httpx.AsyncClient, seller: SellerAccount, shots: Path
) -> None:
    base = server.base_url
    _, account = await new_account(http)
    first, _, _ = await http_room(http, seller, image="/static/img/jacket.svg")
    ctx, viewer = await signed_in_page(browser, base, account)
    try:
        page = viewer.page
        await page.goto(f"{base}/live/{first}?lang=en")
        follow = page.locator("#follow-button")
        await expect(follow).to_have_text("Follow", timeout=20_000)
        await expect(page.locator("#follow-sign-up")).to_be_hidden()
        await follow.click()
        await expect(follow).to_have_attribute("aria-pressed", "true")
        await expect(follow).to_have_text("Following")
        await expect(page.locator("#followers")).to_have_text("Followers: 1")
        await page.screenshot(path=shots / "live-follow-phone.png")

        nxt, _, _ = await http_room(http, seller, live=False)
        await page.goto(f"{base}/?lang=en")
        remind = page.locator(f"button.remind[data-room='{nxt}']")
        await expect(remind).to_have_text("Remind me")
        await remind.click()  # a follower who also asked is still told once
        await expect(remind).to_have_attribute("aria-pressed", "true")
        await expect(remind).to_have_text("Reminder set")
        await expect(page.locator("#bell-count")).to_be_hidden()
        went = await http.post(f"/api/rooms/{nxt}/live", headers=seller.headers)
        assert went.status_code == 200, went.text

        await page.reload()
        await expect(page.locator("#bell-count")).to_have_text("1")
        await page.locator("#bell summary").click()
        notice = page.locator("#notices a")
        await expect(notice).to_have_text("Test Seller is live: Test live")
        await expect(notice).to_have_attribute("href", f"/live/{nxt}")
        await page.screenshot(path=shots / "home-notification-phone.png")
        await expect(page.locator("#bell-count")).to_be_hidden()
        assert (await notifications(http, account))["unread"] == 0
        viewer.assert_clean()
    finally:
        await ctx.close()


async def test_a_guest_is_offered_a_sign_up_to_follow(
    browser: Browser, server: Server, http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    base = server.base_url
    room, _, _ = await http_room(http, seller, image="/static/img/jacket.svg")
    ctx, viewer = await new_page(browser, "guest", **PHONE)
    try:
        page = viewer.page
        await page.goto(f"{base}/live/{room}?lang=en")
        link = page.locator("#follow-sign-up")
        await expect(link).to_have_text("Sign up to follow", timeout=20_000)
        await expect(link).to_have_attribute("href", f"/account?next=/live/{room}")
        await expect(page.locator("#follow-button")).to_be_hidden()

        await page.goto(f"{base}/?lang=en")
        await expect(page.locator("#bell")).to_have_count(1)
        await expect(page.locator("#bell")).to_be_hidden()

        await page.goto(f"{base}/shop/{seller.shop.handle}?lang=en")
        await expect(page.locator("#follow-sign-up")).to_be_visible()
        await expect(page.locator("#followers")).to_have_text("Followers: 0")
        viewer.assert_clean()
    finally:
        await ctx.close()
