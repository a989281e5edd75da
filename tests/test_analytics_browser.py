"""Live analytics in a real browser (Debian's Chromium): the studio's sparklines get new points
while a phone viewer opens the bag and a product and websocket viewers like and chat, and
while locust's steady scenario runs against the room; the charts load under the pages'
content security policy with no console error."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser import DESKTOP, PHONE, joined, new_page
from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import until
from tests.test_finance import two_currency_room
from tests.test_pages import shop as shop  # the fixture: a jacket and a mug
from tests.test_pages import sign_in
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage
ROOT = Path(__file__).resolve().parent.parent


async def _live_room(base: str, seller: SellerAccount) -> int:
    async with httpx.AsyncClient(base_url=base, headers=seller.headers) as http:
        made = await http.post("/api/rooms", json={"shop_id": seller.shop.id, "title": "Charts"})
        room: int = made.json()["room"]["id"]
        found = await http.get("/api/products", params={"shop_id": seller.shop.id})
        for product in found.json()["products"]:
            await http.post(f"/api/rooms/{room}/bag", json={"product_id": product["id"]})
        assert (await http.post(f"/api/rooms/{room}/live")).status_code == 200
    return room


async def drawn(page: Page, series: str) -> tuple[str | None, str | None]:
    """The sparkline's points count and newest value, as it last drew them."""
    plot = page.locator(f'#sparklines [data-series="{series}"] .spark-plot')
    return await plot.get_attribute("data-points"), await plot.get_attribute("data-last")


async def until_redrawn(page: Page, series: str, before: tuple[str | None, str | None]) -> None:
    """The sparkline drew something else: a higher newest point, or a new minute's point."""
    await page.wait_for_function(
        """([series, points, last]) => {
          const node = document.querySelector(`#sparklines [data-series="${series}"] .spark-plot`);
          return node.dataset.points !== points || node.dataset.last !== last;
        }""",
        arg=[series, *before],
        timeout=60_000,  # the studio polls every 2 s; a loaded CI machine is slower
    )


async def until_plotted(page: Page, series: str, at_least: float, of: str = "total") -> None:
    """The sparkline's points add up to ``at_least`` (``of="last"``: its newest point does, for
    a gauge such as viewers at once). Counts are summed because a minute can turn between the
    posts and the studio's next poll (every 2 s), leaving the newest point at 0."""
    await page.wait_for_function(
        """([series, want, of]) => {
          const node = document.querySelector(`#sparklines [data-series="${series}"] .spark-plot`);
          return node && Number(node.dataset.points) > 0 && Number(node.dataset[of]) >= want
            && node.querySelector("canvas") !== null;
        }""",
        arg=[series, at_least, of],
        timeout=60_000,  # the studio polls every 2 s; a loaded CI machine is slower
    )


async def test_the_studio_sparklines_move_with_the_rooms_traffic(
    browser: Browser, server: Server, shop: SellerAccount, sessions: GuestSessions
) -> None:
    base = server.base_url
    room = await _live_room(base, shop)
    studio_ctx, studio = await new_page(browser, "studio", **DESKTOP)
    phone_ctx, phone = await new_page(browser, "viewer", **PHONE)
    sockets: list[WsViewer] = []
    try:
        creator = studio.page
        await sign_in(creator, base, shop.token, then=f"/studio/{room}")
        viewer = phone.page
        await viewer.goto(f"{base}/live/{room}?lang=en")
        await joined(viewer)

        # The phone opens the bag (two products shown) and one product in it.
        await viewer.click("#bag-button")
        await expect(viewer.locator("#bag-items .bag-item")).to_have_count(2)
        await until_plotted(creator, "impressions", 2)
        await viewer.locator("#bag-items .bag-item button").first.click()
        await until_plotted(creator, "clicks", 1)

        # Websocket viewers like and chat; the studio's points follow as they do.
        for _ in range(2):
            _, headers = viewer_headers(sessions)
            ws = await WsViewer.open(base, room)
            await ws.hello(headers["Authorization"].split()[1])
            sockets.append(ws)
        await until_plotted(creator, "viewers", 3, of="last")
        await until_plotted(creator, "likes", 0)
        for round_ in range(3):
            before = await drawn(creator, "likes")
            for ws in sockets:
                await ws.send(type="like", count=5)
                await ws.send(type="chat", text=f"round {round_}")
            await until_redrawn(creator, "likes", before)
        await until_plotted(creator, "chat", 1)
        studio.assert_clean()
        phone.assert_clean()
    finally:
        for ws in sockets:
            await ws.ws.close()
        await studio_ctx.close()
        await phone_ctx.close()


async def test_the_studio_shows_each_currencys_sales_apart(
    browser: Browser,
    server: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    """Decision 0053 on the studio's tiles: a room that sold in dollars and euros shows both
    amounts, joined, never one sum (studio.js joins the figures' ``sales``)."""
    room = await two_currency_room(http, seller, sessions)
    ctx, watched = await new_page(browser, "studio", **DESKTOP)
    try:
        page = watched.page
        await sign_in(page, server.base_url, seller.token, then=f"/studio/{room}")
        await expect(page.locator("#fig-gmv")).to_have_text("€49.00 · $98.00", timeout=30_000)
        await expect(page.locator("#fig-net-gmv")).to_have_text("€49.00 · $98.00")
        await expect(page.locator("#fig-sold")).to_have_text("3")
        watched.assert_clean()
    finally:
        await ctx.close()


async def test_the_seller_center_draws_an_ended_lives_minutes_and_the_shops_days(
    browser: Browser, server: Server, shop: SellerAccount, sessions: GuestSessions
) -> None:
    base = server.base_url
    room = await _live_room(base, shop)
    _, headers = viewer_headers(sessions)
    ws = await WsViewer.open(base, room)
    await ws.hello(headers["Authorization"].split()[1])
    await ws.send(type="chat", text="lovely")
    await ws.send(type="bag.opened")
    await ws.next("chat", text="lovely")
    async with httpx.AsyncClient(base_url=base, headers=shop.headers) as http:

        async def counted() -> bool:
            totals = (await http.get(f"/api/rooms/{room}/analytics")).json()["analytics"]["totals"]
            return (totals["impressions"], totals["peak_viewers"]) == (2, 1)

        await until(counted, "the viewer and the bag's impressions counted")
        assert (await http.post(f"/api/rooms/{room}/end")).status_code == 200

        async def written() -> bool:
            found = await http.get(f"/api/rooms/{room}/analytics")
            return found.json()["analytics"]["source"] == "sql"

        await until(written, "the ended room's minutes written to SQL")
    await ws.ws.close()
    ctx, watched = await new_page(browser, "seller center", **DESKTOP)
    try:
        page = watched.page
        await sign_in(page, base, shop.token)
        trend = page.locator(f"#trend-{shop.shop.id} .analytics-chart")
        await expect(trend).to_have_attribute("data-points", "30")
        await expect(trend.locator("canvas")).to_have_count(1)
        csv = page.locator(f"#trend-{shop.shop.id} a.trend-csv")
        assert await csv.get_attribute("href") == (
            f"/api/shops/{shop.shop.id}/analytics/daily.csv?days=30"
        )
        charts = page.locator(f"#charts-{room}")
        await charts.locator("summary").click()
        await expect(charts.locator(".analytics-chart canvas")).to_have_count(1)
        totals = charts.locator(".room-totals")
        await expect(totals).to_contain_text("Impressions 2")
        await expect(totals).to_contain_text("Viewers 1 (1 at most at once)")
        minutes = await charts.locator(".analytics-chart").get_attribute("data-points")
        assert int(minutes or 0) >= 1
        watched.assert_clean()
    finally:
        await ctx.close()


@pytest.mark.slow  # locust runs until the charts have moved (20-30 s here)
async def test_the_studio_charts_move_while_a_locust_steady_scenario_runs(
    browser: Browser, server: Server, shop: SellerAccount, tmp_path: Path
) -> None:
    """The issue's Done-when: locust's steady scenario (viewers chatting, the creator pinning)
    against the room, and the studio's chat and viewer sparklines redraw as it runs."""
    base = server.base_url
    room = await _live_room(base, shop)
    async with httpx.AsyncClient(base_url=base, headers=shop.headers) as http:
        found = await http.get("/api/products", params={"shop_id": shop.shop.id})
        products = [str(p["id"]) for p in found.json()["products"]]
    studio_ctx, studio = await new_page(browser, "studio", **DESKTOP)
    env = {
        **os.environ,
        "LOADTEST_ROOM_ID": str(room),
        "LOADTEST_SELLER_TOKEN": shop.token,
        "LOADTEST_EXPECT_USERS": "21",
        "LOADTEST_PIN_PRODUCTS": ",".join(products),
    }
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
        "--headless", "--host", base, "--users", "21", "--spawn-rate", "21",
        # A bound, not the test's length: locust is stopped once the charts have moved. Chat
        # must keep coming however long a loaded machine takes to sign in and plot.
        "--run-time", "180s", "--stop-timeout", "5", "--scenario", "steady",
        "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    log = (tmp_path / "locust.log").open("w")
    swarm = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
    )
    try:
        creator = studio.page
        await sign_in(creator, base, shop.token, then=f"/studio/{room}")
        await until_plotted(creator, "viewers", 5, of="last")  # locust's viewers are in the room
        for _ in range(3):  # and their chat keeps the chart moving
            await until_redrawn(creator, "chat", await drawn(creator, "chat"))
        studio.assert_clean()
    finally:
        if swarm.returncode is None:
            swarm.terminate()
        await asyncio.wait_for(swarm.wait(), 30)
        log.close()
        await studio_ctx.close()
