"""A flash deal through a failover (issue 19): livecart nodes (``--nodes`` 3, each ``serve
--workers`` 2) and pipeline workers (``--pipeline-workers`` 2) behind HAProxy on loopback, on
a Valkey cluster of 3 primaries each with a replica (tests/cluster.py) and PostgreSQL; a room
of ``--viewers`` (2,000) spread over the nodes, a ``--units`` (500) deal and ``--buyers``
(1,500) racing for it. Once a third of the units are paid for, the Redis primary of the deal's
slot is killed (SIGKILL), and a moment later one livecart node (all its processes).

Viewers are asyncio websocket clients (one process, pre-signed guest sessions): each checks
the room's sequence numbers and, when its connection drops, comes back through HAProxy with
``last_seq`` after 0.2-2 s. Buyers reserve one unit and pay with the sandbox card, repeating a
refused or failed call with the same request id and Idempotency-Key, as the pages do.

The verdict: nothing oversold and no paid order lost (every checkout a buyer saw succeed, or
answered ``hold_already_paid`` to a retry, is an order in SQL, ``livecart audit``'s deal books
pass, ``livecart reconcile`` finds nothing), every viewer back in the room with no gap in its
events; and the figures: holds a buyer was told of and later lost (the loss window; 0 with
``LIVECART_REDIS_WAIT_REPLICAS=1``), how long the deal's slot refused calls after the kill, and
how long the killed node's viewers took to be back. Bounded: it gives up after ``--timeout``
seconds.

Run: ``python loadtests/failover.py [--runs 3] [--json]`` (needs haproxy and PostgreSQL at
``--database-url``, a server whose ``test`` database it may use to create its own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checkout.audit import settled_audit
from checkout.forgotten_sales import reconcile
from checkout.keys import Keyspace
from checkout.models import Order
from kernel.db import Database
from kernel.redis_client import connect
from loadtests.scenarios import create_seller, say, set_up
from loadtests.scratch_db import scratch_database
from tests import harness
from tests.cluster import ValkeyCluster
from tests.harness import NO_ADDRESS_LIMITS, ROOT, free_port, livecart
from web.auth import GuestSessions
from web.migrate import upgrade

CARD = "4242424242424242"
PREFIX = "lcfo"
SESSION_MAX_AGE_S = 24 * 3600
# A call that failed (a 503 while the slot moves, a connection cut by the dead node) is tried
# again this long after, with the same request id or Idempotency-Key.
RETRY_S = 0.2
# The run ends once every viewer has been in the room this long without a drop.
QUIET_S = 3.0
HAPROXY = """
global
    maxconn 5000
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h
    timeout http-request 10s
    # A connection refused by a node that just died goes to another at once.
    retries 3
    option redispatch
frontend livecart
    bind 127.0.0.1:{port}
    default_backend livecart
backend livecart
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter 500ms fall 2 rise 2
{servers}
"""


@dataclass
class Node:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL to every process of the node at once, as when its machine dies."""
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            pids = [int(p) for p in children.read_text().split()]
        except OSError:
            pids = []
        for pid in [self.process.pid, *pids]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)


@dataclass
class Viewer:
    number: int
    token: str
    last_seq: int | None = None
    welcomes: int = 0
    resumed: int = 0
    snapshots_after_drop: int = 0
    gaps: int = 0
    duplicates: int = 0
    drops: list[float] = field(default_factory=list)
    drop_codes: list[int] = field(default_factory=list)  # each drop's close code
    back: list[float] = field(default_factory=list)  # welcome times after each drop

    def returns(self, code: int) -> list[float]:
        """Seconds from each drop with close ``code`` to the next welcome."""
        found = []
        for dropped, closed in zip(self.drops, self.drop_codes, strict=True):
            later = [t for t in self.back if t > dropped]
            if closed == code and later:
                found.append(later[0] - dropped)
        return found

    connected: bool = False
    closes: dict[int, int] = field(default_factory=dict)  # by close code
    failures: dict[str, int] = field(default_factory=dict)  # connections that did not open


@dataclass
class Storm:
    """What the clients saw."""

    paid: dict[str, str] = field(default_factory=dict)  # hold id -> buyer, checkout 201
    told_holds: int = 0  # reservations answered 201
    lost_holds: list[str] = field(default_factory=list)  # told, then hold_not_found
    sold_out: int = 0
    already_paid: int = 0  # of ``paid``: a retry answered hold_already_paid
    statuses: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[float, float, bool]] = field(default_factory=list)  # start, end, 2xx
    primary_killed: float | None = None
    node_killed: float | None = None

    def count(self, status: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


def start_node(name: str, env: dict[str, str], processes: int, workdir: Path) -> Node:
    port = free_port()
    command = livecart("serve", "--no-worker", "--port", str(port), "--workers", str(processes))
    log = workdir / f"{name}.log"
    node_env = {**env, "LIVECART_DATA_DIR": str(workdir / name)}
    server = harness.serve(
        command, port=port, env=node_env, log=log, cwd=ROOT, ready_path="/readyz"
    )
    return Node(name, port, server.process)


def start_worker(name: str, env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    with (workdir / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            livecart("worker"), env={**env, "LIVECART_DATA_DIR": str(workdir / name)},
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def start_haproxy(nodes: list[Node], workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    servers = "\n".join(f"    server {n.name} 127.0.0.1:{n.port}" for n in nodes)
    config = workdir / "haproxy.cfg"
    config.write_text(HAPROXY.format(port=port, servers=servers))
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    with (workdir / "haproxy.log").open("ab") as log:
        process = subprocess.Popen(
            [haproxy, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    harness.wait_until_serving(port, lambda: process.poll() is not None, workdir / "haproxy.log")
    return process, port


async def watch(viewer: Viewer, url: str, stop: asyncio.Event) -> None:
    """One viewer: in the room until ``stop``, back after every drop."""
    while not stop.is_set():
        try:
            async with websockets.connect(url, open_timeout=30, max_size=2**22) as ws:
                hello: dict[str, Any] = {"type": "hello", "token": viewer.token}
                if viewer.last_seq is not None:
                    hello["last_seq"] = viewer.last_seq
                await ws.send(json.dumps(hello))
                closing = asyncio.create_task(stop.wait())
                while True:
                    reading = asyncio.create_task(ws.recv())
                    done, _ = await asyncio.wait(
                        {reading, closing}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if closing in done:
                        reading.cancel()
                        return
                    for message in json.loads(reading.result()):  # a frame is a list
                        receive(viewer, message)
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else 1006  # 1006: no close frame came
            viewer.closes[code] = viewer.closes.get(code, 0) + 1
        except (OSError, websockets.InvalidHandshake, TimeoutError) as failed:
            code = 0  # never opened
            name = type(failed).__name__
            viewer.failures[name] = viewer.failures.get(name, 0) + 1
        if stop.is_set():
            return
        if viewer.connected:  # in the room, and out of it now: a drop
            viewer.connected = False
            viewer.drops.append(time.monotonic())
            viewer.drop_codes.append(code)
        await asyncio.sleep(random.uniform(0.2, 2.0))


def settled(viewers: list[Viewer]) -> bool:
    quiet_since = time.monotonic() - QUIET_S
    return all(v.connected and not (v.drops and v.drops[-1] > quiet_since) for v in viewers)


def receive(viewer: Viewer, m: dict[str, Any]) -> None:
    kind = m.get("type")
    if kind == "welcome":
        viewer.welcomes += 1
        viewer.connected = True
        if viewer.welcomes > 1:
            viewer.back.append(time.monotonic())
            if m["resumed"]:
                viewer.resumed += 1
            else:
                viewer.snapshots_after_drop += 1
        if not m["resumed"]:
            viewer.last_seq = None  # a snapshot follows and starts the count again
    elif kind == "snapshot":
        viewer.last_seq = m["seq"]
    elif "seq" in m and isinstance(m["seq"], int):
        seq = m["seq"]
        if viewer.last_seq is not None and seq != viewer.last_seq + 1:
            if seq <= viewer.last_seq:
                viewer.duplicates += 1
            else:
                viewer.gaps += 1
        viewer.last_seq = max(seq, viewer.last_seq or 0)


async def call(
    storm: Storm, http: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """POST until answered by a node (anything but 5xx or a cut connection)."""
    while True:
        started = time.monotonic()
        try:
            r = await http.post(path, json=body, headers=headers)
        except httpx.HTTPError:
            storm.count("connection")
            storm.calls.append((started, time.monotonic(), False))
            await asyncio.sleep(RETRY_S)
            continue
        storm.calls.append((started, time.monotonic(), r.status_code < 500))
        if r.status_code < 500 and not in_progress(r):
            return r
        # 5xx, or the key still claimed by a request that died with its node (its lease,
        # LIVECART_CHECKOUT_LEASE_S, frees it): docs/protocol.md says retry both.
        storm.count("409 request_in_progress" if r.status_code < 500 else str(r.status_code))
        await asyncio.sleep(RETRY_S)


def in_progress(r: httpx.Response) -> bool:
    return r.status_code == 409 and r.json()["error"]["code"] == "request_in_progress"


async def buy(storm: Storm, http: httpx.AsyncClient, deal_id: int, buyer: str, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    body = {"qty": 1, "request_id": "tap"}
    r = await call(storm, http, f"/api/deals/{deal_id}/reserve", body, auth)
    if r.status_code == 409 and r.json()["error"]["code"] == "sold_out":
        storm.sold_out += 1
        return
    if r.status_code not in (200, 201):
        storm.count(f"reserve {r.status_code} {r.json()['error']['code']}")
        return
    storm.told_holds += 1
    hold = r.json()["hold"]["id"]
    headers = {**auth, "Idempotency-Key": f"pay-{hold}"}
    paid = await call(storm, http, f"/api/holds/{hold}/checkout", {"card": CARD}, headers)
    if paid.status_code in (200, 201):
        storm.paid[hold] = buyer
    elif paid.json()["error"]["code"] == "hold_already_paid":
        # The buyer's own hold (no one else can pay it), sold by one of their tries whose
        # answer was cut: a retry around the failover answered this, not the sale (seen once
        # in CI, cause not yet traced). Told paid all the same, and the verdict still wants
        # its order in SQL (``paid_without_order``); counted apart so it stays seen.
        storm.paid[hold] = buyer
        storm.already_paid += 1
    elif paid.json()["error"]["code"] == "hold_not_found":
        storm.lost_holds.append(hold)  # told of, then forgotten: the loss window
    else:
        storm.count(f"checkout {paid.status_code} {paid.json()['error']['code']}")


async def until(check: Any, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.1)


@dataclass
class Stage:
    base: str  # HAProxy
    token: str  # the seller's
    room: int
    sku: int
    nodes: list[Node]
    cluster: ValkeyCluster
    redis_url: str
    database_url: str
    secret: str


async def storm(args: argparse.Namespace, stage: Stage) -> dict[str, Any]:
    sessions = GuestSessions(stage.secret, SESSION_MAX_AGE_S)
    viewers = [Viewer(n, sessions.issue()[1]) for n in range(args.viewers)]
    ws_url = stage.base.replace("http://", "ws://") + f"/ws/rooms/{stage.room}"
    stop = asyncio.Event()
    say(f"{args.viewers} viewers joining")
    watching = [asyncio.create_task(watch(v, ws_url, stop)) for v in viewers]
    await until(lambda: all(v.welcomes for v in viewers), 120, "every viewer in the room")
    seller = {"Authorization": f"Bearer {stage.token}"}
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=stage.base, timeout=30, limits=limits) as http:
        made = await http.post(
            f"/api/rooms/{stage.room}/deals",
            json={"sku_id": stage.sku, "deal_price": 3900, "quantity": args.units,
                  "per_buyer_limit": 1, "countdown_s": 10, "duration_s": 600},
            headers=seller,
        )  # fmt: skip
        if made.status_code != 201:
            raise SystemExit(f"the deal was not made: {made.status_code} {made.text}")
        deal_id = made.json()["deal"]["deal_id"]

        async def live() -> bool:  # as the room tells it (Redis's clock, as reserve's)
            deals = (await http.get(f"/api/rooms/{stage.room}")).json()["room"]["deals"]
            return any(d["deal_id"] == deal_id and d["status"] == "live" for d in deals)

        for _ in range(600):  # the countdown, polled for at most a minute
            if await live():
                break
            await asyncio.sleep(0.1)
        found = Storm()
        buyers = [(secrets.token_hex(6), sessions.issue()) for _ in range(args.buyers)]
        say(f"deal {deal_id}: {args.buyers} buyers for {args.units} units")
        started = time.monotonic()
        buying = [
            asyncio.create_task(buy(found, http, deal_id, b, token)) for b, (_, token) in buyers
        ]
        try:
            await until(lambda: len(found.paid) >= args.units // 3, 120, "a third paid for")
        except TimeoutError as err:
            raise SystemExit(f"{err}: {len(found.paid)} paid, answers {found.statuses}") from err
        primary = deal_primary(stage, deal_id)
        say(f"killing the deal's Redis primary (port {primary.port})")
        primary.kill()
        found.primary_killed = time.monotonic()
        await asyncio.sleep(args.node_kill_after_s)
        victim = stage.nodes[1]
        say(f"killing {victim.name} (port {victim.port}) and its processes")
        victim.kill()
        found.node_killed = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*buying), args.timeout)
        seconds = time.monotonic() - started
        # Every viewer back and none dropped for QUIET_S: a node whose room subscription broke
        # closes its viewers (4002) once it has resubscribed, so a first return may be followed
        # by a second. Who is not back after a minute is counted below.
        with contextlib.suppress(TimeoutError):
            await until(lambda: settled(viewers), 60, "every viewer back and staying")
        stop.set()
        await asyncio.gather(*watching)
    # A node's death reaches its viewers as a connection closed with no close frame (1006);
    # a node whose room subscription broke with the Redis primary closes its viewers 4002.
    node_back = [s for v in viewers for s in v.returns(1006)]
    bus_back = [s for v in viewers for s in v.returns(4002)]
    after = [c for c in found.calls if c[0] > (found.primary_killed or 0) and c[2]]
    recovered = min((end for _, end, _ in after), default=None)
    books, orders, findings = await settle(stage, deal_id, set(found.paid))
    return {
        "deal": deal_id,
        "viewers": args.viewers,
        "buyers": args.buyers,
        "units": args.units,
        "seconds": round(seconds, 1),
        "paid": len(found.paid),
        "paid_told_already_paid": found.already_paid,
        "holds_told": found.told_holds,
        "holds_lost_after_told": len(found.lost_holds),
        "answers_sold_out": found.sold_out,
        "retried": found.statuses,
        "slot_refused_s": None
        if recovered is None
        else round(recovered - (found.primary_killed or 0), 2),
        "viewers_dropped_by_node_kill": len(node_back),
        "back_after_node_kill_s": spread(node_back),
        "viewers_told_to_resume_4002": len(bus_back),
        "back_after_4002_s": spread(bus_back),
        "viewers_resumed": sum(v.resumed for v in viewers),
        "viewers_snapshot_after_drop": sum(v.snapshots_after_drop for v in viewers),
        "seq_gaps": sum(v.gaps for v in viewers),
        "seq_duplicates": sum(v.duplicates for v in viewers),
        "not_back": sum(1 for v in viewers if not v.connected),
        "closes_by_code": total(v.closes for v in viewers),
        "failed_connects": total(v.failures for v in viewers),
        "units_sold": books.sold,
        "orders": books.orders,
        "oversold": books.oversold,
        "lost_paid_orders": books.lost_paid_orders,
        "paid_without_order": len(set(found.paid) - orders),
        "reconcile_findings": findings,
        "books_ok": books.ok,
    }


def total(counts: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for each in counts:
        for key, n in each.items():
            found[str(key)] = found.get(str(key), 0) + n
    return found


def spread(seconds: list[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(seconds, 50),
        "p99": percentile(seconds, 99),
        "max": round(max(seconds), 2) if seconds else None,
    }


def percentile(values: list[float], p: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, len(ordered) * p // 100)], 2)


def deal_primary(stage: Stage, deal_id: int) -> Any:
    import redis

    client = redis.RedisCluster(host="127.0.0.1", port=stage.cluster.nodes[0].port)
    try:
        node = client.get_node_from_key(Keyspace(PREFIX).deal(deal_id).deal)
        return stage.cluster.node_at(int(node.port))
    finally:
        client.close()


async def settle(stage: Stage, deal_id: int, paid: set[str]) -> tuple[Any, set[str], int]:
    """The deal's books once the pipeline has caught up, the hold ids with an order, and what
    reconcile (report only) finds."""
    redis = connect(stage.redis_url)
    db = Database(stage.database_url)
    keys = Keyspace(PREFIX)
    try:
        books = await settled_audit(redis, db, keys, deal_id, wait_s=60)
        found = await reconcile(redis, db, keys, deal_id=deal_id, repair=False)
        async with db.session() as session:
            rows = await session.exec(
                select(col(Order.hold_id)).where(col(Order.deal_id) == deal_id)
            )
            ordered = set(rows.all())
    finally:
        await redis.aclose()
        await db.close()
    return books, ordered, len(found.findings)


def run_once(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with (
        ValkeyCluster(workdir / "cluster", primaries=3, replicas=1) as cluster,
        scratch_database(args.database_url, "livecart_failover") as database_url,
    ):
        upgrade(database_url)
        secret = secrets.token_urlsafe(32)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LIVECART_")},
            **NO_ADDRESS_LIMITS,
            "REDIS_URL": cluster.url,
            "DATABASE_URL": database_url,
            "LIVECART_SECRET_KEY": secret,
            "LIVECART_REDIS_PREFIX": PREFIX,
            "LIVECART_REDIS_WAIT_REPLICAS": str(args.wait_replicas),
            "LIVECART_HOST": "127.0.0.1",
        }
        nodes: list[Node] = []
        workers: list[subprocess.Popen[bytes]] = []
        haproxy = None
        try:
            for n in range(args.nodes):
                nodes.append(start_node(f"node{n + 1}", env, args.processes, workdir))
            workers = [
                start_worker(f"worker{n + 1}", env, workdir) for n in range(args.pipeline_workers)
            ]
            haproxy, port = start_haproxy(nodes, workdir)
            base = f"http://127.0.0.1:{port}"
            token = create_seller({**env, "LIVECART_DATA_DIR": str(workdir)})
            room, sku, _products = set_up(base, token, args.units)
            stage = Stage(base, token, room, sku, nodes, cluster, cluster.url, database_url, secret)
            found = asyncio.run(storm(args, stage))
        finally:
            for node in nodes:
                if node.process.poll() is None:
                    harness.stop_process(node.process)
            for process in [*workers, *([haproxy] if haproxy else [])]:
                harness.stop_process(process)
    found["ok"] = (
        found["oversold"] == 0
        and found["lost_paid_orders"] == 0
        and found["paid_without_order"] == 0
        and found["reconcile_findings"] == 0
        and found["books_ok"]
        and found["seq_gaps"] == 0
        and found["seq_duplicates"] == 0
        and found["not_back"] == 0
        and found["units_sold"] == found["orders"] == found["paid"]
    )
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--viewers", type=int, default=2000)
    p.add_argument("--buyers", type=int, default=1500)
    p.add_argument("--units", type=int, default=500)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--processes", type=int, default=2, help="server processes per node (2)")
    p.add_argument("--pipeline-workers", type=int, default=2)
    p.add_argument("--wait-replicas", type=int, default=1, help="LIVECART_REDIS_WAIT_REPLICAS")
    p.add_argument("--connections", type=int, default=200, help="buyers' HTTP connections")
    p.add_argument("--node-kill-after-s", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=240, help="seconds the buyers may take")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL server to create the run's database on",
    )
    p.add_argument("--out", type=Path, help="keep the runs' logs here (default: not kept)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    results = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="livecart-failover-") as tmp:
            say(f"== run {run + 1} of {args.runs}")
            workdir = args.out / f"run-{run + 1}" if args.out else Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            found = run_once(args, workdir)
            say(json.dumps(found, indent=1))
            results.append(found)
    print(json.dumps(results, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
