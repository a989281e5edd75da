"""The first ten minutes of a newcomer, in Debian's Chromium: README's first command
(``.venv/bin/livecart demo`` in a fresh directory, nothing configured), then the addresses and
token the demo prints. A phone viewer on the demo room sees the demo's deal, buys and pays with
nothing cut off the screen (English and Arabic), meets the per-buyer limit on the Buy button,
and sees the live end cleanly when the creator ends it from the studio."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser import (
    DESKTOP,
    PHONE,
    ROOM_TOP,
    Watched,
    joined,
    new_page,
    overflowing,
    overlapping,
)
from tests.harness import free_port, serve
from tests.test_cli import UNCONFIGURED
from tests.test_pages import ADDRESS, CARD, sign_in, video_plays

# No storage mark: livecart runs here unconfigured (its own Valkey and SQLite file) whatever
# REDIS_URL and DATABASE_URL say, so CI's storage step would only repeat it.

# The console script README's first command installs into the venv, beside this interpreter.
LIVECART = Path(sys.executable).parent / "livecart"
MINUS = "\u2212"  # a discount is shown with a minus sign, not a hyphen


@dataclass(frozen=True)
class Demo:
    base: str
    watch: str  # "watch the live:" in the banner
    studio: str  # "creator studio:"
    token: str  # "seller token:"
    voucher: str  # "live voucher:"


def banner_line(text: str, label: str) -> str:
    found = re.search(rf"^\s*{label}:\s+(\S+)", text, re.MULTILINE)
    assert found, f"the demo printed no {label!r} line:\n{text}"
    return found.group(1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    workdir = tmp_path_factory.mktemp("newcomer")
    port = free_port()  # README's 8000 may be taken on this machine: the only change
    log = workdir / "demo.log"
    process = serve(
        [str(LIVECART), "demo", "--port", str(port)],
        port=port,
        env={**UNCONFIGURED, "LIVECART_WEBRTC_ADDRESSES": "127.0.0.1"},
        log=log,
        cwd=workdir,
    ).process
    try:
        text = log.read_text()
        yield Demo(
            base=f"http://127.0.0.1:{port}",
            watch=banner_line(text, "watch the live"),
            studio=banner_line(text, "creator studio"),
            token=banner_line(text, "seller token"),
            voucher=banner_line(text, "live voucher"),
        )
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, log.read_text()


async def open_checkout(page: Page) -> None:
    await expect(page.locator("#buy")).to_be_enabled(timeout=20_000)
    await page.click("#buy")
    await expect(page.locator("#checkout")).to_be_visible()
    await expect(page.locator("#hold-timer")).to_contain_text(":")


async def pay(page: Page) -> int:
    for name, value in ADDRESS.items():
        await page.fill(f"#pay-form [name={name}]", value)
    await page.select_option("#pay-form [name=country]", "GB")
    await page.fill("#pay-form [name=card]", CARD)
    await page.click("#pay")
    number = page.locator("#order-number[data-order-id]")
    await expect(number).to_be_visible(timeout=20_000)
    order = int(await number.get_attribute("data-order-id") or 0)
    await page.locator("#checkout").evaluate("dialog => dialog.close()")
    return order


async def sheet_fits(page: Page) -> None:
    """Every element of the open checkout sheet lies inside the phone's 390 px."""
    assert await overflowing(page, "#checkout, #checkout *") == []


async def test_a_viewer_fills_a_cart_from_the_demo_bag_and_pays_once(
    browser: Browser, demo: Demo, shots: Path
) -> None:
    en_ctx, viewer = await new_page(browser, "phone shopper", **PHONE)
    ar_ctx, arabic = await new_page(browser, "Arabic phone shopper", locale="ar-EG", **PHONE)
    try:
        page = viewer.page
        await page.goto(demo.watch)
        await joined(page)
        await expect(page.locator("#bag-count")).to_have_text("2")

        # The bag: the pinned jacket first, then the mug.
        await page.click("#bag-button")
        items = page.locator("#bag-items .bag-item")
        await expect(items).to_have_count(2)
        await expect(items.first).to_contain_text("Pinned")
        await expect(items.first).to_contain_text("Puffer jacket")
        await page.screenshot(path=shots / "viewer-bag-phone.png")

        # A size and a colour make a SKU; Sand / L is not made, so L is off once Sand is picked.
        await items.first.locator("button").click()
        sheet = page.locator("#product-sheet")
        await expect(sheet).to_be_visible()
        await expect(page.locator("#sheet-add")).to_be_disabled()  # nothing picked yet
        await sheet.locator(".choice", has_text="Sand").click()
        await expect(sheet.locator(".choice", has_text=re.compile("^L$"))).to_be_disabled()
        await sheet.locator(".choice", has_text=re.compile("^M$")).click()
        await expect(page.locator("#sheet-price")).to_have_text("$89.00")
        assert await overflowing(page, "#product-sheet, #product-sheet *") == []
        await page.click("#sheet-add")
        await expect(page.locator("#cart-count")).to_have_text("1")

        # Two mugs (one SKU: nothing to pick).
        await page.click("#bag-button")
        await items.nth(1).locator("button").click()
        await expect(page.locator("#sheet-title")).to_have_text("Stoneware mug")
        await page.click("#sheet-more")
        await expect(page.locator("#sheet-qty")).to_have_text("2")
        await page.click("#sheet-add")
        await expect(page.locator("#cart-count")).to_have_text("3")

        # The cart shows the shop voucher a buyer can use (WELCOME5: 5.00 off from 30.00) and
        # shipping (4.99 under 150.00).
        await page.click("#cart-button")
        await expect(page.locator("#cart-shops .cart-line")).to_have_count(2)
        amounts = page.locator("#cart-shops .cart-amounts")
        await expect(amounts.locator(".voucher")).to_contain_text("WELCOME5")
        await expect(page.locator(".cart-checkout")).to_contain_text("$136.99")  # 137 - 5 + 4.99
        await page.locator("#cart-sheet").evaluate("dialog => dialog.close()")

        # The creator drops the room's live voucher (as the studio's button does); the viewer
        # claims it from the room, and the cart takes the better saving: 10 % of 137.00.
        room_id = demo.watch.rstrip("/").rsplit("/", 1)[1]
        dropped = await page.request.post(
            f"{demo.base}/api/rooms/{room_id}/voucher",
            headers={"Authorization": f"Bearer {demo.token}"},
            data={"code": demo.voucher},
        )
        assert dropped.status == 200, await dropped.text()
        drop = page.locator("#voucher-drop")
        await expect(drop).to_be_visible()
        await expect(drop).to_contain_text(demo.voucher)
        await expect(drop).to_contain_text("10% off")
        assert await overflowing(page, "#voucher-drop, #voucher-drop *") == []
        await page.click("#voucher-claim")
        await expect(page.locator("#voucher-note")).to_have_text("Claimed: it applies at checkout")
        await page.screenshot(path=shots / "viewer-voucher-claimed-phone.png")

        # The cart: both lines, the voucher, shipping, one checkout and one payment.
        await page.click("#cart-button")
        await expect(amounts.locator(".voucher")).to_contain_text(demo.voucher)
        await expect(amounts.locator(".voucher")).to_contain_text(f"{MINUS}$13.70")
        await expect(amounts.locator(".shipping")).to_contain_text("$4.99")
        await expect(page.locator(".cart-checkout")).to_contain_text("$128.29")  # 123.30 + 4.99
        assert await overflowing(page, "#cart-sheet, #cart-sheet *") == []
        await page.click(".cart-checkout")
        await expect(page.locator("#cart-pay")).to_be_visible()
        await expect(page.locator("#cart-hold-lines li")).to_have_count(2)
        await expect(page.locator("#cart-hold-amounts .voucher")).to_contain_text(f"{MINUS}$13.70")
        await expect(page.locator("#cart-hold-amounts .shipping")).to_contain_text("$4.99")
        await expect(page.locator("#cart-hold-total")).to_have_text("$128.29")
        await expect(page.locator("#cart-hold-timer")).to_contain_text(":")
        assert await overflowing(page, "#cart-pay, #cart-pay *") == []
        for name, value in ADDRESS.items():
            await page.fill(f"#cart-pay-form [name={name}]", value)
        await page.select_option("#cart-pay-form [name=country]", "GB")
        await page.fill("#cart-pay-form [name=card]", CARD)
        await page.screenshot(path=shots / "viewer-cart-checkout-phone.png")
        await page.click("#cart-pay-submit")
        number = page.locator("#cart-order-number[data-order-id]")
        await expect(number).to_be_visible(timeout=20_000)
        order_id = await number.get_attribute("data-order-id")
        await expect(page.locator("#cart-count")).to_have_text("")  # bought: out of the cart

        # The order page shows both lines, the discount, shipping and the one total.
        await page.goto(f"{demo.base}/orders")
        order = page.locator(f"#order-{order_id}")
        await expect(order.locator(".order-line")).to_have_count(2)
        await expect(order.locator(".order-line").first).to_contain_text("Puffer jacket · Sand / M")
        await expect(order.locator(".order-line").nth(1)).to_contain_text("Stoneware mug")
        await expect(order.locator(".order-discount")).to_contain_text(
            f"{demo.voucher} {MINUS}$13.70"
        )
        await expect(order.locator(".order-shipping")).to_contain_text("$4.99")
        await expect(order.locator(".order-total")).to_contain_text("$128.29")

        # In Arabic the sheets read right to left and fit the phone.
        ar = arabic.page
        await ar.goto(demo.watch)
        await joined(ar)
        assert await ar.evaluate("document.documentElement.dir") == "rtl"
        await ar.click("#bag-button")
        await ar.locator("#bag-items .bag-item button").first.click()
        await ar.locator("#product-sheet .choice").first.click()
        assert await overflowing(ar, "#product-sheet, #product-sheet *") == []
        await ar.screenshot(path=shots / "viewer-product-sheet-arabic-phone.png")
        # The dropped voucher and the cart's amounts, right to left, inside 390 px.
        await ar.locator("#product-sheet").evaluate("dialog => dialog.close()")
        await expect(ar.locator("#voucher-drop")).to_be_visible()
        assert await overflowing(ar, "#voucher-drop, #voucher-drop *") == []
        await ar.click("#bag-button")
        await ar.locator("#bag-items .bag-item button").nth(1).click()
        await ar.click("#sheet-add")
        await expect(ar.locator("#cart-count")).to_have_text("1")
        await ar.click("#cart-button")
        await expect(ar.locator("#cart-shops .cart-amounts .shipping")).to_be_visible()
        assert await overflowing(ar, "#cart-sheet, #cart-sheet *") == []
        await ar.screenshot(path=shots / "viewer-cart-arabic-phone.png")
        assert_clean(viewer, arabic)
    finally:
        for ctx in (en_ctx, ar_ctx):
            await ctx.close()


async def test_a_viewer_signs_up_during_the_live_and_keeps_the_hold_and_the_cart(
    browser: Browser, demo: Demo, shots: Path
) -> None:
    """A phone viewer holds the demo deal's unit and puts a mug in the cart as a guest, signs
    up from the room's Sign in link, comes back to the same hold (its checkout reopens) and
    cart, pays as the account, and the account's page and orders say so."""
    ctx, viewer = await new_page(browser, "viewer who signs up", **PHONE)
    try:
        page = viewer.page
        await page.goto(demo.watch)
        await joined(page)
        await page.click("#bag-button")
        mug = page.locator("#bag-items .bag-item", has_text="Stoneware mug")
        await mug.locator("button").click()
        await page.click("#sheet-add")
        await expect(page.locator("#cart-count")).to_have_text("1")
        await open_checkout(page)
        await page.locator("#checkout").evaluate("dialog => dialog.close()")

        await page.click("#account-link")
        await expect(page).to_have_url(re.compile(r"/account\?next=/live/\d+$"))
        form = page.locator("#sign-up")
        await form.locator("[name=display_name]").fill("Mina")
        await form.locator("[name=email]").fill("mina@example.com")
        await form.locator("[name=password]").fill("short")
        await form.locator("button[type=submit]").click()
        await expect(page).to_have_url(re.compile(r"/account"))  # the browser's own check
        await form.locator("[name=password]").fill("password1234")
        await form.locator("button[type=submit]").click()
        await expect(form.locator(".form-error")).to_have_text(
            "Choose a longer or less common password."
        )
        await form.locator("[name=password]").fill("violet-kettle-orbit-42")
        assert await overflowing(page, "main, main *") == []
        await page.screenshot(path=shots / "viewer-sign-up-phone.png")
        await form.locator("button[type=submit]").click()

        # Back in the room: the same hold's checkout reopens, the mug is still in the cart.
        await expect(page).to_have_url(demo.watch)
        await expect(page.locator("#checkout")).to_be_visible(timeout=20_000)
        await expect(page.locator("#hold-timer")).to_contain_text(":")
        await expect(page.locator("#cart-count")).to_have_text("1")
        order_id = await pay(page)
        assert order_id > 0

        await page.goto(f"{demo.base}/account")
        await expect(page.locator("#signed-in-as")).to_have_text(
            "Signed in as Mina (mina@example.com)."
        )
        await page.goto(f"{demo.base}/orders")
        await expect(page.locator(f"#order-{order_id}")).to_be_visible(timeout=20_000)
        # The one refusal the page met was the guessable password, answered 422 (and logged
        # by the browser as a failed load).
        refused = [p for p in viewer.problems if "422" in p]
        assert [p for p in viewer.problems if p not in refused] == []
        assert [p for p in refused if p.startswith("http")] == [
            f"http 422: POST {demo.base}/api/accounts"
        ]
    finally:
        await ctx.close()


# Last in this module: it ends the demo's live, which the tests above need running (pytest
# runs a module's tests in file order on each worker, each worker with its own demo).
async def test_a_newcomer_buys_the_demo_deal_on_a_phone_and_sees_the_live_end(
    browser: Browser, demo: Demo, shots: Path
) -> None:
    studio_ctx, studio = await new_page(browser, "studio", **DESKTOP)
    en_ctx, viewer = await new_page(browser, "phone viewer", **PHONE)
    ar_ctx, arabic = await new_page(browser, "Arabic phone viewer", locale="ar-EG", **PHONE)
    try:
        # The creator signs in to the studio the banner names and goes live on camera.
        creator = studio.page
        path = demo.studio.removeprefix(demo.base)
        await sign_in(creator, demo.base, demo.token, then=path)
        # The page's script is running (its room socket is up, the bag drawn) before the tap.
        await joined(creator)
        await expect(creator.locator("#bag .bag-item")).to_have_count(2)
        await creator.click("#go-live")
        await expect(creator.locator("#room-status")).to_have_text("live · on air", timeout=20_000)

        # The viewer opens the room the banner names: the creator's video and the demo's deal.
        page = viewer.page
        await page.goto(demo.watch)
        await video_plays(page)
        await expect(page.locator("#card-title")).to_have_text("Puffer jacket · Black / M")
        await expect(page.locator("#card-price")).to_have_text("$49.00")
        await expect(page.locator("#deal-countdown")).to_contain_text("Ends in")
        await expect(page.locator("#limit-text")).to_have_text("Limit 2 per person")
        await expect(page.locator("#unmute")).to_be_visible()
        await expect(page.locator("#viewers")).not_to_be_empty()
        assert await overlapping(page, *ROOM_TOP) == []
        await page.screenshot(path=shots / "viewer-room-phone.png")

        # Buy and pay twice: the sheet fits the phone each time.
        await open_checkout(page)
        await sheet_fits(page)
        await page.screenshot(path=shots / "viewer-checkout-phone.png")
        first = await pay(page)
        await open_checkout(page)
        second = await pay(page)
        assert second != first

        # Two is this deal's limit: Buy says so, and is off.
        buy = page.locator("#buy")
        await expect(buy).to_be_disabled()
        await expect(buy).to_have_text("Limit reached")
        await expect(page.locator("#limit-text")).to_have_text(
            "You've reached the limit of 2 per person."
        )
        await expect(page.locator("#buy-error")).to_have_text("")

        # The same in Arabic, right to left: the sheet fits, the order goes through.
        await arabic.page.goto(demo.watch)
        assert await arabic.page.evaluate("document.documentElement.dir") == "rtl"
        await expect(arabic.page.locator("#viewers")).not_to_be_empty()
        assert await overlapping(arabic.page, *ROOM_TOP) == []
        await open_checkout(arabic.page)
        await sheet_fits(arabic.page)
        await arabic.page.screenshot(path=shots / "viewer-checkout-arabic-phone.png")
        await pay(arabic.page)

        # The creator ends the live: the room says so and nothing of it stays half-alive.
        creator.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await creator.click("#end-live")
        await expect(creator.locator("#room-status")).to_have_text("ended")
        await expect(page.locator("#stage-status")).to_have_text("This live has ended.")
        await expect(page.locator("#chat-input")).to_be_disabled()
        await expect(page.locator("#chat-form button")).to_be_disabled()
        await expect(page.locator("#viewers")).to_be_hidden()
        await expect(page.locator("#unmute")).to_be_hidden()
        await expect(page.locator("#video")).to_be_hidden()
        await expect(page.locator("#live-badge")).to_be_hidden()
        await expect(page.locator("#buy")).to_be_hidden()
        await page.screenshot(path=shots / "viewer-room-ended-phone.png")
        assert "Something went wrong" not in await page.locator("body").inner_text()
        assert_clean(studio, viewer, arabic)
    finally:
        for ctx in (studio_ctx, en_ctx, ar_ctx):
            await ctx.close()


def assert_clean(*pages: Watched) -> None:
    for watched in pages:
        watched.assert_clean()
