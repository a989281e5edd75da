"""The pages in a real browser (Debian's Chromium, driven by Playwright) against a running
``livecart serve``: a creator goes live with the fake camera from the studio, pins a product and
starts a flash deal; two viewers watch the video, see the pin and the same countdown, buy, pay
and get their order numbers; the seller ships one and its buyer sees it shipped. Plus the
Arabic page's right-to-left layout, the language switcher, and a dropped connection that shows
"reconnecting" and resumes without losing an event. Every page's console errors and failed
requests fail the test. Screenshots go to LIVECART_SCREENSHOTS (docs/screenshots/ when the
README's pictures are remade), else to a temporary directory."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from playwright.async_api import Browser, Page, WebSocket, expect

from catalog import service
from kernel.db import Database
from tests.browser import (
    DESKTOP,
    PHONE,
    CuttableProxy,
    Watched,
    joined,
    new_page,
)
from tests.conftest import SellerAccount, start_server
from tests.harness import Server, stop_server
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

PHONE_SIZE = {"width": 390, "height": 844}
DESKTOP_SIZE = {"width": 1280, "height": 800}
PAGES_ENV = {
    "LIVECART_WEBRTC_ADDRESSES": "127.0.0.1",
    "LIVECART_WEBRTC_CONNECT_TIMEOUT_S": "15",
}
CARD = "4242 4242 4242 4242"
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
}


@pytest.fixture(scope="module")
def pages_server(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(
        redis_url, database_url, tmp_path_factory.mktemp("pages") / "server.log", **PAGES_ENV
    )
    yield running
    stop_server(running)


@pytest.fixture
async def shop(db: Database) -> SellerAccount:
    """A seller whose shop sells a jacket (with a picture) and a mug."""
    async with db.session() as session:
        me, shop, token = await service.create_seller(
            session, "Mika", f"mika-{secrets.token_hex(4)}@example.com", "Mika's Closet"
        )
        assert shop.id is not None
        jacket = await service.create_product(
            session,
            me,
            shop.id,
            {"title": "Puffer jacket", "image_urls": ["/static/img/jacket.svg"]},
        )
        await service.create_sku(
            session,
            me,
            jacket.id or 0,
            {"variant": "Black / M", "list_price": 8900, "currency": "USD", "stock": 50},
        )
        mug = await service.create_product(
            session, me, shop.id, {"title": "Stoneware mug", "image_urls": ["/static/img/mug.svg"]}
        )
        await service.create_sku(
            session,
            me,
            mug.id or 0,
            {"variant": "Sand", "list_price": 2400, "currency": "USD", "stock": 20},
        )
    return SellerAccount(me, shop, token)


async def sign_in(page: Page, base: str, token: str, then: str = "/seller") -> None:
    await page.goto(f"{base}{then}")
    await expect(page).to_have_url(f"{base}/seller/login?next={then}")
    await page.fill("#token", token)
    await page.click("#token-form button[type=submit]")
    await expect(page).to_have_url(f"{base}{then}")


async def video_plays(page: Page) -> None:
    await page.wait_for_function(
        "() => { const v = document.getElementById('video');"
        " return v.videoWidth > 0 && v.currentTime > 1 && !v.paused; }",
        timeout=30_000,
    )


async def buy_and_pay(page: Page) -> int:
    await expect(page.locator("#buy")).to_be_enabled(timeout=20_000)
    await page.click("#buy")
    dialog = page.locator("#checkout")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#hold-timer")).to_contain_text("1:")
    for name, value in ADDRESS.items():
        await page.fill(f"#pay-form [name={name}]", value)
    await page.select_option("#pay-form [name=country]", "GB")
    await page.fill("#pay-form [name=card]", CARD)
    await page.click("#pay")
    number = page.locator("#order-number[data-order-id]")
    await expect(number).to_be_visible(timeout=20_000)
    order_id = int(await number.get_attribute("data-order-id") or 0)
    await expect(number).to_have_text(f"Order #{order_id}")
    return order_id


def assert_clean(*pages: Watched) -> None:
    for page in pages:
        page.assert_clean()


async def test_a_whole_live_sale_in_the_browser(
    browser: Browser, pages_server: Server, shop: SellerAccount, shots: Path
) -> None:
    base = pages_server.base_url
    studio_ctx, studio = await new_page(browser, "studio", **DESKTOP)
    ctx_a, viewer_a = await new_page(browser, "viewer A", **PHONE)
    ctx_b, viewer_b = await new_page(browser, "viewer B", **PHONE)
    # B's phone clock is 47 s fast: its countdown must still end with A's, on the server's clock.
    await ctx_b.add_init_script("{ const real = Date.now; Date.now = () => real() + 47000; }")
    try:
        # The creator signs in, opens a room from the seller center and goes live on camera.
        creator = studio.page
        await sign_in(creator, base, shop.token)
        await creator.fill("#live input[name=title]", "Winter drop")
        await creator.click("#live button[type=submit]")
        await expect(creator).to_have_url(f"{base}/studio/{await _room_id(creator)}")
        room_id = await _room_id(creator)
        await expect(creator.locator("#bag .bag-item")).to_have_count(2)
        await creator.click("#go-live")
        await expect(creator.locator("#room-status")).to_have_text("live · on air", timeout=20_000)

        # Two viewers open the room on their phones: the creator's video plays for both.
        for viewer in (viewer_a, viewer_b):
            await viewer.page.goto(f"{base}/live/{room_id}")
            await joined(viewer.page)
        await asyncio.gather(video_plays(viewer_a.page), video_plays(viewer_b.page))

        # The pin reaches both. (The bag's rows keep their titles on one line: the viewer's
        # bag-sheet layout once squeezed them to a letter a line.)
        jacket = creator.locator("#bag .bag-item", has_text="Puffer jacket")
        title = await jacket.locator(".bag-title").bounding_box()
        button = await jacket.locator("button.pin").bounding_box()
        assert title and button and title["height"] < 2 * button["height"], (title, button)
        await jacket.locator("button.pin").click()
        for viewer in (viewer_a, viewer_b):
            await expect(viewer.page.locator("#card-title")).to_have_text("Puffer jacket")
            await expect(viewer.page.locator("#card-image")).to_have_attribute(
                "src", "/static/img/jacket.svg"
            )

        # The deal form refuses what the API would, next to the field, and sends nothing.
        form = creator.locator("#deal-form")
        await form.locator("[name=sku_id]").select_option(
            label="Puffer jacket · Black / M ($89.00)"
        )
        await form.locator("[name=deal_price]").fill("89")
        await form.locator("[name=countdown_s]").fill("5")
        await creator.click("#start-deal")
        await expect(form.locator("[data-for=deal_price]")).to_contain_text("Below the list price")
        await expect(form.locator("[data-for=countdown_s]")).to_have_text("10 to 300 seconds.")
        await expect(creator.locator("#deals .deal-item")).to_have_count(0)

        await form.locator("[name=deal_price]").fill("39")
        await form.locator("[name=quantity]").fill("5")
        await form.locator("[name=countdown_s]").fill("10")
        await creator.click("#start-deal")
        await expect(form.locator("[data-for=deal_price]")).to_have_text("")
        await expect(creator.locator("#deals .deal-item")).to_have_count(1)

        # Both viewers see the deal card and the same countdown, on the server's clock.
        for viewer in (viewer_a, viewer_b):
            page = viewer.page
            await expect(page.locator("#card-price")).to_have_text("$39.00")
            await expect(page.locator("#card-list-price")).to_have_text("$89.00")
            await expect(page.locator("#deal-countdown")).to_contain_text("Starts in 0:")
            await expect(page.locator("#buy")).to_be_disabled()
        targets = [
            await v.page.locator("#deal-countdown").get_attribute("data-target-ms")
            for v in (viewer_a, viewer_b)
        ]
        assert targets[0] == targets[1] and targets[0] is not None
        texts = await asyncio.gather(
            *(
                v.page.evaluate("document.getElementById('deal-countdown').textContent")
                for v in (viewer_a, viewer_b)
            )
        )
        assert _seconds(texts[0]) - _seconds(texts[1]) in (-1, 0, 1), texts
        await viewer_a.page.screenshot(path=shots / "viewer-room-countdown-phone.png")

        # When it opens both buy, pay with the sandbox card and get their order numbers.
        order_a, order_b = await asyncio.gather(
            buy_and_pay(viewer_a.page), buy_and_pay(viewer_b.page)
        )
        assert order_a != order_b
        await viewer_b.page.screenshot(path=shots / "viewer-order-placed-phone.png")
        await expect(creator.locator("#fig-sold")).to_have_text("2", timeout=10_000)
        await expect(creator.locator("#fig-gmv")).to_have_text("$78.00")
        await expect(creator.locator("#fig-net-gmv")).to_have_text("$78.00")  # none refunded
        await creator.screenshot(path=shots / "studio-desktop.png")
        await creator.set_viewport_size(PHONE_SIZE)
        await creator.screenshot(path=shots / "studio-phone.png", full_page=True)
        await creator.set_viewport_size(DESKTOP_SIZE)
        await viewer_b.page.set_viewport_size(DESKTOP_SIZE)
        await viewer_b.page.locator("#checkout").evaluate("dialog => dialog.close()")
        await viewer_b.page.screenshot(path=shots / "viewer-room-desktop.png")

        # The seller ships A's order; A's orders page shows it shipped with its tracking.
        await creator.goto(f"{base}/seller")
        row = creator.locator(f"#order-{order_a}")
        await row.locator("[name=carrier]").fill("UPS")
        await row.locator("[name=tracking_number]").fill("1Z999AA10123456784")
        await row.locator("button", has_text="Ship").click()
        await expect(creator.locator(f"#order-{order_a}")).to_have_count(0)  # left "To ship"
        await creator.goto(f"{base}/seller?tab=shipped")
        await expect(creator.locator(f"#order-{order_a} .status")).to_have_text("shipped")
        await creator.screenshot(path=shots / "seller-center-desktop.png", full_page=True)
        await creator.set_viewport_size(PHONE_SIZE)
        await creator.screenshot(path=shots / "seller-center-phone.png")

        await viewer_a.page.goto(f"{base}/orders")
        mine = viewer_a.page.locator(f"#order-{order_a}")
        await expect(mine).to_have_attribute("data-status", "shipped")
        await expect(mine.locator(".tracking")).to_have_text("UPS · tracking 1Z999AA10123456784")
        await expect(viewer_a.page.locator(f"#order-{order_b}")).to_have_count(0)  # not A's
        await viewer_b.page.goto(f"{base}/orders")
        await expect(viewer_b.page.locator(f"#order-{order_b}")).to_have_attribute(
            "data-status", "paid"
        )
        await viewer_a.page.screenshot(path=shots / "orders-phone.png")

        # Back in the studio (leaving it for the seller center hung the video up), the creator
        # goes live again and then ends the live: the video hangs up cleanly, and a viewer
        # still in the room is told.
        await creator.set_viewport_size(DESKTOP_SIZE)
        await creator.goto(f"{base}/studio/{room_id}")
        # The page's script is running (its room socket up, the bag drawn) before the tap.
        await joined(creator)
        await expect(creator.locator("#bag .bag-item")).to_have_count(2)
        await creator.click("#go-live")
        await expect(creator.locator("#room-status")).to_have_text("live · on air", timeout=20_000)
        await viewer_b.page.goto(f"{base}/live/{room_id}")
        await video_plays(viewer_b.page)
        creator.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await creator.click("#end-live")
        await expect(creator.locator("#room-status")).to_have_text("ended")
        await expect(viewer_b.page.locator("#stage-status")).to_have_text("This live has ended.")
        assert_clean(studio, viewer_a, viewer_b)
    finally:
        for ctx in (studio_ctx, ctx_a, ctx_b):
            await ctx.close()


async def _room_id(page: Page) -> int:
    await page.wait_for_url("**/studio/*")
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def _seconds(text: str) -> int:
    minutes, seconds = text.rsplit(" ", 1)[1].split(":")
    return int(minutes) * 60 + int(seconds)


async def _live_room(base: str, seller: SellerAccount, title: str) -> int:
    """A live room with the shop's products in its bag and the last one pinned."""
    async with httpx.AsyncClient(base_url=base, headers=seller.headers) as http:
        room = (
            await http.post("/api/rooms", json={"shop_id": seller.shop.id, "title": title})
        ).json()["room"]
        found = await http.get("/api/products", params={"shop_id": seller.shop.id})
        for product in found.json()["products"]:
            await http.post(f"/api/rooms/{room['id']}/bag", json={"product_id": product["id"]})
        assert (await http.post(f"/api/rooms/{room['id']}/live")).status_code == 200
        await http.post(f"/api/rooms/{room['id']}/pin", json={"product_id": product["id"]})
    return int(room["id"])


async def test_the_arabic_room_reads_right_to_left_and_the_switcher_changes_language(
    browser: Browser, pages_server: Server, shop: SellerAccount, shots: Path
) -> None:
    base = pages_server.base_url
    room_id = await _live_room(base, shop, "Soirée")
    ctx, viewer = await new_page(browser, "arabic viewer", locale="ar-EG", **PHONE)
    try:
        page = viewer.page
        await page.goto(f"{base}/live/{room_id}")  # Accept-Language: ar-EG picks Arabic
        assert await page.evaluate("document.documentElement.dir") == "rtl"
        assert await page.evaluate("document.documentElement.lang") == "ar"
        assert await page.evaluate("getComputedStyle(document.body).direction") == "rtl"
        await expect(page.locator("#orders-link")).to_have_text("طلباتي")
        await expect(page.locator("#card-title")).to_have_text("Stoneware mug")
        # Right to left: the chat's send button sits left of its input.
        send = await page.locator("#chat-form button").bounding_box()
        field = await page.locator("#chat-input").bounding_box()
        assert send is not None and field is not None and send["x"] < field["x"]
        await page.screenshot(path=shots / "viewer-room-arabic-phone.png")

        await page.select_option("#lang-switch", "fr")
        await page.wait_for_url(f"**/live/{room_id}?lang=fr")
        assert await page.evaluate("document.documentElement.dir") == "ltr"
        await expect(page.locator("#orders-link")).to_have_text("Mes commandes")
        await page.goto(f"{base}/live/{room_id}")  # the choice is remembered
        await expect(page.locator("#orders-link")).to_have_text("Mes commandes")
        viewer.assert_clean()
    finally:
        await ctx.close()


async def test_a_dropped_connection_shows_reconnecting_and_resumes_without_a_gap(
    browser: Browser,
    pages_server: Server,
    shop: SellerAccount,
    sessions: GuestSessions,
) -> None:
    base = pages_server.base_url
    room_id = await _live_room(base, shop, "Tunnel test")
    port = int(base.rsplit(":", 1)[1])
    proxy = CuttableProxy(port)
    await proxy.start()
    ctx, viewer = await new_page(browser, "viewer behind a proxy", **PHONE)
    sent: list[dict[str, object]] = []
    received: list[dict[str, object]] = []

    def record(ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: received.extend(json.loads(payload)))

    try:
        page = viewer.page
        page.on("websocket", record)
        await page.goto(f"http://127.0.0.1:{proxy.port}/live/{room_id}")
        await joined(page)
        await _chat(port, room_id, sessions, "before the tunnel")
        await expect(page.locator(".chat-text", has_text="before the tunnel")).to_be_visible()
        # The pinned product's picture is fetched once the snapshot arrives; a cut while it is
        # on the wire would be a failed request of the test's making, not the page's.
        await page.wait_for_function("[...document.images].every((image) => image.complete)")

        proxy.cut()  # the train enters a tunnel
        await expect(page.locator("#connection")).to_have_text("Reconnecting…")
        await expect(page.locator("#connection")).to_be_visible()
        await _chat(port, room_id, sessions, "said in the tunnel")
        await page.wait_for_timeout(1500)
        proxy.restore()

        await joined(page, 20_000)
        # It resumed from the last event it had: the missed line came as a replay, not as part
        # of a fresh snapshot.
        hellos = [m for m in sent if m["type"] == "hello"]
        assert len(hellos) == 2 and "last_seq" not in hellos[0]
        welcomes = [m for m in received if m["type"] == "welcome"]
        assert [w["resumed"] for w in welcomes] == [False, True]
        assert hellos[1]["last_seq"] == max(
            int(m["seq"]) for m in received[: received.index(welcomes[1])] if "seq" in m
        )
        replayed = received[received.index(welcomes[1]) :]
        assert [m["text"] for m in replayed if m["type"] == "chat"] == ["said in the tunnel"]
        assert not [m for m in replayed if m["type"] == "snapshot"]
        lines = page.locator(".chat-text")
        await expect(lines.filter(has_text="said in the tunnel")).to_have_count(1)
        await expect(lines.filter(has_text="before the tunnel")).to_have_count(1)
        # Dropped sockets are not page errors: only a failed page request would be.
        viewer.problems = [p for p in viewer.problems if "/ws/rooms/" not in p]
        viewer.assert_clean()
    finally:
        await ctx.close()
        await proxy.close()


async def _chat(port: int, room_id: int, sessions: GuestSessions, text: str) -> None:
    """Say something in the room as another guest, straight to the server."""
    _, token = sessions.issue()
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/rooms/{room_id}") as ws:
        await ws.send(json.dumps({"type": "hello", "token": token, "name": "Other"}))
        await ws.send(json.dumps({"type": "chat", "text": text}))
        async for frame in ws:
            if any(m.get("type") == "chat" and m.get("text") == text for m in json.loads(frame)):
                return
