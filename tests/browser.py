"""Driving Debian's Chromium with Playwright for the page tests: launching it (or saying why it
cannot be), pages that record every console error, page error and failed request, a check that
nothing sticks out of a phone's screen, and a TCP proxy that can cut a page's connections the
way a train tunnel does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    expect,
)

CHROMIUM = os.environ.get("LIVECART_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}


def chromium_or_skip() -> str:
    """The Chromium binary. Without one the page tests are skipped with the reason, except
    where LIVECART_REQUIRE_BROWSER is set (CI sets it): there a missing browser fails."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    message = f"no Chromium at {CHROMIUM}: apt-get install chromium (or set LIVECART_CHROMIUM)"
    if os.environ.get("LIVECART_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Watched:
    """A page and every problem it reported: console errors, uncaught exceptions, requests
    that failed or were answered 4xx/5xx."""

    page: Page
    name: str
    problems: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.problems == [], f"{self.name} reported problems: {self.problems}"


def watch(page: Page, name: str) -> Watched:
    watched = Watched(page, name)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.problems.append(f"console: {message.text}")

    def failed(request: Request) -> None:
        # A request the page itself abandoned by navigating away is not a failure.
        if request.failure != "net::ERR_ABORTED":
            watched.problems.append(f"failed: {request.method} {request.url} {request.failure}")

    def answered(response: Response) -> None:
        if response.status >= 400:
            watched.problems.append(
                f"http {response.status}: {response.request.method} {response.url}"
            )

    page.on("console", console)
    page.on("pageerror", lambda error: watched.problems.append(f"pageerror: {error}"))
    page.on("requestfailed", failed)
    page.on("response", answered)
    return watched


async def new_page(
    browser: Browser, name: str, **context: object
) -> tuple[BrowserContext, Watched]:
    ctx = await browser.new_context(**context)  # type: ignore[arg-type]
    page = await ctx.new_page()
    return ctx, watch(page, name)


# Describes every rendered element under (and including) the first match of a selector whose
# box reaches past the viewport's left or right edge. Half a pixel is layout rounding.
OVERFLOWING_JS = """
(selector) => {
  const root = document.querySelector(selector);
  if (!root) return [`no element matches ${selector}`];
  const width = document.documentElement.clientWidth;
  const found = [];
  for (const node of [root, ...root.querySelectorAll("*")]) {
    const box = node.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;  // not rendered
    if (box.left >= -0.5 && box.right <= width + 0.5) continue;
    const name = node.tagName.toLowerCase() + (node.id ? `#${node.id}` : "")
      + (node.getAttribute("name") ? `[name=${node.getAttribute("name")}]` : "");
    found.push(`${name} spans ${Math.round(box.left)}..${Math.round(box.right)} of ${width}`);
  }
  return found;
}
"""


async def overflowing(page: Page, selector: str) -> list[str]:
    """Elements of ``selector`` that leave the viewport sideways (cut off on a phone), as
    ``"input[name=line1] spans 12..407 of 390"``; empty when everything fits."""
    found: list[str] = await page.evaluate(OVERFLOWING_JS, selector)
    return found


OVERLAPPING_JS = """
(selectors) => {
  const boxes = selectors.flatMap((selector) => [...document.querySelectorAll(selector)])
    .map((node) => [node, node.getBoundingClientRect()])
    .filter(([, box]) => box.width > 0 && box.height > 0);  // rendered ones only
  const found = [];
  for (const [i, [a, p]] of boxes.entries()) {
    for (const [b, q] of boxes.slice(i + 1)) {
      if (a.contains(b) || b.contains(a)) continue;
      const x = Math.min(p.right, q.right) - Math.max(p.left, q.left);
      const y = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
      if (x > 1 && y > 1) found.push(`${a.id || a.className} covers ${b.id || b.className}`);
    }
  }
  return found;
}
"""


async def overlapping(page: Page, *selectors: str) -> list[str]:
    """Pairs of the rendered elements matching ``selectors`` that cover one another (by more
    than a pixel each way), as ``"bag-button covers viewers"``; empty when none do."""
    found: list[str] = await page.evaluate(OVERLAPPING_JS, list(selectors))
    return found


# The phone room's top: nothing there may sit on anything else, whatever the language.
ROOM_TOP = (
    "#live-badge",
    "#room-title",
    "#viewers",
    "#bag-button",
    "#cart-button",
    "#orders-link",
    "#account-link",
    ".room-nav .lang-switch",
    "#follow",
)


class CuttableProxy:
    """Forwards 127.0.0.1:port to the server. ``cut()`` drops every connection without a
    goodbye (no close frame, no FIN from the server's side reaches the browser first) and
    refuses new ones until ``restore()``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refusing = False
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
        self._writers.discard(sink)

    def cut(self) -> None:
        self.refusing = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.refusing = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


async def joined(page: Page, timeout_ms: float = 5_000) -> None:
    """The page's room socket has its welcome: the room is followed and its events and notices
    reach the page. The banner must be there first: a locator that matches nothing counts as
    hidden, and a page whose navigation has committed may not have parsed its body yet."""
    banner = page.locator("#connection")
    await expect(banner).to_be_attached(timeout=timeout_ms)
    await expect(banner).to_be_hidden(timeout=timeout_ms)
