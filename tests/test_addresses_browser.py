"""Saved addresses in a real browser (Debian's Chromium): a signed-in viewer's checkout sheet
arrives filled with the account's default address (not the one the browser remembers) and
saves a new one when asked; the account page lists, adds, deletes and chooses the default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser import PHONE, Watched, new_page
from tests.conftest import SellerAccount
from tests.harness import Server
from tests.helpers import http_flash_deal, http_room, poll, reserve, until_flash_deal_live
from tests.test_addresses import add, address, new_account, saved
from tests.test_pages import CARD

pytestmark = pytest.mark.storage

REMEMBERED = address(name="Someone Else", line1="9 Old Street", city="Leeds", country="GB")


async def signed_in_page(
    browser: Browser, base: str, account: dict[str, str]
) -> tuple[BrowserContext, Watched]:
    """A phone whose browser keeps the account's session (as the account page leaves it) and
    remembers another address from an earlier checkout."""
    token = account["Authorization"].removeprefix("Bearer ")
    async with httpx.AsyncClient(base_url=base, headers=account) as http:
        me = (await http.get("/api/accounts/me")).json()
    session = {"token": token, "buyer_id": me["buyer_id"], "account": me}
    ctx, viewer = await new_page(browser, "signed-in viewer", **PHONE)
    await ctx.add_init_script(
        f"localStorage.setItem('livecart.guest', {json.dumps(json.dumps(session))});"
        f"localStorage.setItem('livecart.address', {json.dumps(json.dumps(REMEMBERED))});"
    )
    return ctx, viewer


async def form_shows(page: Page, form: str, expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        await expect(page.locator(f"#{form} [name={name}]")).to_have_value(value)


async def test_a_signed_in_viewers_checkout_arrives_with_the_default_address(
    browser: Browser, server: Server, http: httpx.AsyncClient, seller: SellerAccount, shots: Path
) -> None:
    base = server.base_url
    account = await new_account(http)
    await add(http, account, name="Home")
    office = await add(http, account, name="Mina at the office", line1="1 Tower Lane", default=True)
    room, _product, sku = await http_room(http, seller, image="/static/img/jacket.svg")
    deal_id = int((await http_flash_deal(http, seller, room, sku))["deal_id"])
    await until_flash_deal_live(http, room, deal_id)
    await reserve(http, deal_id, account)
    ctx, viewer = await signed_in_page(browser, base, account)
    try:
        page = viewer.page
        await page.goto(f"{base}/live/{room}?lang=en")
        await expect(page.locator("#checkout")).to_be_visible(timeout=20_000)  # the open hold
        await form_shows(page, "pay-form", {k: office[k] for k in address()})

        # Paying to a new address, ticked to be saved, keeps it on the account.
        await expect(page.locator("#pay-form .save-address")).to_be_visible()
        new = address(name="Mina at the cabin", line1="7 Pine Ridge", city="Sokcho")
        for name in ("name", "line1", "city"):
            await page.fill(f"#pay-form [name={name}]", new[name])
        await page.check("#pay-form [name=save_address]")
        await page.screenshot(path=shots / "checkout-saved-address-phone.png")
        await page.fill("#pay-form [name=card]", CARD)
        await page.click("#pay")
        await expect(page.locator("#order-number[data-order-id]")).to_be_visible(timeout=20_000)
        kept = await poll(lambda: saved(http, account), lambda found: len(found) == 3)
        assert [(a["name"], a["line1"], a["is_default"]) for a in kept] == [
            ("Mina at the office", "1 Tower Lane", True),
            ("Mina at the cabin", "7 Pine Ridge", False),
            ("Home", "12 Harbour Road", False),
        ]
        viewer.assert_clean()
    finally:
        await ctx.close()


async def test_the_account_page_keeps_the_addresses(
    browser: Browser, server: Server, http: httpx.AsyncClient, shots: Path
) -> None:
    base = server.base_url
    account = await new_account(http)
    await add(http, account, name="Home")
    ctx, viewer = await signed_in_page(browser, base, account)
    try:
        page = viewer.page
        await page.goto(f"{base}/account?lang=en")
        items = page.locator("#address-list li")
        await expect(items).to_have_count(1)
        await expect(items.first).to_contain_text("Home")
        await expect(items.first.locator(".badge")).to_have_text("Default")

        form = page.locator("#add-address")
        await form.locator("[name=name]").fill("Work")
        await form.locator("[name=line1]").fill("1 Tower Lane")
        await form.locator("[name=city]").fill("Seoul")
        await form.locator("[name=postal_code]").fill("04524")
        await form.locator("[name=country]").select_option("KR")
        await form.locator("button[type=submit]").click()
        await expect(items).to_have_count(2)
        await expect(form.locator("[name=name]")).to_have_value("")

        work = items.filter(has_text="Work")
        await expect(work).to_contain_text("South Korea")
        await work.get_by_role("button", name="Make default").click()
        await expect(items.first).to_contain_text("Work")
        await expect(items.first.locator(".badge")).to_have_text("Default")
        await expect(page.locator("#address-list .badge")).to_have_count(1)
        await page.screenshot(path=shots / "account-addresses-phone.png", full_page=True)

        await items.filter(has_text="Home").get_by_role("button", name="Delete").click()
        await expect(items).to_have_count(1)
        assert [(a["name"], a["is_default"]) for a in await saved(http, account)] == [
            ("Work", True)
        ]
        viewer.assert_clean()
    finally:
        await ctx.close()
