"""Auctions and giveaways in a real browser (Debian's Chromium): the creator starts an auction
from the studio, two phone viewers bid, the one outbid sees it, a late bid moves the countdown,
the winner pays the hammer price and gets the order; then a giveaway is entered, drawn from the
studio, and its prize claimed as a free order."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser import DESKTOP, PHONE, joined, new_page, overflowing
from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.test_pages import ADDRESS, CARD, sign_in
from tests.test_pages import shop as shop  # the fixture: a jacket and a mug
from web.auth import GuestSessions

pytestmark = pytest.mark.storage


async def _live_room(base: str, seller: SellerAccount) -> int:
    async with httpx.AsyncClient(base_url=base, headers=seller.headers) as http:
        room = (
            await http.post("/api/rooms", json={"shop_id": seller.shop.id, "title": "Auction"})
        ).json()["room"]
        found = await http.get("/api/products", params={"shop_id": seller.shop.id})
        for product in found.json()["products"]:
            await http.post(f"/api/rooms/{room['id']}/bag", json={"product_id": product["id"]})
        assert (await http.post(f"/api/rooms/{room['id']}/live")).status_code == 200
    return int(room["id"])


async def _pay(page: Page) -> int:
    """Fill the checkout sheet that opened by itself and pay: the order number."""
    await expect(page.locator("#checkout")).to_be_visible(timeout=30_000)
    for name, value in ADDRESS.items():
        await page.fill(f"#pay-form [name={name}]", value)
    await page.select_option("#pay-form [name=country]", "GB")
    await page.fill("#pay-form [name=card]", CARD)
    await page.click("#pay")
    number = page.locator("#order-number[data-order-id]")
    await expect(number).to_be_visible(timeout=20_000)
    return int(await number.get_attribute("data-order-id") or 0)


async def _keep_a_card(page: Page) -> None:
    """The first bid asks for a card on file (charged if the bidder wins): give one."""
    await expect(page.locator("#card-sheet")).to_be_visible()
    for name, value in ADDRESS.items():
        await page.fill(f"#card-form [name={name}]", value)
    await page.select_option("#card-form [name=country]", "GB")
    await page.fill("#card-form [name=card]", CARD)
    await page.click("#card-save")
    await expect(page.locator("#card-sheet")).to_be_hidden()


async def _ends_ms(page: Page) -> int:
    return int(await page.locator("#auction-clock").get_attribute("data-ends-ms") or 0)


async def test_an_auction_and_a_giveaway_from_the_studio_to_the_phones(
    browser: Browser, server: Server, shop: SellerAccount
) -> None:
    base = server.base_url
    room_id = await _live_room(base, shop)
    studio_ctx, studio = await new_page(browser, "studio", **DESKTOP)
    ctx_a, viewer_a = await new_page(browser, "bidder A", **PHONE)
    ctx_b, viewer_b = await new_page(browser, "bidder B", **PHONE)
    try:
        creator = studio.page
        await sign_in(creator, base, shop.token, then=f"/studio/{room_id}")
        await expect(creator.locator("#auction-sku option")).not_to_have_count(0)
        a, b = viewer_a.page, viewer_b.page
        for page in (a, b):
            await page.goto(f"{base}/live/{room_id}?lang=en")
            await joined(page)

        # A 20-second auction whose last 15 seconds are anti-snipe: a bid then moves the close.
        await creator.fill("#auction-start", "10.00")
        await creator.fill("#auction-duration", "20")
        await creator.fill("#auction-snipe", "15")
        await creator.click("#start-auction")
        await expect(creator.locator("#auctions .auction-item")).to_have_count(1)
        for page in (a, b):
            await expect(page.locator("#auction-panel")).to_be_visible()
            await expect(page.locator("#auction-price")).to_have_text("Starting bid $10.00")
        assert await overflowing(a, "#auction-panel") == []

        await a.click("#bid-min")
        await _keep_a_card(a)  # the bid goes once the card is on file
        await expect(a.locator("#auction-standing")).to_have_text("You're winning")
        await expect(b.locator("#bid-min")).to_have_text("Bid $10.50")
        # B waits for the last 15 seconds (the anti-snipe window) before bidding: the close moves.
        await expect(b.locator("#auction-clock")).to_have_text(
            re.compile(r"Closes in 0:(0\d|1[0-4])$"), timeout=20_000
        )
        before = await _ends_ms(b)
        await b.click("#bid-min")
        await _keep_a_card(b)
        await expect(b.locator("#auction-standing")).to_have_text("You're winning")
        await expect(a.locator("#auction-standing")).to_have_text("You've been outbid")
        await expect(a.locator("#auction-price")).to_have_text("Current bid $10.50")
        assert await _ends_ms(a) > before

        # A answers with a maximum of 15.00: the price goes only one step past B's bid.
        await a.fill("#bid-max", "15")
        await a.click("#bid-form button[type=submit]")
        await expect(a.locator("#auction-standing")).to_have_text("You're winning")
        await expect(b.locator("#auction-price")).to_have_text("Current bid $11.00")
        await expect(b.locator("#auction-standing")).to_have_text("You've been outbid")

        # The close: A won at 11.00, charged at once to the card on file; the order follows.
        await expect(a.locator("#auction-standing")).to_have_text(
            re.compile(r"^Order #\d+$"), timeout=40_000
        )
        await expect(b.locator("#auction-standing")).to_contain_text("for $11.00")

        # A giveaway: B enters with one tap; the creator draws it at once; B claims the prize.
        await creator.fill("#giveaway-duration", "300")
        await creator.click("#start-giveaway")
        await expect(b.locator("#giveaway-panel")).to_be_visible()
        await b.click("#giveaway-enter")
        await expect(b.locator("#giveaway-enter")).to_have_text("You're in")
        await expect(b.locator("#giveaway-entries")).to_have_text("1 entered")
        assert await overflowing(b, "#giveaway-panel") == []
        await creator.click("#giveaways button:has-text('Draw now')")
        await expect(b.locator("#giveaway-result")).to_have_text(
            "You won! Claim it", timeout=30_000
        )
        await expect(b.locator("#giveaway-check")).to_be_visible()
        await expect(b.locator("#pay")).to_have_text("Pay $0.00")
        assert await _pay(b) > 0

        # The seller center's live rooms list what ran: the auction sold at 11.00, the giveaway.
        await creator.goto(f"{base}/seller")
        history = creator.locator("#formats-history tbody tr")
        await expect(history).to_have_count(2)
        sold = creator.locator("#formats-history tbody tr", has_text="auction")
        await expect(sold).to_contain_text("sold")
        await expect(sold.locator(".hammer")).to_have_text("$11.00")
        await expect(
            creator.locator("#formats-history tbody tr", has_text="giveaway")
        ).to_have_count(1)
        for watched in (studio, viewer_a, viewer_b):
            watched.assert_clean()
    finally:
        for ctx in (studio_ctx, ctx_a, ctx_b):
            await ctx.close()


async def test_a_sold_out_product_is_waited_for_from_the_bag_and_paid_when_a_unit_comes_back(
    browser: Browser, server: Server, shop: SellerAccount, sessions: GuestSessions
) -> None:
    """The mug's last unit is held by someone else: a phone viewer opens it from the bag, sees
    it sold out and joins its line; the holder gives it back, and the viewer's page checks the
    kept unit out by itself and opens the payment, which makes the order."""
    base = server.base_url
    room_id = await _live_room(base, shop)
    async with httpx.AsyncClient(base_url=base, headers=shop.headers) as http:
        products = (await http.get("/api/products", params={"shop_id": shop.shop.id})).json()
        mug = next(p for p in products["products"] if p["title"] == "Stoneware mug")
        found = (await http.get(f"/api/products/{mug['id']}")).json()
        sku = found["product"]["skus"][0]["id"]
        assert (await http.patch(f"/api/skus/{sku}", json={"stock": 1})).status_code == 200
    _holder, holder = viewer_headers(sessions)
    async with httpx.AsyncClient(base_url=base, headers=holder) as http:
        body = {"items": [{"sku_id": sku, "qty": 1}], "shop_id": shop.shop.id}
        held = await http.post("/api/cart/checkout", json=body)
        assert held.status_code == 201, held.text
        hold_id = held.json()["hold"]["id"]
    ctx, viewer = await new_page(browser, "waiting viewer", **PHONE)
    try:
        page = viewer.page
        await page.goto(f"{base}/live/{room_id}?lang=en")
        await joined(page)
        await page.click("#bag-button")
        await (
            page.locator("#bag-items .bag-item", has_text="Stoneware mug").locator("button").click()
        )
        await expect(page.locator("#sheet-stock")).to_have_text("Sold out")
        await expect(page.locator("#sheet-buy")).to_be_disabled()
        await page.click("#sheet-wait")
        await expect(page.locator("#sheet-stock")).to_have_text("You're number 1 in line")
        await expect(page.locator("#sheet-wait")).to_be_hidden()
        await page.locator("#product-sheet .sheet-close button").click()

        async with httpx.AsyncClient(base_url=base, headers=holder) as http:
            assert (await http.delete(f"/api/holds/{hold_id}")).status_code == 204
        await expect(page.locator("#cart-pay")).to_be_visible(timeout=20_000)
        await expect(page.locator("#cart-hold-total")).to_have_text("$24.00")
        for name, value in ADDRESS.items():
            await page.fill(f"#cart-pay-form [name={name}]", value)
        await page.select_option("#cart-pay-form [name=country]", "GB")
        await page.fill("#cart-pay-form [name=card]", CARD)
        await page.click("#cart-pay-submit")
        await expect(page.locator("#cart-order-number[data-order-id]")).to_be_visible(
            timeout=20_000
        )
        viewer.assert_clean()
    finally:
        await ctx.close()
