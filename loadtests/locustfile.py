"""Flash-deal traffic for locust: viewers in a live room, buyers racing for a deal, a creator.

- ``Viewer``: gets a guest session, joins the room over its websocket and stays; chats rarely,
  likes now and then.
- ``Buyer``: a viewer who, when the deal goes live, reserves within the first second, then pays
  with the sandbox card (or, now and then, gives the hold back).
- ``Shopper``: a viewer who, while the deal runs, puts 1-3 of the bag's SKUs in the cart at list
  price, checks the cart out (one hold of every line) and pays (the "bag" mix).
- ``Creator``: one per run; pins products and starts the deal (``storm``), keeps pinning
  (``steady``, ``reconnect``), or starts an anti-snipe auction (``auction``) and ends the run
  once it is paid for or unsold.

In the ``auction`` scenario the buyers bid instead: each bids over its websocket at a random
moment of the last three seconds before the close it was last told (so every bid lands in the
anti-snipe window and moves the close), at the minimum plus a few steps, up to five times,
until the auction closes; each keeps a card on file first, and the winner is charged on it.

Websocket messages are reported to locust's statistics as request type ``WS``, named by message
type, with the time from the server's ``ms`` stamp to receipt as the response time. What viewers
saw is reported as type ``VIEWER`` (``saw deal.sold_out``, ``resumed``, ``snapshot``, ``seq
gap``, ``back in room``...), so a run's CSV says how many did. In the ``reconnect`` scenario
every viewer that was in the room at the drop's moment (``--drop-at-ms``, or by default
``--drop-after-in-s`` after the run's control saw the audience in) drops its connection without
a goodbye then and comes back with the last sequence number it had (``dropped``); one that
joined later is reported as ``not joined at drop`` and not dropped.

Run through ``loadtests/scenarios.py`` (it starts a server, sets the room up, runs this file
headless and audits the deal); the options below are what it passes. It runs in one process or
distributed (``--processes N``): the run's control (when the audience is in, when the run is
over) lives where the whole run's statistics are, the master (or the one local process), and
talks to the users in the workers with locust's custom messages.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import time
from typing import Any

import gevent
import orjson
import websocket
from gevent.event import AsyncResult, Event
from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment
from locust.rpc import Message
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner, WorkerRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

CARD = "4242424242424242"
# A bid that lost its race (another bid came first, or the close did): an answer, not a failure.
LOST_RACES = frozenset({"bid_too_low", "bid_not_higher", "auction_closed"})
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on with 0 s: closing sends RST, not FIN
# A dropped viewer waits 0.2-2 s and reconnects; it must be back in the room this soon.
BACK_WITHIN_S = 8.0
# After the last unit sells, how long the storm waits for every viewer's deal.sold_out at most.
SOLD_OUT_WAIT_S = 60.0
# Set in every process that runs users once the control says the audience is in.
AUDIENCE_IN = Event()
# The reconnect drop's moment (ms since the epoch), once known in this process.
DROP_AT: AsyncResult = AsyncResult()


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    add = parser.add_argument
    add("--scenario", choices=["storm", "steady", "reconnect", "auction"], default="storm")
    add("--room-id", type=int, default=1, env_var="LOADTEST_ROOM_ID")
    add("--seller-token", default="", env_var="LOADTEST_SELLER_TOKEN")
    add("--deal-sku", type=int, default=0, env_var="LOADTEST_DEAL_SKU")
    add("--deal-units", type=int, default=200, env_var="LOADTEST_DEAL_UNITS")
    add("--deal-price", type=int, default=3900, env_var="LOADTEST_DEAL_PRICE")
    add("--countdown-s", type=int, default=10, env_var="LOADTEST_COUNTDOWN_S")
    add("--expect-users", type=int, default=0, env_var="LOADTEST_EXPECT_USERS")
    add("--abandon-share", type=float, default=0.1, env_var="LOADTEST_ABANDON_SHARE")
    add("--buy-share", type=float, default=0.25, env_var="LOADTEST_BUY_SHARE")
    add("--bag-share", type=float, default=0.1, env_var="LOADTEST_BAG_SHARE")
    add("--pin-products", default="", env_var="LOADTEST_PIN_PRODUCTS")
    add("--pin-every-s", type=float, default=5.0, env_var="LOADTEST_PIN_EVERY_S")
    add("--drop-at-ms", type=int, default=0, env_var="LOADTEST_DROP_AT_MS")
    add("--drop-after-in-s", type=float, default=4.0, env_var="LOADTEST_DROP_AFTER_IN_S")


@events.init.add_listener
def _weights(environment: Environment, **_: Any) -> None:
    # The share of the audience that tries to buy decides the two classes' weights.
    options = environment.parsed_options
    if options is not None:
        share = min(1.0, max(0.0, options.buy_share))
        bag = min(1.0 - share, max(0.0, options.bag_share))
        Buyer.weight, Shopper.weight = round(share * 1000), round(bag * 1000)
        Viewer.weight = 1000 - Buyer.weight - Shopper.weight


@events.init.add_listener
def _control(environment: Environment, **_: Any) -> None:
    """Wire the run's control: the master (or the one local process) watches the audience and
    ends the run; the processes that run users hear that the audience is in."""
    runner = environment.runner
    if runner is None:
        return
    if not isinstance(runner, MasterRunner):
        runner.register_message("audience in", lambda **_: AUDIENCE_IN.set())
        runner.register_message("drop at", lambda msg, **_: DROP_AT.set(msg.data))
    if not isinstance(runner, WorkerRunner):
        control = Control(environment)
        runner.register_message("deal sold", control.on_deal_sold)
        runner.register_message("auction settled", control.on_auction_settled)
        environment.events.test_start.add_listener(lambda **_: control.start())


class Control:
    """Runs where the whole run's statistics are (a worker only sees its own, and resets them
    after each report to the master)."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.ending = False

    @property
    def runner(self) -> Any:
        return self.environment.runner

    @property
    def viewers(self) -> int:
        options = self.environment.parsed_options
        return (options.expect_users if options is not None else 0) - 1  # all but the creator

    def seen(self, name: str) -> int:
        entry = self.environment.stats.entries.get((name, "VIEWER"))
        return entry.num_requests if entry is not None else 0

    def start(self) -> None:
        gevent.spawn(self.admit)
        options = self.environment.parsed_options
        if options is not None and options.scenario == "reconnect":
            gevent.spawn(self._quit_once_all_accounted)

    def admit(self) -> None:
        """Everyone has joined, or the spawn should long be over: a viewer whose start failed
        is not counted, and must not keep the deal from starting."""
        options = self.environment.parsed_options
        expect = options.expect_users if options is not None else 0
        deadline = time.monotonic() + expect / 20 + 10
        while self.runner.user_count < expect and time.monotonic() < deadline:
            gevent.sleep(0.2)
        self.runner.send_message("audience in")
        if options is not None and options.scenario == "reconnect" and not options.drop_at_ms:
            self.runner.send_message("drop at", (time.time() + options.drop_after_in_s) * 1000)

    def on_deal_sold(self, msg: Message, **_: Any) -> None:
        if not self.ending:
            self.ending = True
            gevent.spawn(self._quit_once_everyone_saw, time.monotonic() + SOLD_OUT_WAIT_S)

    def on_auction_settled(self, msg: Message, **_: Any) -> None:
        if not self.ending:
            self.ending = True
            gevent.spawn_later(3, self._quit)

    def _quit_once_everyone_saw(self, deadline: float) -> None:
        while time.monotonic() < deadline and self.seen("saw deal.sold_out") < self.viewers:
            gevent.sleep(0.2)
        self._quit()

    def _quit_once_all_accounted(self) -> None:
        """The reconnect run is over once every viewer was dropped or counted apart, and every
        dropped one was judged back or not: ending on --run-time instead could cut the last
        worker reports off. --run-time stays the bound if some viewer never starts."""
        while not self.ending:
            dropped, late = self.seen("dropped"), self.seen("not joined at drop")
            judged = self.seen("back in room") + self.seen("not back")
            if dropped + late >= self.viewers and judged >= dropped:
                self.ending = True
                self._quit()
            gevent.sleep(0.5)

    def _quit(self) -> None:
        # The CSV the verdict reads is written every CSV_STATS_INTERVAL_SEC, and not again at
        # the end; workers report to the master every WORKER_REPORT_INTERVAL. Quitting at once
        # would leave the CSV without the last requests and events.
        flush = 2 * CSV_STATS_INTERVAL_SEC + 0.5
        if isinstance(self.runner, MasterRunner):
            flush += 2 * WORKER_REPORT_INTERVAL
        gevent.sleep(flush)
        self.runner.quit()


def report(
    env: Environment, kind: str, name: str, ms: float = 0, error: BaseException | None = None
) -> None:
    env.events.request.fire(
        request_type=kind,
        name=name,
        response_time=ms,
        response_length=0,
        exception=error,
        context={},
    )


class Missed(Exception):
    """Something a viewer should have had and did not (a gap in the room's sequence)."""


class RoomSocket:
    """One viewer's websocket: hello (with ``last_seq`` when coming back), a reader greenlet
    that checks the room's sequence numbers and reports every message, reconnects on a drop."""

    def __init__(self, user: RoomUser, token: str) -> None:
        self.user = user
        self.env = user.environment
        self.token = token
        host = user.host.removeprefix("http://").removeprefix("https://")
        self.url = f"ws://{host}/ws/rooms/{user.options.room_id}"
        self.ws: websocket.WebSocket | None = None
        self.last_seq: int | None = None
        self.welcomes = 0
        self.joined_ms: float | None = None  # when the first welcome came, by this clock
        self.replay_until: int | None = None
        self.replayed = 0
        self.stopped = False
        self.user_id = ""  # the room's name for this viewer, from welcome
        self.reader: gevent.Greenlet | None = None

    def open(self) -> None:
        old, started = self.ws, time.perf_counter()
        try:
            # Frames are JSON the server made: skipping the UTF-8 check keeps the generator cheap.
            self.ws = websocket.create_connection(
                self.url, timeout=30, enable_multithread=True, skip_utf8_validation=True
            )
        except (OSError, websocket.WebSocketException) as err:
            report(self.env, "WS", "connect", (time.perf_counter() - started) * 1000, err)
            raise
        report(self.env, "WS", "connect", (time.perf_counter() - started) * 1000)
        if old is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                old.close()
        hello: dict[str, Any] = {"type": "hello", "token": self.token}
        if self.last_seq is not None:
            hello["last_seq"] = self.last_seq
        self.send(hello)
        self.reader = gevent.spawn(self._read, self.ws)

    def send(self, message: dict[str, Any]) -> None:
        if self.ws is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                self.ws.send(orjson.dumps(message).decode())

    def _read(self, ws: websocket.WebSocket) -> None:
        ws.settimeout(None)
        while not self.stopped:
            try:
                frame = ws.recv()
            except (OSError, websocket.WebSocketException):
                break
            if not frame:
                break
            try:
                for message in orjson.loads(frame):
                    self._message(message)
            except Exception as err:  # a reader that dies silently would leave a deaf viewer
                report(self.env, "VIEWER", "bad frame", 0, err)
        if not self.stopped and ws is self.ws:
            report(self.env, "VIEWER", "connection lost")
            gevent.spawn_later(random.uniform(0.2, 2.0), self.reopen)

    def reopen(self) -> None:
        if self.stopped:
            return
        try:
            self.open()
        except (OSError, websocket.WebSocketException):
            gevent.spawn_later(random.uniform(0.5, 3.0), self.reopen)

    def _message(self, m: dict[str, Any]) -> None:
        kind = m.get("type", "?")
        if "ms" in m:
            report(self.env, "WS", kind, max(0.0, time.time() * 1000 - m["ms"]))
        if kind == "welcome":
            self.user_id = m["user"]
            self.welcomes += 1
            if self.welcomes == 1:
                self.joined_ms = time.time() * 1000
                report(self.env, "VIEWER", "joined")
            else:
                report(self.env, "VIEWER", "resumed" if m["resumed"] else "snapshot after drop")
            if m["resumed"] and m["seq"] == self.last_seq:
                report(self.env, "VIEWER", "replayed events", 0)  # nothing was missed
            elif m["resumed"]:
                # The replay runs up to welcome.seq; its length is reported as the "response
                # time" of a "replayed events" entry (so the CSV's average is events per resume).
                self.replay_until = m["seq"]
                self.replayed = 0
            else:
                self.last_seq = m["seq"]
        elif kind == "snapshot":
            self.last_seq = m["seq"]
            self.user.on_snapshot(m)
        elif "seq" in m:
            seq = m["seq"]
            if self.last_seq is not None and seq != self.last_seq + 1:
                name = "seq duplicate" if seq <= self.last_seq else "seq gap"
                report(self.env, "VIEWER", name, 0, Missed(f"{self.last_seq} -> {seq}"))
            self.last_seq = max(seq, self.last_seq or 0)
            if self.replay_until is not None:
                self.replayed += 1
                if seq >= self.replay_until:
                    report(self.env, "VIEWER", "replayed events", self.replayed)
                    self.replay_until = None
        if kind == "error" and m["code"] in LOST_RACES:
            report(self.env, "WS", f"lost bid ({m['code']})")  # an answer, not a failure
        elif kind == "error":
            report(self.env, "WS", f"error {m['code']}", 0, Missed(m.get("message", "")))
        self.user.on_message(kind, m)

    def drop(self) -> None:
        """Lose the connection with no close frame and no orderly TCP close: a reset, as when
        a phone's network goes (the server's read fails; it owes the viewer nothing)."""
        if self.ws is not None and self.ws.sock is not None:
            with contextlib.suppress(OSError):
                self.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                self.ws.sock.close()  # the reader greenlet wakes with an error

    def close(self) -> None:
        self.stopped = True
        if self.ws is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                self.ws.close()


class RoomUser(FastHttpUser):
    abstract = True
    wait_time = between(4, 12)

    @property
    def options(self) -> Any:
        return self.environment.parsed_options

    def on_start(self) -> None:
        session = self.client.post("/api/session", name="/api/session").json()
        self.token = session["token"]
        self.saw_sold_out: set[int] = set()
        self.socket = RoomSocket(self, self.token)
        self.socket.open()
        if self.options.scenario == "reconnect":
            if self.options.drop_at_ms and not DROP_AT.ready():
                DROP_AT.set(self.options.drop_at_ms)  # given: no need to wait for the control
            gevent.spawn(self._drop_when_told)

    def _drop_when_told(self) -> None:
        at = DROP_AT.get()
        gevent.sleep(max(0.0, at / 1000 - time.time()))
        self._drop_and_return(at)

    def _drop_and_return(self, at: float) -> None:
        """Only a viewer that was in the room at the drop's moment is dropped and judged; one
        that joined later (a slow generator spawns late) is counted apart, not as a failure."""
        joined = self.socket.joined_ms
        if joined is None or joined > at:
            report(self.environment, "VIEWER", "not joined at drop")
            return
        report(self.environment, "VIEWER", "dropped")
        welcomes = self.socket.welcomes
        self.socket.drop()

        def back() -> None:
            if self.socket.welcomes > welcomes:
                report(self.environment, "VIEWER", "back in room")
            else:
                report(self.environment, "VIEWER", "not back", 0, Missed("no welcome"))

        gevent.spawn_later(BACK_WITHIN_S, back)

    def on_stop(self) -> None:
        self.socket.close()

    def on_snapshot(self, m: dict[str, Any]) -> None:
        pass

    def on_message(self, kind: str, m: dict[str, Any]) -> None:
        if kind == "deal.sold_out" and m["deal_id"] not in self.saw_sold_out:
            self.saw_sold_out.add(m["deal_id"])
            report(self.environment, "VIEWER", "saw deal.sold_out")

    @task(3)
    def like(self) -> None:
        self.socket.send({"type": "like", "count": random.randint(1, 5)})

    @task(1)
    def chat(self) -> None:
        if random.random() < 0.2:  # rarely: most viewers only watch
            self.socket.send({"type": "chat", "text": random.choice(CHAT_LINES)})


CHAT_LINES = ["hi!", "what size is it?", "love it", "is there a blue one?", "🔥🔥", "bought!"]


class Viewer(RoomUser):
    weight = 3


BIDS_PER_BIDDER = 5
LAST_SECONDS = 3.0


class Buyer(RoomUser):
    """Waits for the deal, reserves within the first second, pays (or gives it back). In the
    ``auction`` scenario: bids in the last seconds, and pays if it wins."""

    weight = 1

    def on_message(self, kind: str, m: dict[str, Any]) -> None:
        super().on_message(kind, m)
        if self.options.scenario == "auction":
            self.follow_auction(kind, m)
            return
        if kind == "deal.live":
            gevent.spawn_later(random.uniform(0, 1.0), self.buy, m["deal_id"])

    def follow_auction(self, kind: str, m: dict[str, Any]) -> None:
        if kind in ("auction.started", "auction.bid") and not getattr(self, "carded", False):
            # Bidding needs a card on file: it is charged if this bidder wins.
            self.carded = True
            self.client.put(
                "/api/payment-method",
                json={"card": CARD},
                headers={"Authorization": f"Bearer {self.token}"},
                name="card on file",
            )
        if kind in ("auction.started", "auction.bid"):
            a = m["auction"]
            self.auction = a
            if kind == "auction.started" or not getattr(self, "bidding", False):
                self.bidding = True
                gevent.spawn(self.bid_late)
        elif kind == "auction.closed":
            self.auction = m["auction"]
        # A win is charged to the card on file (auction.paid): nothing to do here.

    def bid_late(self) -> None:
        """Up to BIDS_PER_BIDDER bids, each at a random moment of the last seconds before the
        close as last heard (a bid there moves the close: the next one waits for the new end)."""
        for n in range(BIDS_PER_BIDDER):
            a = self.auction
            if a["state"] != "open":
                return
            wait = (a["ends_ms"] - time.time() * 1000) / 1000 - random.uniform(0, LAST_SECONDS)
            gevent.sleep(max(0.0, wait))
            a = self.auction
            if a["state"] != "open" or a.get("leader") == getattr(self.socket, "user_id", None):
                continue
            amount = a["min_bid"] + random.randint(0, 3) * 50
            self.socket.send(
                {"type": "bid", "auction_id": a["auction_id"], "amount": amount, "ref": f"b{n}"}
            )
            gevent.sleep(random.uniform(0.3, 1.0))

    def on_snapshot(self, m: dict[str, Any]) -> None:
        if self.options.scenario == "auction":
            for a in m.get("auctions", []):
                self.follow_auction("auction.started", {"auction": a})
            return
        # Joined after the deal went live: buy it now, once.
        for deal in m["room"]["deals"]:
            if deal["status"] == "live" and not getattr(self, "tried", False):
                gevent.spawn_later(random.uniform(0, 1.0), self.buy, deal["deal_id"])

    def buy(self, deal_id: int) -> None:
        if getattr(self, "tried", False):
            return
        self.tried = True
        auth = {"Authorization": f"Bearer {self.token}"}
        with self.client.post(
            f"/api/deals/{deal_id}/reserve",
            json={"qty": 1, "request_id": f"tap-{deal_id}"},
            headers=auth,
            name="reserve",
            catch_response=True,
        ) as r:
            if r.status_code == 409 and r.json()["error"]["code"] in {"sold_out", "limit_exceeded"}:
                r.success()  # lost the race: an answer, not a failure
                return
            if r.status_code not in (200, 201):
                r.failure(f"{r.status_code} {r.text[:200]}")
                return
            hold = r.json()["hold"]["id"]
        if random.random() < self.options.abandon_share:
            self.client.delete(f"/api/holds/{hold}", headers=auth, name="release")
            return
        self.client.post(
            f"/api/holds/{hold}/checkout",
            json={"card": CARD},
            headers={**auth, "Idempotency-Key": f"pay-{hold}"},
            name="checkout",
        )


class Shopper(RoomUser):
    """While the deal runs, fills a cart from the room's bag at list price and pays for it."""

    weight = 1  # set from --bag-share (locust leaves out a class whose weight starts at 0)

    def on_snapshot(self, m: dict[str, Any]) -> None:
        self.skus = [sku["sku_id"] for card in m["room"]["bag"] for sku in card["skus"]]
        if any(deal["status"] == "live" for deal in m["room"]["deals"]):
            gevent.spawn_later(random.uniform(0, 2.0), self.shop)

    def on_message(self, kind: str, m: dict[str, Any]) -> None:
        super().on_message(kind, m)
        if kind == "deal.live":
            gevent.spawn_later(random.uniform(0, 2.0), self.shop)

    def shop(self) -> None:
        if getattr(self, "tried", False) or not getattr(self, "skus", None):
            return
        self.tried = True
        auth = {"Authorization": f"Bearer {self.token}"}
        for sku in random.sample(self.skus, min(len(self.skus), random.randint(1, 3))):
            self.client.put(
                f"/api/cart/items/{sku}", json={"qty": 1}, headers=auth, name="cart item"
            )
        with self.client.post(
            "/api/cart/checkout",
            json={"request_id": "bag"},
            headers=auth,
            name="cart checkout",
            catch_response=True,
        ) as r:
            if r.status_code == 409 and r.json()["error"]["code"] == "insufficient_stock":
                r.success()  # the shelf ran short: an answer, not a failure
                return
            if r.status_code not in (200, 201):
                r.failure(f"{r.status_code} {r.text[:200]}")
                return
            hold = r.json()["hold"]["id"]
        self.client.post(
            f"/api/holds/{hold}/checkout",
            json={"card": CARD},
            headers={**auth, "Idempotency-Key": f"pay-{hold}"},
            name="cart pay",
        )


class Creator(FastHttpUser):
    """The creator's side: starts the deal once the audience is in (storm), pins products
    on a schedule (every scenario)."""

    fixed_count = 1
    wait_time = between(1, 2)

    @property
    def options(self) -> Any:
        return self.environment.parsed_options

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.options.seller_token}"}
        self.products = [int(p) for p in self.options.pin_products.split(",") if p]
        self.deal_started = self.options.scenario not in ("storm", "auction")
        self.auction_id: int | None = None
        self.deal_id: int | None = None
        self.pins = 0
        self.next_pin = 0.0

    def audience_in(self) -> bool:
        return AUDIENCE_IN.is_set()  # set by the run's control (see Control.admit)

    @task
    def act(self) -> None:
        if self.deal_id is not None:
            self.stop_when_sold(self.deal_id)
        if self.auction_id is not None:
            self.stop_when_settled(self.auction_id)
        if not self.deal_started and self.audience_in() and self.options.scenario == "auction":
            self.deal_started = True
            made = self.client.post(
                f"/api/rooms/{self.options.room_id}/auctions",
                json={
                    "sku_id": self.options.deal_sku,
                    "start_price": 1000,
                    "duration_s": 15,
                    "mode": "standard",
                    "snipe_s": 5,
                },
                headers=self.headers,
                name="start auction",
            )
            if made.status_code == 201:
                self.auction_id = made.json()["auction"]["auction_id"]
        if not self.deal_started and self.audience_in():
            self.deal_started = True
            made = self.client.post(
                f"/api/rooms/{self.options.room_id}/deals",
                json={
                    "sku_id": self.options.deal_sku,
                    "deal_price": self.options.deal_price,
                    "quantity": self.options.deal_units,
                    "per_buyer_limit": 1,
                    "countdown_s": self.options.countdown_s,
                    "duration_s": 600,
                },
                headers=self.headers,
                name="start deal",
            )
            if made.status_code == 201:
                self.deal_id = made.json()["deal"]["deal_id"]
        if self.products and time.monotonic() >= self.next_pin:
            self.next_pin = time.monotonic() + self.options.pin_every_s
            self.pins += 1
            self.client.post(
                f"/api/rooms/{self.options.room_id}/pin",
                json={"product_id": self.products[self.pins % len(self.products)]},
                headers=self.headers,
                name="pin",
            )

    def stop_when_settled(self, auction_id: int) -> None:
        """The auction is over once its lot is sold (the winner paid) or unsold."""
        a = self.client.get(
            f"/api/rooms/{self.options.room_id}/auctions/{auction_id}", name="auction"
        ).json()["auction"]
        runner = self.environment.runner
        if a["state"] in ("sold", "unsold") and runner is not None:
            self.auction_id = None
            runner.send_message("auction settled")

    def stop_when_sold(self, deal_id: int) -> None:
        """The storm is over once every unit is sold (none left, none held) and every viewer
        has seen the sold-out event, or SOLD_OUT_WAIT_S after the sale if some never do (the
        verdict then counts who did): a condition, not a fixed pause, so a loaded machine
        that delivers late is not judged as one that did not deliver. The run's control
        (``Control``) waits for the viewers: only it sees every process's counts."""
        stock = self.client.get(f"/api/deals/{deal_id}", name="deal").json()["deal"]["stock"]
        runner = self.environment.runner
        if stock["available"] == 0 and stock["held"] == 0 and runner is not None:
            self.deal_id = None
            runner.send_message("deal sold")
