"""Passkeys on the account page in Debian's Chromium with its virtual authenticator (CDP's
WebAuthn domain: a platform authenticator that keeps discoverable credentials and verifies the
user without a prompt): sign up with a password, add a passkey, sign out, sign in with the
passkey. And at http://127.0.0.1, where WebAuthn cannot work, the page offers no passkey button
and names the address that works. Every console error or failed request fails the test."""

from __future__ import annotations

import secrets

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser import DESKTOP, new_page
from tests.harness import Server
from tests.test_accounts import PASSWORD

pytestmark = pytest.mark.storage

VIRTUAL_AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


async def sign_up(page: Page, email: str) -> None:
    form = page.locator("#sign-up")
    await form.locator("[name=display_name]").fill("Mina")
    await form.locator("[name=email]").fill(email)
    await form.locator("[name=password]").fill(PASSWORD)
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#signed-in")).to_be_visible()
    await expect(page.locator("#signed-in-as")).to_have_text(f"Signed in as Mina ({email}).")


async def test_a_buyer_adds_a_passkey_and_signs_in_with_it(
    browser: Browser, server: Server
) -> None:
    ctx, watched = await new_page(browser, "passkey account page", **DESKTOP)
    try:
        page = watched.page
        cdp = await ctx.new_cdp_session(page)
        await cdp.send("WebAuthn.enable")
        added = await cdp.send(
            "WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_AUTHENTICATOR}
        )
        await page.goto(f"http://localhost:{server.port}/account")
        email = f"passkey-{secrets.token_hex(6)}@example.com"
        await sign_up(page, email)

        await expect(page.locator("#no-passkeys")).to_be_visible()
        await page.locator("#passkey-name").fill("Laptop")
        await page.click("#add-passkey")
        await expect(page.locator("#passkey-list li")).to_have_text(["Laptop Delete"])
        await expect(page.locator("#no-passkeys")).to_be_hidden()
        kept = await cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": added["authenticatorId"]}
        )
        assert [c["isResidentCredential"] for c in kept["credentials"]] == [True]

        await page.click("#sign-out")
        await expect(page.locator("#sign-in")).to_be_visible()
        await expect(page.locator("#signed-in")).to_be_hidden()
        assert await page.locator("#passkey-list li").count() == 0
        await page.click("#passkey-sign-in")

        # Only a sign-in shows this part again (its text is left from before the sign-out).
        await expect(page.locator("#signed-in")).to_be_visible()
        await expect(page.locator("#signed-in-as")).to_have_text(f"Signed in as Mina ({email}).")
        await expect(page.locator("#passkey-list li")).to_have_text(["Laptop Delete"])
        token = await page.evaluate("JSON.parse(localStorage.getItem('livecart.guest')).token")
        assert token.startswith("lc_as_")
        kept = await cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": added["authenticatorId"]}
        )
        assert [c["signCount"] for c in kept["credentials"]] == [2]  # made, then used once
        watched.assert_clean()
    finally:
        await ctx.close()


async def test_at_an_ip_address_the_page_names_the_address_that_works(
    browser: Browser, server: Server
) -> None:
    ctx, watched = await new_page(browser, "passkeys at an IP address", **DESKTOP)
    try:
        page = watched.page
        await page.goto(f"{server.base_url}/account")
        await expect(page.locator("#sign-in")).to_be_visible()
        await expect(page.locator("#passkey-sign-in")).to_be_hidden()
        await sign_up(page, f"by-address-{secrets.token_hex(6)}@example.com")

        await expect(page.locator("#passkeys-need-name")).to_contain_text(
            f"http://localhost:{server.port}"
        )
        assert await page.locator("#add-passkey").count() == 0
        watched.assert_clean()
    finally:
        await ctx.close()
