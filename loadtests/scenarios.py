"""Flash-deal load scenarios with locust, each ending in a verdict.

    python loadtests/scenarios.py storm      # 2,000 viewers, a 200-unit deal, half try to buy
    python loadtests/scenarios.py reconnect  # 1,000 viewers all drop at once and come back
    python loadtests/scenarios.py steady     # 300 viewers, chat and pins for a minute
    python loadtests/scenarios.py auction    # 1,000 viewers, half bid in the last seconds

Each run starts its own ``livecart serve`` (a private Valkey and a SQLite file in a temporary
directory, on 127.0.0.1), sets up a shop, a live room and its products over the API, runs
``loadtests/locustfile.py`` headless, bounded by user count and run time (storm and reconnect
in several processes, ``--processes``: one cannot parse 2,000 viewers' frames), sampling the
CPU of every generator process, and writes locust's CSV and HTML reports to ``--out``
(default ``loadtests/reports/<scenario>-<time>/``). Then it
audits the deal in Redis and SQL (``checkout/audit.py``, as ``livecart audit`` does) and prints
the verdict: units sold, orders persisted, holds still open, oversold (must be 0), lost paid
orders (must be 0), reserve and checkout p50/p95/p99, the share of viewers that saw the
sold-out event, and for ``reconnect`` how many viewers came back and whether any missed an
event (sequence numbers per viewer): only viewers already in the room when the drop came are
judged, and the verdict says how many had not joined yet (not counted). It exits non-zero
when the verdict fails. ``--json`` prints the verdict as JSON.

Latencies are quoted only when no generator process (locust's master, each worker) used more
than ``--generator-cpu-bound`` of one core (0.7) in any 2 s window, from the start of the run
(locust's CSV opened) to its end; otherwise the verdict withholds them and says why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checkout.audit import DealAudit, settled_audit  # noqa: E402
from checkout.keys import Keyspace  # noqa: E402
from checkout.shelf_audit import ShelfAudit, audit_shelves  # noqa: E402
from kernel.db import Database  # noqa: E402
from kernel.redis_client import connect  # noqa: E402
from tests.harness import NO_ADDRESS_LIMITS, free_port, livecart, serve  # noqa: E402
from web.embedded import EmbeddedValkey  # noqa: E402

# processes: locust's user processes (``--processes``; 1 is one process, no master)
DEFAULTS = {
    "storm": {"viewers": 2000, "run_time": 75, "processes": 2},
    "reconnect": {"viewers": 1000, "run_time": 60, "processes": 2},
    "steady": {"viewers": 300, "run_time": 60, "processes": 1},
    "auction": {"viewers": 1000, "run_time": 120, "processes": 1},
}
PREFIX = "lt"
# Of one core, per generator process: past it, latency figures measure the generator's queue.
GENERATOR_CPU_BOUND = 0.7
WINDOW_S = 2.0  # the generator's CPU is judged over windows this long
SAMPLE_S = 0.5
# Every latency the verdict can quote; all withheld when the generator was too busy.
LATENCIES = ("reserve_ms", "checkout_ms", "cart_ms", "pin_latency_ms", "chat_latency_ms")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Stage:
    base: str
    redis_url: str
    database_url: str
    token: str
    room: int
    deal_sku: int
    products: list[int]


@contextmanager
def server(tmp: Path, env_extra: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """A private Valkey, a SQLite file and ``livecart serve`` on a free port, ready."""
    with EmbeddedValkey(tmp / "valkey", persistent=False) as valkey:
        database_url = f"sqlite:///{tmp / 'livecart.db'}"
        port = free_port()
        env = {
            # The caller's LIVECART_* settings (a host, other TTLs, no worker) would change what
            # is measured or where it listens: the server gets only these.
            **{k: v for k, v in os.environ.items() if not k.startswith("LIVECART_")},
            **NO_ADDRESS_LIMITS,
            "LIVECART_HOST": "127.0.0.1",
            "REDIS_URL": valkey.url,
            "DATABASE_URL": database_url,
            "LIVECART_REDIS_PREFIX": PREFIX,
            "LIVECART_DATA_DIR": str(tmp),
            "LIVECART_PORT": str(port),
            "LIVECART_SECRET_KEY": secrets.token_hex(16),
            **env_extra,
        }
        with serve(
            livecart("serve"),
            port=port,
            env=env,
            log=tmp / "server.log",
            cwd=ROOT,
            ready_path="/readyz",
            within_s=60,
        ) as running:
            yield running.base_url, valkey.url, database_url


def create_seller(env: dict[str, str]) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "web.cli", "create-seller", "--name", "Load", "--email",
         f"load-{secrets.token_hex(4)}@example.com"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return made.stdout.split("token: ")[1].splitlines()[0].strip()


def set_up(base: str, token: str, units: int) -> tuple[int, int, list[int]]:
    """A shop with two products, a live room with both in its bag and the first pinned:
    (room, the SKU the deal sells, product ids)."""
    h = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=h, timeout=30) as http:
        shop = http.get("/api/shops").json()["shops"][0]["id"]
        products, skus = [], []
        for title, price in (("Storm jacket", 8900), ("Storm mug", 2400)):
            product = http.post(f"/api/shops/{shop}/products", json={"title": title}).json()
            pid = product["product"]["id"]
            sku = http.post(
                f"/api/products/{pid}/skus",
                json={"variant": "One size", "list_price": price, "currency": "USD",
                      "stock": max(units * 2, 10)},
            ).json()["sku"]  # fmt: skip
            products.append(pid)
            skus.append(sku["id"])
        room = http.post("/api/rooms", json={"shop_id": shop, "title": "Load test"}).json()
        room_id = room["room"]["id"]
        for pid in products:
            http.post(f"/api/rooms/{room_id}/bag", json={"product_id": pid}).raise_for_status()
        http.post(f"/api/rooms/{room_id}/live").raise_for_status()
        http.post(f"/api/rooms/{room_id}/pin", json={"product_id": products[0]}).raise_for_status()
    return room_id, skus[0], products


def tree_cpu(root: psutil.Process) -> dict[int, float]:
    """CPU seconds (user + system, all threads) of a process and each of its descendants."""
    used: dict[int, float] = {}
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = process.cpu_times()
            used[process.pid] = times.user + times.system
    return used


@dataclass
class Ran:
    code: int
    seconds: float
    cpu_seconds: float  # the load generator's, in all, over all its processes
    peak_cpu: float  # its busiest WINDOW_S, summed over its processes, as a share of one core
    peak_process_cpu: float  # the busiest one process's busiest WINDOW_S, of one core
    processes: int  # generator processes seen (locust's master and workers)


def peaks(samples: list[tuple[float, dict[int, float]]]) -> tuple[float, float]:
    """(busiest window's sum over processes, busiest window of any one process), each window
    WINDOW_S long, from samples taken every SAMPLE_S; a process counts in a window when it was
    seen at both ends."""
    step = round(WINDOW_S / SAMPLE_S)
    total, single = 0.0, 0.0
    for (t1, c1), (t2, c2) in zip(samples, samples[step:], strict=False):
        shares = [(c2[pid] - c1[pid]) / (t2 - t1) for pid in c1.keys() & c2.keys()]
        total = max(total, sum(shares))
        single = max(single, *shares, 0.0)
    return total, single


def run_locust(args: argparse.Namespace, stage: Stage, out: Path, extra: dict[str, str]) -> Ran:
    """Run the locustfile headless, sampling the generator's CPU use as it goes."""
    users = args.viewers + 1  # and the creator
    env = {
        **os.environ,
        "LOADTEST_ROOM_ID": str(stage.room),
        "LOADTEST_SELLER_TOKEN": stage.token,
        "LOADTEST_DEAL_SKU": str(stage.deal_sku),
        "LOADTEST_DEAL_UNITS": str(args.units),
        "LOADTEST_EXPECT_USERS": str(users),
        "LOADTEST_PIN_PRODUCTS": ",".join(map(str, stage.products)),
        "LOADTEST_BUY_SHARE": str(args.buy_share),
        "LOADTEST_BAG_SHARE": str(args.bag_share),
        **extra,
    }
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
        "--headless", "--host", stage.base, "--users", str(users),
        "--spawn-rate", str(args.spawn_rate), "--run-time", f"{args.run_time}s",
        "--stop-timeout", "5", "--csv", str(out / "locust"), "--html", str(out / "report.html"),
        "--scenario", args.scenario, "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    if args.processes > 1:  # a master (stats, control) and N forked workers (the users)
        # On a port of its own, not locust's 5557: two runs at once (the suite's workers, an
        # operator's second terminal) would otherwise share one master, or fail to bind it.
        port = str(free_port())
        command += ["--processes", str(args.processes), "--master-bind-host", "127.0.0.1",
                    "--master-bind-port", port, "--master-host", "127.0.0.1",
                    "--master-port", port]  # fmt: skip
    say(
        f"locust: {args.viewers} viewers at {args.spawn_rate}/s for {args.run_time} s, "
        f"{args.processes} process(es)"
    )
    started = time.monotonic()
    samples: list[tuple[float, dict[int, float]]] = []
    seen: dict[int, float] = {}
    # A CSV left in --out by an earlier run would start the CPU windows early (the import
    # counted) and be read as this run's if locust died before writing its own.
    (out / "locust_stats.csv").unlink(missing_ok=True)
    with (out / "locust.log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a time-out stops its workers too
        )  # fmt: skip
        with contextlib.suppress(psutil.NoSuchProcess):  # it ended between poll() and a read
            root = psutil.Process(process.pid)
            while process.poll() is None:
                used = tree_cpu(root)
                seen.update(used)
                # Judged from when locust opens its CSV, after importing itself (a second or
                # two of a whole core on any machine) and forking its workers.
                if (out / "locust_stats.csv").exists():
                    samples.append((time.monotonic(), used))
                if time.monotonic() - started > args.run_time + 90:
                    os.killpg(process.pid, signal.SIGKILL)
                    raise SystemExit("locust did not stop in time")
                time.sleep(SAMPLE_S)
    process.wait()
    total, single = peaks(samples)
    return Ran(
        process.returncode, time.monotonic() - started, sum(seen.values()), total, single, len(seen)
    )


def read_stats(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    path = out / "locust_stats.csv"
    if not path.exists():  # locust died before writing it: the verdict says so (see locust.log)
        return {}
    with path.open() as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def problems(out: Path) -> dict[str, list[str]]:
    """What went wrong, in locust's words: each failure's message and each exception a user
    raised (the run's CSVs), so a verdict that is not a pass says why."""
    found: dict[str, list[str]] = {"failure_messages": [], "exceptions": []}
    failures, exceptions = out / "locust_failures.csv", out / "locust_exceptions.csv"
    if failures.exists():
        with failures.open() as f:
            found["failure_messages"] = [
                f"{row['Method']} {row['Name']}: {row['Error'][:300]} (x{row['Occurrences']})"
                for row in csv.DictReader(f)
            ]
    if exceptions.exists():
        with exceptions.open() as f:
            found["exceptions"] = [
                f"{row['Message'][:300]} (x{row['Count']}) {row['Traceback'][-600:]}"
                for row in csv.DictReader(f)
            ]
    return found


def count(stats: dict[tuple[str, str], dict[str, str]], kind: str, name: str) -> int:
    row = stats.get((kind, name))
    return int(row["Request Count"]) if row else 0


def percentiles(stats: dict[tuple[str, str], dict[str, str]], kind: str, name: str) -> Any:
    row = stats.get((kind, name))
    if not row or not int(row["Request Count"]):
        return None
    return {p: float(row[f"{p}%"]) for p in ("50", "95", "99")}


def replayed_total(stats: dict[tuple[str, str], dict[str, str]]) -> int:
    """Events viewers got in their replays (the locustfile reports each resume's count as
    the entry's response time)."""
    row = stats.get(("VIEWER", "replayed events"))
    return round(float(row["Average Response Time"]) * int(row["Request Count"])) if row else 0


async def audit(stage: Stage, deal_id: int) -> tuple[DealAudit, list[ShelfAudit]]:
    """The deal's books and every shelf's (the "bag" mix's cart sales), once settled."""

    redis = connect(stage.redis_url)
    db = Database(stage.database_url)
    try:
        deal = await settled_audit(redis, db, Keyspace(PREFIX), deal_id, wait_s=30)
        return deal, await audit_shelves(redis, db, Keyspace(PREFIX), wait_s=30)
    finally:
        await redis.aclose()
        await db.close()


def deals_of_room(stage: Stage) -> list[int]:
    room = httpx.get(f"{stage.base}/api/rooms/{stage.room}", timeout=30).json()["room"]
    return [d["deal_id"] for d in room["deals"]]


def verdict(args: argparse.Namespace, stage: Stage, out: Path, ran: Ran) -> dict[str, Any]:
    stats = read_stats(out)
    failures = {
        f"{kind} {name}": int(row["Failure Count"])
        for (kind, name), row in stats.items()
        if name != "Aggregated" and int(row["Failure Count"])
    }
    found: dict[str, Any] = {
        "scenario": args.scenario,
        "viewers": args.viewers,
        "locust_exit": ran.code,
        "seconds": round(ran.seconds, 1),
        "generator_processes": ran.processes,
        "generator_cpu_mean": round(ran.cpu_seconds / ran.seconds, 2),
        "generator_cpu_peak": round(ran.peak_cpu, 2),
        "generator_cpu_peak_per_process": round(ran.peak_process_cpu, 2),
        "generator_cpu_bound": args.generator_cpu_bound,
        "latencies_withheld": withheld(ran, args.generator_cpu_bound),
        "ws_connects": count(stats, "WS", "connect"),
        "failures": failures,
        **problems(out),
        "reserve_ms": percentiles(stats, "POST", "reserve"),
        "checkout_ms": percentiles(stats, "POST", "checkout"),
    }
    deals = deals_of_room(stage)
    ok = ran.code in (0, 1) and bool(stats)  # 1: locust saw failed requests, judged below
    joined = count(stats, "VIEWER", "joined")
    gaps = count(stats, "VIEWER", "seq gap") + count(stats, "VIEWER", "seq duplicate")
    found.update(
        joined=joined,
        seq_gaps_or_duplicates=gaps,
        connections_lost=count(stats, "VIEWER", "connection lost"),
        bad_frames=count(stats, "VIEWER", "bad frame"),
    )
    # Every scenario: everyone got in (reconnect: see below), no viewer missed or repeated an
    # event, every frame read.
    ok &= args.scenario == "reconnect" or joined == args.viewers
    ok &= gaps == 0 and found["bad_frames"] == 0
    if args.scenario == "storm":
        if not deals:
            return {**found, "ok": False, "why": "the creator never started the deal"}
        books, shelves = asyncio.run(audit(stage, deals[0]))
        saw = count(stats, "VIEWER", "saw deal.sold_out")
        sold_out = books.available == 0 and books.held == 0
        found.update(
            deal=deals[0],
            sold_out=sold_out,
            units=books.quantity,
            units_sold=books.sold,
            orders_persisted=books.orders,
            order_units=books.order_units,
            holds_still_open=books.holds.get("held", 0) + books.holds.get("paying", 0),
            oversold=books.oversold,
            lost_paid_orders=books.lost_paid_orders,
            counters_balance=books.counters_balance,
            reserve_attempts=count(stats, "POST", "reserve"),
            checkouts=count(stats, "POST", "checkout"),
            released=count(stats, "DELETE", "release"),
            saw_sold_out=saw,
            saw_sold_out_share=round(saw / args.viewers, 3),
        )
        # A storm that leaves units unsold did not race for the last one: not a pass.
        ok &= sold_out and books.ok and books.orders == books.sold == books.order_units
        ok &= saw == args.viewers and found["holds_still_open"] == 0
        found.update(in_redis=books.in_redis, orders_without_sale=books.orders_without_sale)
        # The bag mix: carts paid at list price beside the deal; every SKU's books must agree.
        paid_carts = count(stats, "POST", "cart pay")
        found.update(
            cart_checkouts=count(stats, "POST", "cart checkout"),
            carts_paid=paid_carts,
            cart_ms=percentiles(stats, "POST", "cart checkout"),
            shelves=[shelf.json() for shelf in shelves],
        )
        ok &= all(shelf.ok and shelf.pending_moves == 0 for shelf in shelves)
        ok &= paid_carts == 0 or bool(shelves)
    if args.scenario == "reconnect":
        # Judged: the viewers that were in the room when the drop came. One a slow generator
        # had not yet brought in is counted apart: it had nothing to lose.
        dropped = count(stats, "VIEWER", "dropped")
        back = count(stats, "VIEWER", "back in room")
        late = args.viewers - dropped
        found.update(
            dropped=dropped,
            not_joined_at_drop=late,
            not_counted=f"{late} of {args.viewers} had not joined when the drop came: not counted",
            back_in_room=back,
            resumed=count(stats, "VIEWER", "resumed"),
            snapshot_after_drop=count(stats, "VIEWER", "snapshot after drop"),
            not_back=count(stats, "VIEWER", "not back"),
            replayed_events=replayed_total(stats),
            pin_latency_ms=percentiles(stats, "WS", "pin"),
        )
        came_back = found["resumed"] + found["snapshot_after_drop"]
        if not dropped:
            found["why"] = "no viewer had joined when the drop came: nothing to judge"
        ok &= dropped > 0 and back == dropped and came_back >= dropped
        ok &= replayed_total(stats) > 0
    if args.scenario == "auction":
        judged = asyncio.run(judge_auction(stage))
        found.update(judged)
        ok &= judged["auction_ok"]
    if args.scenario == "steady":
        found.update(
            pin_latency_ms=percentiles(stats, "WS", "pin"),
            chat_latency_ms=percentiles(stats, "WS", "chat"),
            chat_lines_delivered=count(stats, "WS", "chat"),  # over all viewers
            pins_delivered=count(stats, "WS", "pin"),
        )
        ok &= found["pins_delivered"] > 0
    unexpected = {k: v for k, v in failures.items() if not k.startswith("VIEWER")}
    found["ok"] = bool(ok and not unexpected and count(stats, "VIEWER", "not back") == 0)
    if found["latencies_withheld"]:
        found.update({key: None for key in LATENCIES if key in found})
    return found


def withheld(ran: Ran, bound: float) -> str | None:
    """Why the run's latencies are not quoted, or None when they are the server's: a generator
    process that used more than ``bound`` of a core in some WINDOW_S queued its own work, and
    what it timed was partly that queue."""
    if ran.peak_process_cpu <= bound:
        return None
    return (
        f"a generator process used {ran.peak_process_cpu:.0%} of a core in its busiest "
        f"{WINDOW_S:g} s, over the bound of {bound:.0%} per process: what it timed is partly "
        "its own queue"
    )


async def judge_auction(stage: Stage) -> dict[str, Any]:
    """The auction's verdict from the stores themselves: one winner, every accepted bid (the
    room's log) made before the close by Redis's clock and the close only ever moving later,
    the lot's books exact, and the one paid order at the hammer price."""

    from live.keys import LiveKeys

    redis = connect(stage.redis_url)
    db = Database(stage.database_url)
    try:
        log = LiveKeys(PREFIX).room(stage.room).log
        events = [json.loads(f["p"]) for _, f in await redis.xrange(log)]
        bids = [e for e in events if e["type"] == "auction.bid"]
        closed = [e for e in events if e["type"] == "auction.closed"]
        if not closed:
            return {"auction_ok": False, "why": "the auction never closed", "bids": len(bids)}
        final = closed[-1]["auction"]
        ends = [e["auction"]["ends_ms"] for e in bids]
        h = {"Authorization": f"Bearer {stage.token}"}
        async with httpx.AsyncClient(base_url=stage.base, headers=h, timeout=30) as http:
            view = (
                await http.get(f"/api/rooms/{stage.room}/auctions/{final['auction_id']}")
            ).json()["auction"]
            orders = [
                o
                for o in (await http.get("/api/orders")).json()["orders"]
                if o["deal_id"] == final["auction_id"]
            ]
        books = await settled_audit(redis, db, Keyspace(PREFIX), final["auction_id"], wait_s=30)
    finally:
        await redis.aclose()
        await db.close()
    found = {
        "auction": final["auction_id"],
        "bids_accepted": len(bids),
        "extensions": sum(1 for e in bids if e.get("extended")),
        "bids_after_close": sum(1 for e in bids if e["ms"] >= final["ends_ms"]),
        "close_moved_back": sum(1 for a, b in itertools.pairwise(ends) if b < a),
        "winner": final.get("winner"),
        "hammer_price": final.get("hammer_price"),
        "auction_state": view["state"],
        "orders": len(orders),
        "order_unit_price": orders[0]["unit_price"] if orders else None,
        "lot_oversold": books.oversold,
        "lot_lost_paid_orders": books.lost_paid_orders,
    }
    found["auction_ok"] = (
        len(bids) > 0
        and found["bids_after_close"] == 0
        and found["close_moved_back"] == 0
        and view["state"] == "sold"
        and len(orders) == 1
        and found["order_unit_price"] == final.get("hammer_price")
        and books.ok
    )
    return found


def refund_a_share(stage: Stage, deal_id: int, share: float, env: dict[str, str]) -> dict[str, Any]:
    """After a storm: the seller gives money back on ``share`` of the deal's orders, every
    second one cancelled (all units back) and the others refunded in part (one unit's worth,
    nothing restocked), then ``livecart audit --deal`` judges the deal and the whole ledger."""
    h = {"Authorization": f"Bearer {stage.token}"}
    with httpx.Client(base_url=stage.base, headers=h, timeout=30) as http:
        orders = [o for o in http.get("/api/orders").json()["orders"] if o["deal_id"] == deal_id]
        chosen = orders[: round(len(orders) * share)]
        refused = 0
        for n, order in enumerate(chosen):
            if n % 2 == 0:
                answer = http.post(f"/api/orders/{order['id']}/cancel", json={"reason": "load"})
            else:
                answer = http.post(
                    f"/api/orders/{order['id']}/refund",
                    headers={"Idempotency-Key": f"load-{order['id']}"},
                    json={"amount": order["unit_price"], "reason": "load"},
                )
            refused += answer.status_code != 200 or answer.json()["refund"]["status"] != "succeeded"
    audited = subprocess.run(
        [sys.executable, "-m", "web.cli", "audit", "--deal", str(deal_id)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    books = json.loads(audited.stdout) if audited.stdout.strip().startswith("{") else {}
    return {
        "orders_refunded": len(chosen) - refused,
        "refunds_refused": refused,
        "audit_exit": audited.returncode,
        "ledger_ok": bool(books.get("ledger", {}).get("ok")),
    }


def show(found: dict[str, Any]) -> None:
    say("")
    say(f"verdict ({found['scenario']}, {found['viewers']} viewers): "
        f"{'PASS' if found['ok'] else 'FAIL'}")  # fmt: skip
    for key, value in found.items():
        if key in LATENCIES and found["latencies_withheld"]:
            say(f"  {key:34} withheld (see latencies_withheld)")
        elif key not in ("scenario", "ok"):
            say(f"  {key:34} {value}")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def share_of_a_core(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more (1 is a whole core)")
    return value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("scenario", choices=sorted(DEFAULTS))
    p.add_argument("--viewers", type=positive, help="simulated viewers (default per scenario)")
    p.add_argument("--units", type=positive, default=200, help="units in the flash deal (storm)")
    p.add_argument("--buy-share", type=float, default=0.5, help="share of viewers who buy")
    p.add_argument(
        "--bag-share",
        type=float,
        default=0.1,
        help="share of viewers who fill a cart from the bag and pay during the deal (storm)",
    )
    p.add_argument(
        "--refund-share",
        type=float,
        default=0.0,
        help="storm: share of its orders the seller then cancels or refunds in part, before "
        "`livecart audit` checks the deal and the ledger",
    )
    p.add_argument("--spawn-rate", type=positive, default=100, help="viewers joining per second")
    p.add_argument(
        "--processes",
        type=positive,
        help="locust processes running the users; past 1, locust's --processes N (a master "
        "and N workers). Default: 2 for storm and reconnect, 1 otherwise",
    )
    p.add_argument(
        "--drop-after-s",
        type=float,
        help="reconnect: when the drop comes, in seconds from locust's launch (default: 4 s "
        "after every viewer is in); viewers not in the room by then are counted apart",
    )
    p.add_argument(
        "--generator-cpu-bound",
        type=share_of_a_core,
        default=GENERATOR_CPU_BOUND,
        help="latencies are withheld when any one generator process (master or worker) used "
        f"more than this share of one core in some {WINDOW_S:g} s window "
        f"(default {GENERATOR_CPU_BOUND})",
    )
    p.add_argument("--run-time", type=positive, help="seconds locust runs (default per scenario)")
    p.add_argument("--out", type=Path, help="where the reports go")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.viewers is None:
        args.viewers = DEFAULTS[args.scenario]["viewers"]
    if args.processes is None:
        args.processes = DEFAULTS[args.scenario]["processes"]
    bound_given = args.run_time is not None
    if args.run_time is None:
        args.run_time = DEFAULTS[args.scenario]["run_time"]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "loadtests" / "reports" / f"{args.scenario}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    server_env: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory(prefix="livecart-load-") as tmp,
        server(Path(tmp), server_env) as (base, redis_url, database_url),
    ):
        env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
               "LIVECART_REDIS_PREFIX": PREFIX, "LIVECART_DATA_DIR": tmp}  # fmt: skip
        token = create_seller(env)
        room, sku, products = set_up(base, token, args.units)
        stage = Stage(base, redis_url, database_url, token, room, sku, products)
        extra: dict[str, str] = {}
        if args.scenario == "reconnect":
            extra = {"LOADTEST_PIN_EVERY_S": "0.5", "LOADTEST_DROP_AFTER_IN_S": "4"}
            # By default the drop comes 4 s after the run's control saw every viewer in (or
            # gave up waiting, at viewers/20 + 10 s; locustfile Control.admit).
            drop_after = args.viewers / 20 + 10 + 4
            if args.drop_after_s is not None:
                drop_after = args.drop_after_s
                extra["LOADTEST_DROP_AT_MS"] = str(int((time.time() + drop_after) * 1000))
            # A bound: the run ends once every viewer is accounted for (locustfile Control).
            args.run_time = max(args.run_time, int(drop_after + 30))
        if args.scenario == "storm" and not bound_given:
            # Ends early once the deal is sold (the creator stops the run); this is a bound.
            args.run_time = max(args.run_time, int(args.viewers / args.spawn_rate + 60))
        ran = run_locust(args, stage, out, extra)
        found = verdict(args, stage, out, ran)
        if args.scenario == "storm" and args.refund_share and found.get("deal"):
            money = refund_a_share(stage, found["deal"], args.refund_share, env)
            found.update(money)
            found["ok"] &= money["refunds_refused"] == 0 and money["audit_exit"] == 0
            found["ok"] &= money["ledger_ok"]
        with contextlib.suppress(OSError):  # the server's log goes with the reports
            shutil.copyfile(Path(tmp) / "server.log", out / "server.log")
    found["reports"] = str(out)
    if args.json:
        print(json.dumps(found, indent=2))
    show(found)
    sys.exit(0 if found["ok"] else 1)


if __name__ == "__main__":
    main()
