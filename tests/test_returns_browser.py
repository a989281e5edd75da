"""A return in two real browsers (Debian's Chromium, driven by Playwright) against a running
``livecart serve``: the buyer asks for it from their orders page on a phone, the seller approves
it in the seller center, the buyer ships the goods back, the seller confirms their receipt, and
the buyer sees the order refunded. Every page's console errors and failed requests fail the
test; the buyer's page must fit a 390 px phone and the seller's Returns section too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser import DESKTOP, PHONE, new_page, overflowing
from tests.conftest import SellerAccount
from tests.harness import Server
from tests.helpers import poll
from tests.test_pages import pages_server, shop, sign_in  # noqa: F401 (fixtures)

pytestmark = pytest.mark.storage

PHONE_SIZE = {"width": 390, "height": 844}
DESKTOP_SIZE = {"width": 1280, "height": 800}


async def _delivered_order(base: str, seller: SellerAccount) -> tuple[dict[str, Any], int]:
    """Over the HTTP API: a guest session that buys one jacket from a live deal, which the
    seller ships and marks delivered. Returns (the guest session, the order id)."""
    async with httpx.AsyncClient(base_url=base, headers=seller.headers, timeout=30) as http:
        products = await http.get("/api/products", params={"shop_id": seller.shop.id})
        jacket = next(p for p in products.json()["products"] if p["title"] == "Puffer jacket")
        sku = (await http.get(f"/api/products/{jacket['id']}")).json()["product"]["skus"][0]
        terms = {"sku_id": sku["id"], "deal_price": 3900, "quantity": 5, "per_buyer_limit": 2}
        deal = (await http.post("/api/deals", json={**terms, "duration_s": 900})).json()["deal"]
        assert (await http.post(f"/api/deals/{deal['id']}/start")).status_code == 200
        session: dict[str, Any] = (await http.post("/api/session")).json()
        buyer = {"Authorization": f"Bearer {session['token']}"}
        hold = await http.post(f"/api/deals/{deal['id']}/reserve", headers=buyer, json={})
        assert hold.status_code == 201, hold.text
        paid = await http.post(
            f"/api/holds/{hold.json()['hold']['id']}/checkout",
            headers={**buyer, "Idempotency-Key": "browser-return"},
            json={"card": "4242424242424242"},
        )
        assert paid.status_code == 201, paid.text

        async def orders() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = (await http.get("/api/orders", headers=buyer)).json()[
                "orders"
            ]
            return found

        written = await poll(orders, lambda found: len(found) == 1)
        assert len(written) == 1, "the pipeline did not write the order within 10 s"
        order_id = int(written[0]["id"])
        shipment = {"order_id": order_id, "carrier": "UPS", "tracking_number": "1Z42"}
        shipped = await http.post("/api/orders/ship", json={"shipments": [shipment]})
        assert shipped.json()["shipped"] == 1, shipped.text
        assert (await http.post(f"/api/orders/{order_id}/deliver")).status_code == 200
    return session, order_id


async def fits_a_phone(page: Page, selector: str) -> None:
    widths = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths}"
    assert await overflowing(page, selector) == [], (page.url, selector)


async def test_a_buyer_returns_an_order_and_sees_it_refunded(
    browser: Browser,
    pages_server: Server,  # noqa: F811
    shop: SellerAccount,  # noqa: F811
    shots: Path,
) -> None:
    base = pages_server.base_url
    session, order_id = await _delivered_order(base, shop)
    buyer_ctx, buyer = await new_page(browser, "orders page", **PHONE)
    seller_ctx, center = await new_page(browser, "seller center", **DESKTOP)
    mine, theirs = buyer.page, center.page
    try:
        # The buyer's browser holds the guest session that bought the jacket.
        await mine.goto(f"{base}/orders")
        await mine.evaluate(
            "(session) => localStorage.setItem('livecart.guest', session)", json.dumps(session)
        )
        await mine.reload()
        order = mine.locator(f"#order-{order_id}")
        await expect(order.locator(".status")).to_have_text("Delivered")

        # Ask for a return, with a reason, a note and a photo.
        await order.get_by_text("Request a return or refund").click()
        form = order.locator(".request-form")
        await form.locator("[name=kind]").select_option("return")
        await form.locator("[name=reason]").select_option("damaged")
        await form.locator("[name=note]").fill("The zip came off.")
        await form.locator("[name=photos]").fill("https://example.com/zip.jpg")
        await fits_a_phone(mine, f"#order-{order_id}")
        await mine.screenshot(path=shots / "returns-ask-phone.png", full_page=True)
        await form.get_by_role("button", name="Send request").click()
        await expect(order.locator(".request-status")).to_have_text("Return requested")
        request_id = await order.locator(".request").get_attribute("data-request-id")

        # The seller sees it pending and approves it.
        await sign_in(theirs, base, shop.token)
        await expect(theirs.locator("#tile-returns-pending")).to_have_text("1")
        row = theirs.locator(f"#request-{request_id}")
        await expect(row).to_contain_text("The zip came off.")
        await expect(row.locator(".request-amount")).to_have_text("$39.00")
        await theirs.locator("#returns").screenshot(path=shots / "returns-seller-requested.png")
        await row.get_by_role("button", name="Approve").click()
        await expect(theirs).to_have_url(f"{base}/seller#returns")
        await expect(row.locator(".request-state")).to_have_text("approved")

        # The buyer is told to ship it back, and does.
        await mine.reload()
        await expect(order.locator(".request-status")).to_have_text("Approved: ship it back")
        ship_back = order.locator(".ship-back-form")
        await ship_back.locator("[name=carrier]").fill("DHL")
        await ship_back.locator("[name=tracking_number]").fill("JD014600003")
        await ship_back.get_by_role("button", name="I shipped it back").click()
        await expect(order.locator(".request-status")).to_have_text(
            "Shipped back: waiting for the seller"
        )

        # The seller confirms the receipt, putting the jacket back in stock.
        await theirs.reload()
        await expect(row.locator(".request-state")).to_have_text("shipped back")
        await expect(row).to_contain_text("DHL JD014600003")
        await theirs.set_viewport_size(PHONE_SIZE)
        await fits_a_phone(theirs, "#returns")
        await theirs.locator("#returns").screenshot(path=shots / "returns-seller-phone.png")
        await theirs.set_viewport_size(DESKTOP_SIZE)
        await expect(row.locator("[name=restock]")).to_have_value("1")
        await row.get_by_role("button", name="Confirm receipt").click()
        await expect(theirs).to_have_url(f"{base}/seller#returns")
        await expect(theirs.locator(f"#request-{request_id}")).to_have_count(0)  # not open
        await expect(theirs.locator("#tile-returns-pending")).to_have_text("0")

        # The buyer sees the order refunded.
        await mine.reload()
        await expect(order.locator(".status")).to_have_text("Refunded")
        await expect(order.locator(".request-status")).to_have_text("Refunded $39.00")
        await expect(order.locator(".request-form")).to_have_count(0)  # nothing left to ask
        await mine.screenshot(path=shots / "returns-refunded-phone.png", full_page=True)
        buyer.assert_clean()
        center.assert_clean()
    finally:
        await buyer_ctx.close()
        await seller_ctx.close()
