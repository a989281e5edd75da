"""Throughput of the two hot paths, each as a ratio against a baseline measured in the same run.

(a) ``POST /api/deals/{id}/reserve`` against ``POST /api/noop`` (same body, same headers), driven
    by wrk through a real ``livecart serve`` process, with distinct pre-signed buyers; and a
    cart's hold, ``POST /api/cart/checkout`` of 3 SKUs at list price (decision 0028), against
    the reserve on the same server.
(b) The order pipeline (Redis stream -> ``persist_paid_orders``) against raw batched
    ``insert(Order)`` of the same rows into a fresh SQLite file.

Run: ``python loadtests/bench_reserve.py [--duration 10] [--connections 64] [--json]``.
Everything listens on 127.0.0.1 and stops by itself; progress goes to stderr. Each run also
reads the server's and Redis's CPU per answered request; ``--profile DIR`` adds a py-spy
profile of one no-op and one reserve run (docs/benchmarks.md: "where the time goes").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from sqlalchemy import func, insert, select
from sqlmodel.ext.asyncio.session import AsyncSession

# Run as a script from a checkout: its root holds tests.harness (and livecart's packages, when
# livecart is not installed).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from catalog import service
from catalog.models import Deal, Seller
from catalog.rules import DealTerms
from checkout.keys import Keyspace
from checkout.models import Order
from checkout.order_store import PaidOrder, order_row
from checkout.pipeline import OrderPipeline
from kernel.clock import now_ms
from kernel.db import Database
from tests import harness
from tests.harness import ROOT, free_port, livecart
from web.app import pipeline_config
from web.auth import GuestSessions
from web.embedded import EmbeddedValkey
from web.migrate import upgrade
from web.settings import Settings

RESERVE_TARGET = 0.7  # reserve requests/s as a share of no-op requests/s
CART_TARGET = 0.5  # 3-line cart holds/s as a share of reserve requests/s
PIPELINE_TARGET = 2.0  # pipeline orders/s as a multiple of reserve requests/s
BODY = '{"qty":1}'
SESSION_MAX_AGE_S = 24 * 3600
SERVER_START_TIMEOUT_S = 30.0
PIPELINE_TIMEOUT_S = 120.0
OTHER_LOAD_WARN = 0.15  # cores used by processes outside the benchmark during a run
WRK_CPU, SERVER_CPU = 0, 1  # Valkey shares the wrk core: the server's core is its alone


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# the machine: other work on a 2-core box skews every figure, so it is measured, not assumed

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) * TICK_S, sum(values) * TICK_S


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of all cores busy over the next ``seconds``."""
    busy0, total0 = machine_cpu_s()
    time.sleep(seconds)
    busy1, total1 = machine_cpu_s()
    return (busy1 - busy0) / max(TICK_S, total1 - total0)


def process_cpu_s(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) * TICK_S  # utime + stime
    return 0.0


@dataclass
class CpuMeter:
    """CPU the machine spent outside our processes (server, Redis, wrk, this script) while a
    run lasted, in cores: another job on the box shows up here instead of as a mystery."""

    pids: list[int]

    def ours(self) -> float:
        usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        waited = sum(u.ru_utime + u.ru_stime for u in usage)  # children: wrk, once it exited
        return waited + sum(process_cpu_s(pid) for pid in self.pids)

    @contextlib.contextmanager
    def foreign(self, into: list[float]) -> Iterator[None]:
        machine, ours, began = machine_cpu_s()[0], self.ours(), time.monotonic()
        yield
        other = (machine_cpu_s()[0] - machine) - (self.ours() - ours)
        into.append(max(0.0, other) / (time.monotonic() - began))


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return "unknown CPU"


# ---------------------------------------------------------------------------------------------
# (a) reserve vs no-op over HTTP


WRK_SCRIPT = """
-- Generated by loadtests/bench_reserve.py: cycles through pre-signed buyers and counts statuses.
local tokens = {%(tokens)s}
local path = "%(path)s"
local body = '%(body)s'
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  prepared = {}
  for i, token in ipairs(tokens) do
    prepared[i] = wrk.format("POST", path, {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
    }, body)
  end
  cursor = (tid * 997) %% #prepared
  statuses = {}
end

function request()
  cursor = cursor %% #prepared + 1
  return prepared[cursor]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      totals[status] = (totals[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(totals) do
    table.insert(parts, string.format('"%%d":%%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"mean_us":%%.1f,' ..
    '"socket_errors":%%d,"statuses":{%%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
"""


@dataclass
class WrkRun:
    label: str
    requests: int
    duration_us: int
    p50_us: int
    p99_us: int
    mean_us: float
    socket_errors: int
    statuses: dict[str, int]
    other_cores: float = 0.0  # CPU used by processes not in the benchmark, in cores
    # CPU per answered request, from /proc: steadier than req/s when the box is not quiet, and
    # what says where a reservation's extra cost lies (the server's Python, or Redis).
    server_us: float = 0.0
    redis_us: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def non_2xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if not s.startswith("2"))


@dataclass
class Pinning:
    available: bool

    def prefix(self, cpu: int) -> list[str]:
        return ["taskset", "-c", str(cpu)] if self.available else []

    @contextlib.contextmanager
    def inherited(self, cpu: int) -> Iterator[None]:
        """Children started inside run on ``cpu`` (for processes started without a command
        line of ours, such as the embedded Valkey)."""
        if not self.available:
            yield
            return
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)

    def describe(self, embedded_valkey: bool) -> str:
        if not self.available:
            return "none (taskset not found): wrk, server and Redis share both cores"
        valkey = f"embedded Valkey on CPU {WRK_CPU}" if embedded_valkey else "Redis not pinned"
        return (
            f"taskset: server on CPU {SERVER_CPU}; wrk on CPU {WRK_CPU}; {valkey}; "
            f"pipeline benchmark process on CPU {SERVER_CPU}"
        )


def write_wrk_script(path: Path, url_path: str, tokens: list[str], body: str = BODY) -> Path:
    quoted = ",".join(f'"{t}"' for t in tokens)
    path.write_text(WRK_SCRIPT % {"tokens": quoted, "path": url_path, "body": body})
    return path


@dataclass
class Wrk:
    base: str
    connections: int
    pinning: Pinning
    meter: CpuMeter

    def run(self, label: str, script: Path, duration: int) -> WrkRun:
        cmd = [
            *self.pinning.prefix(WRK_CPU),
            "wrk",
            "-t1",
            f"-c{self.connections}",
            f"-d{duration}s",
            "--latency",
            "--timeout",
            "5s",
            "-s",
            str(script),
            self.base,
        ]
        other: list[float] = []
        server, redis = self.meter.pids
        before = process_cpu_s(server), process_cpu_s(redis)
        with self.meter.foreign(other):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
        spent = process_cpu_s(server) - before[0], process_cpu_s(redis) - before[1]
        line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
        if done.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        run = WrkRun(label=label, other_cores=other[0], **json.loads(line[len("BENCH ") :]))
        run.server_us, run.redis_us = (s * 1e6 / max(run.answered, 1) for s in spent)
        say(
            f"  {label:<8} {run.rps:9.0f} req/s  p50 {run.p50_us / 1000:6.2f} ms  "
            f"p99 {run.p99_us / 1000:6.2f} ms  CPU/request server {run.server_us:5.1f} us, "
            f"Redis {run.redis_us:5.1f} us  statuses {run.statuses}  "
            f"socket errors {run.socket_errors}  other load {run.other_cores:.2f} cores"
        )
        return run


def http_json(method: str, url: str, token: str = "", body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"{method} {url} -> {err.code}: {err.read().decode()}") from None


SKU_FIELDS: dict[str, Any] = {
    "variant": "M",
    "list_price": 9900,
    "currency": "USD",
    "stock": 10_000_000,
}
DEAL_FIELDS: dict[str, Any] = {"deal_price": 4900, "quantity": 10_000_000, "per_buyer_limit": 1000}
DEAL_DURATION_S = 3600


def start_deal(base: str, seller_token: str, shop_id: int) -> int:
    """Product, SKU and deal over HTTP with the seller token, then start it."""

    def post(path: str, body: dict[str, Any] | None = None) -> Any:
        return http_json("POST", base + path, seller_token, body)

    product = post(f"/api/shops/{shop_id}/products", {"title": "Benchmark jacket"})["product"]
    sku = post(f"/api/products/{product['id']}/skus", SKU_FIELDS)["sku"]
    deal = post("/api/deals", {"sku_id": sku["id"], "duration_s": DEAL_DURATION_S, **DEAL_FIELDS})[
        "deal"
    ]
    post(f"/api/deals/{deal['id']}/start")
    deal_id: int = deal["id"]
    return deal_id


def cart_body(base: str, seller_token: str, shop_id: int) -> str:
    """Three SKUs of one product at list price, and a buy-now body holding one of each."""
    product = http_json(
        "POST", f"{base}/api/shops/{shop_id}/products", seller_token, {"title": "Benchmark mug"}
    )["product"]
    items = []
    for colour in ("Sand", "Ink", "Moss"):
        fields = {**SKU_FIELDS, "variant": colour}
        sku = http_json("POST", f"{base}/api/products/{product['id']}/skus", seller_token, fields)
        items.append({"sku_id": sku["sku"]["id"], "qty": 1})
    # The shop named, as the product sheet sends it: the hold is then one Redis call.
    return json.dumps({"items": items, "shop_id": shop_id}, separators=(",", ":"))


async def sql_deal(session: AsyncSession, seller: Seller, shop_id: int) -> Deal:
    """A product, a SKU and a scheduled deal, as the seller API would create them."""
    product = await service.create_product(session, seller, shop_id, {"title": "Benchmark jacket"})
    sku = await service.create_sku(session, seller, product.id or 0, dict(SKU_FIELDS))
    start = now_ms()
    terms = DealTerms(starts_ms=start, ends_ms=start + DEAL_DURATION_S * 1000, **DEAL_FIELDS)
    return await service.create_deal(session, seller, sku.id or 0, terms)


async def create_seller(database_url: str) -> tuple[str, int]:
    db = Database(database_url)
    try:
        async with db.session() as session:
            _, shop, token = await service.create_seller(
                session, "Bench Seller", f"bench-{secrets.token_hex(6)}@example.com"
            )
        assert shop.id is not None
        return token, shop.id
    finally:
        await db.close()


@contextlib.contextmanager
def serve(env: dict[str, str], port: int, log: Path, pinning: Pinning) -> Iterator[int]:
    """``livecart serve`` without its worker, pinned, once /readyz answers: yields its pid."""
    command = [*pinning.prefix(SERVER_CPU), *livecart("serve", "--no-worker", "--port", str(port))]
    with harness.serve(
        command,
        port=port,
        env=env,
        log=log,
        cwd=ROOT,
        ready_path="/readyz",
        within_s=SERVER_START_TIMEOUT_S,
    ) as server:
        yield server.pid


@dataclass
class HttpResult:
    noop: list[WrkRun] = field(default_factory=list)
    reserve: list[WrkRun] = field(default_factory=list)
    cart: list[WrkRun] = field(default_factory=list)
    held_in_redis: int = 0
    reserved_201: int = 0


def bench_http(
    args: argparse.Namespace,
    redis_url: str,
    redis_pid: int,
    prefix: str,
    workdir: Path,
    pinning: Pinning,
) -> HttpResult:
    database_url = f"sqlite:///{workdir / 'serve.db'}"
    upgrade(database_url)
    seller_token, shop_id = asyncio.run(create_seller(database_url))
    secret = secrets.token_urlsafe(32)
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "LIVECART_SECRET_KEY": secret,
        "LIVECART_BENCH_ROUTES": "1",
        "LIVECART_REDIS_PREFIX": prefix,
        "LIVECART_DATA_DIR": str(workdir / "data"),
        # wrk is one address: the per-address reserve bucket and hold cap run (their cost is
        # part of what is measured) but set far beyond what one run can reach.
        "LIVECART_RESERVE_RATE": "1000000",
        "LIVECART_RESERVE_BURST": "1000000000",
        "LIVECART_ADDRESS_HOLD_CAP": "1000000000",
    }
    base = f"http://127.0.0.1:{port}"
    sessions = GuestSessions(secret, SESSION_MAX_AGE_S)
    tokens = [sessions.issue()[1] for _ in range(args.buyers)]
    result = HttpResult()
    log = workdir / "server.log"
    with serve(env, port, log, pinning) as server_pid:
        wrk = Wrk(base, args.connections, pinning, CpuMeter([server_pid, redis_pid]))
        try:
            deal_id = start_deal(base, seller_token, shop_id)
        except RuntimeError as err:
            last = log.read_text().strip().splitlines()[-1:]
            raise RuntimeError(f"could not start the deal: {err}\nserver log: {last}") from None
        reserve_lua = write_wrk_script(
            workdir / "reserve.lua", f"/api/deals/{deal_id}/reserve", tokens
        )
        noop_lua = write_wrk_script(workdir / "noop.lua", "/api/noop", tokens)
        cart_lua = write_wrk_script(
            workdir / "cart.lua",
            "/api/cart/checkout",
            tokens,
            cart_body(base, seller_token, shop_id),
        )
        say(
            f"(a) deal {deal_id} live on {base}; {len(tokens)} buyers; "
            f"wrk -t1 -c{args.connections}; warm-up {args.warmup}s each"
        )
        wrk.run("warm-up", noop_lua, args.warmup)
        warm_reserve = wrk.run("warm-up", reserve_lua, args.warmup)
        wrk.run("warm-up", cart_lua, args.warmup)
        for _ in range(args.rounds):
            result.noop.append(wrk.run("noop", noop_lua, args.duration))
            result.reserve.append(wrk.run("reserve", reserve_lua, args.duration))
            result.cart.append(wrk.run("cart", cart_lua, args.duration))
        if args.profile is not None:
            profile(wrk, server_pid, args.profile, {"noop": noop_lua, "reserve": reserve_lua})
        deal = http_json("GET", f"{base}/api/deals/{deal_id}")["deal"]
    result.held_in_redis = deal["stock"]["held"]
    result.reserved_201 = sum(r.statuses.get("201", 0) for r in [warm_reserve, *result.reserve])
    return result


def profile(wrk: Wrk, server_pid: int, out: Path, scripts: dict[str, Path]) -> None:
    """py-spy on the server through one more run of each script (not counted in the figures:
    the sampler takes CPU from wrk's core). Writes ``<name>.txt`` (collapsed stacks) in ``out``
    and prints each one's busiest functions, so where reserve's extra time goes can be read
    beside no-op's."""
    out.mkdir(parents=True, exist_ok=True)
    for name, script in scripts.items():
        stacks = out / f"{name}.txt"
        spy = subprocess.Popen(
            [
                shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(server_pid),
                "--rate",
                "500",
                "--format",
                "raw",
                "--output",
                str(stacks),
                "--nonblocking",
                "--duration",
                "6",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1)  # the sampler attaches
            run = wrk.run(f"profile {name}", script, 8)
        finally:
            spy.wait(timeout=60)  # it writes the stacks when its 6 s are up
        say(f"profile {name}: {run.rps:.0f} req/s under py-spy; stacks in {stacks}")
        for line in busiest(stacks):
            say(f"  {line}")


def busiest(stacks: Path, top: int = 25) -> list[str]:
    """The functions with the most samples anywhere on the stack (inclusive), as shares."""
    inclusive: dict[str, int] = {}
    total = 0
    for line in stacks.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for frame in set(frames.split(";")):
            inclusive[frame] = inclusive.get(frame, 0) + int(count)
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    return [f"{n / max(total, 1):6.1%}  {frame}" for frame, n in ranked]


# ---------------------------------------------------------------------------------------------
# (b) order pipeline vs raw inserts


@dataclass
class Timed:
    rows: int
    seconds: float
    other_cores: float = 0.0

    @property
    def per_s(self) -> float:
        return self.rows / self.seconds


async def make_deal_rows(database_url: str) -> tuple[int, int, int]:
    """A seller, shop, SKU and deal in a migrated database, so the orders' foreign keys hold."""
    db = Database(database_url)
    try:
        async with db.session() as session:
            seller, shop, _ = await service.create_seller(
                session, "Bench Seller", "pipeline-bench@example.com"
            )
            assert shop.id is not None
            deal = await sql_deal(session, seller, shop.id)
            # Started, so its units are allocated and the pipeline's guarded decrement does
            # the real work (stock and allocation) rather than counting shortfalls.
            deal = await service.start_deal(session, deal)
        assert deal.id is not None
        return deal.id, deal.sku_id, shop.id
    finally:
        await db.close()


def paid_entries(count: int, deal_id: int, sku_id: int, shop_id: int) -> list[dict[str, str]]:
    """What ``commit`` in holds.lua writes to a deal's orders stream, one per sold hold."""
    paid_ms = str(now_ms())
    return [
        {
            "type": "order.paid",
            "hold": f"{deal_id}-{n}",
            "deal": str(deal_id),
            "sku": str(sku_id),
            "shop": str(shop_id),
            "buyer": secrets.token_hex(16),
            "qty": "1",
            "unit_price": "4900",
            "currency": "USD",
            "payment_ref": f"sbx_{deal_id}_{n}",
            "paid_ms": paid_ms,
        }
        for n in range(1, count + 1)
    ]


async def count_orders(db: Database) -> int:
    async with db.engine.connect() as conn:
        found: int = (await conn.execute(select(func.count()).select_from(Order))).scalar_one()
        return found


async def bench_pipeline(
    redis_url: str, prefix: str, database_url: str, count: int, batch: int, meter: CpuMeter
) -> Timed:
    deal_id, sku_id, shop_id = await make_deal_rows(database_url)
    keys = Keyspace(prefix)
    redis = Redis.from_url(redis_url, decode_responses=True)
    db = Database(database_url)
    try:
        stream = keys.deal(deal_id).orders
        entries = paid_entries(count, deal_id, sku_id, shop_id)
        for start in range(0, count, 1000):
            async with redis.pipeline(transaction=False) as pipe:
                for fields in entries[start : start + 1000]:
                    pipe.xadd(stream, fields)  # type: ignore[arg-type]
                await pipe.execute()
        await redis.sadd(keys.live_deals, str(deal_id))
        config = replace(pipeline_config(Settings()), batch=batch, block_ms=100)
        pipeline = OrderPipeline(redis, db, keys, config)
        await pipeline.streams()  # creates the consumer group outside the timed part
        other: list[float] = []
        with meter.foreign(other):
            began = time.perf_counter()
            deadline = began + PIPELINE_TIMEOUT_S
            while pipeline.stats.persisted < count:
                if time.perf_counter() > deadline:
                    raise RuntimeError(
                        f"pipeline persisted only {pipeline.stats.persisted} "
                        f"of {count} orders in {PIPELINE_TIMEOUT_S}s"
                    )
                await pipeline.step()
            seconds = time.perf_counter() - began
        persisted = await count_orders(db)
        stats = pipeline.stats
        if persisted != count or stats.failed_batches or stats.stock_shortfalls:
            raise RuntimeError(
                f"pipeline stored {persisted} orders of {count} ({stats.failed_batches} failed "
                f"batches, {stats.stock_shortfalls} stock shortfalls)"
            )
        return Timed(count, seconds, other[0])
    finally:
        await redis.aclose()
        await db.close()


async def bench_raw(database_url: str, count: int, batch: int, meter: CpuMeter) -> Timed:
    deal_id, sku_id, shop_id = await make_deal_rows(database_url)
    now = now_ms()
    rows = [
        order_row(PaidOrder.from_stream(f), now)
        for f in paid_entries(count, deal_id, sku_id, shop_id)
    ]
    db = Database(database_url)
    try:
        other: list[float] = []
        with meter.foreign(other):
            began = time.perf_counter()
            for start in range(0, count, batch):
                # Core on the session's connection, one transaction per batch, like the pipeline.
                async with db.session() as session:
                    conn = await session.connection()
                    await conn.execute(insert(Order), rows[start : start + batch])
                    await session.commit()
            seconds = time.perf_counter() - began
        if await count_orders(db) != count:
            raise RuntimeError("raw inserts lost rows")
        return Timed(count, seconds, other[0])
    finally:
        await db.close()


# ---------------------------------------------------------------------------------------------
# report


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def figures(
    http: HttpResult, pipeline: Timed, raw: Timed, pinning: str, args: argparse.Namespace
) -> dict[str, Any]:
    noop_rps = mean([r.rps for r in http.noop])
    reserve_rps = mean([r.rps for r in http.reserve])
    cart_rps = mean([r.rps for r in http.cart])
    return {
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "connections": args.connections,
            "buyers": args.buyers,
            "orders": args.orders,
            "batch": args.batch,
            "pinning": pinning,
            "nproc": os.cpu_count(),
            "cpu": cpu_model(),
            "cpu_busy_before": args.busy_before,
        },
        "noop": {"rps": noop_rps, "runs": [asdict(r) | {"rps": r.rps} for r in http.noop]},
        "reserve": {
            "rps": reserve_rps,
            "runs": [asdict(r) | {"rps": r.rps} for r in http.reserve],
            "non_2xx": sum(r.non_2xx for r in http.reserve),
            "socket_errors": sum(r.socket_errors for r in http.reserve),
            "responses_201": http.reserved_201,
            "held_in_redis": http.held_in_redis,
            "all_201": all(r.statuses.get("201", 0) == r.answered > 0 for r in http.reserve),
        },
        "cart": {
            "rps": cart_rps,
            "runs": [asdict(r) | {"rps": r.rps} for r in http.cart],
            "all_201": all(r.statuses.get("201", 0) == r.answered > 0 for r in http.cart),
        },
        "cpu_us_per_request": {
            name: {
                "server": mean([r.server_us for r in runs]),
                "redis": mean([r.redis_us for r in runs]),
            }
            for name, runs in (("noop", http.noop), ("reserve", http.reserve), ("cart", http.cart))
        },
        "cart_over_reserve": cart_rps / reserve_rps,
        "cart_over_reserve_per_round": [
            c.rps / r.rps for r, c in zip(http.reserve, http.cart, strict=True)
        ],
        "reserve_over_noop": reserve_rps / noop_rps,
        "reserve_over_noop_per_round": [
            r.rps / n.rps for n, r in zip(http.noop, http.reserve, strict=True)
        ],
        "pipeline": asdict(pipeline) | {"orders_per_s": pipeline.per_s},
        "raw_insert": asdict(raw) | {"rows_per_s": raw.per_s},
        "max_other_cores": max(
            [r.other_cores for r in [*http.noop, *http.reserve, *http.cart]]
            + [pipeline.other_cores, raw.other_cores]
        ),
        "pipeline_over_raw": pipeline.per_s / raw.per_s,
        "pipeline_over_reserve": pipeline.per_s / reserve_rps,
        "targets": {
            "reserve_over_noop": {
                "target": RESERVE_TARGET,
                "met": reserve_rps / noop_rps >= RESERVE_TARGET,
            },
            "cart_over_reserve": {
                "target": CART_TARGET,
                "met": cart_rps / reserve_rps >= CART_TARGET,
            },
            "pipeline_over_reserve": {
                "target": PIPELINE_TARGET,
                "met": pipeline.per_s / reserve_rps >= PIPELINE_TARGET,
            },
        },
    }


def summary(f: dict[str, Any], http: HttpResult) -> str:
    def row(run: WrkRun) -> str:
        return (
            f"  {run.label:<8} {run.rps:9.0f} req/s   p50 {run.p50_us / 1000:7.2f} ms   "
            f"p99 {run.p99_us / 1000:7.2f} ms   CPU/request {run.server_us:5.1f} us "
            f"+ Redis {run.redis_us:5.1f} us   non-2xx {run.non_2xx}   "
            f"socket errors {run.socket_errors}   other load {run.other_cores:.2f} cores"
        )

    def verdict(name: str) -> str:
        return "met" if f["targets"][name]["met"] else "NOT met"

    c, r = f["config"], f["reserve"]
    lines = [
        "",
        "=== livecart reserve benchmark ===",
        f"machine: {c['nproc']} x {c['cpu']}; CPU busy just before the run "
        f"{c['cpu_busy_before']:.0%}",
        f"pinning: {c['pinning']}",
        f"wrk -t1 -c{c['connections']} -d{c['duration_s']}s, {c['rounds']} rounds after "
        f"{c['warmup_s']}s warm-up each; {c['buyers']} distinct buyers, body {BODY}",
        "",
        "(a) HTTP, alternating runs:",
        *[
            row(run)
            for trio in zip(http.noop, http.reserve, http.cart, strict=True)
            for run in trio
        ],
        f"  mean     noop {f['noop']['rps']:.0f} req/s   reserve {r['rps']:.0f} req/s   "
        f"cart (3 lines) {f['cart']['rps']:.0f} holds/s",
        f"  reserve checks: every response 201: {'yes' if r['all_201'] else 'NO'}; "
        f"non-2xx {r['non_2xx']}; socket errors {r['socket_errors']}; "
        f"201s counted {r['responses_201']}, units held in Redis {r['held_in_redis']}",
        "",
        f"(b) orders, {c['orders']} entries, batch {c['batch']}, SQLite:",
        *[
            f"  {name:<10} {t[unit + '_per_s']:9.0f} {unit}/s   ({t['seconds']:.2f} s)   "
            f"other load {t['other_cores']:.2f} cores"
            for name, unit, t in [
                ("pipeline", "orders", f["pipeline"]),
                ("raw insert", "rows", f["raw_insert"]),
            ]
        ],
        "",
        "ratios:",
        f"  reserve / noop          {f['reserve_over_noop']:.2f}x   "
        f"(target >= {RESERVE_TARGET}x: {verdict('reserve_over_noop')}; per round "
        + ", ".join(f"{x:.2f}" for x in f["reserve_over_noop_per_round"])
        + ")",
        f"  cart hold / reserve     {f['cart_over_reserve']:.2f}x   "
        f"(target >= {CART_TARGET}x: {verdict('cart_over_reserve')}; per round "
        + ", ".join(f"{x:.2f}" for x in f["cart_over_reserve_per_round"])
        + ")",
        f"  pipeline / reserve      {f['pipeline_over_reserve']:.2f}x   "
        f"(target >= {PIPELINE_TARGET}x: {verdict('pipeline_over_reserve')})",
        f"  pipeline / raw insert   {f['pipeline_over_raw']:.2f}x",
        "server CPU per request (Redis's beside it):",
        *[
            f"  {name:<8} {cpu['server']:6.1f} us   (+ {cpu['redis']:5.1f} us in Redis)"
            for name, cpu in f["cpu_us_per_request"].items()
        ],
    ]
    if c["cpu_busy_before"] > 0.1 or f["max_other_cores"] > OTHER_LOAD_WARN:
        lines.append(
            "WARNING: other processes used the CPUs before or during the run; "
            "the figures are skewed."
        )
    if not f["cart"]["all_201"]:
        lines.append("WARNING: some cart holds failed; the cart figure is not a result.")
    if not r["all_201"] or r["socket_errors"]:
        lines.append("WARNING: some reserve requests failed; the reserve figures are not a result.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run (10)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    p.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per endpoint (3)")
    p.add_argument("--rounds", type=int, default=2, help="noop+reserve pairs measured (2)")
    p.add_argument("--buyers", type=int, default=5000, help="distinct pre-signed buyers (5000)")
    p.add_argument("--orders", type=int, default=20_000, help="order.paid entries for (b)")
    p.add_argument("--batch", type=int, default=500, help="pipeline and raw insert batch (500)")
    p.add_argument("--redis-url", help="use this Redis instead of an embedded Valkey")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument(
        "--profile",
        type=Path,
        help="after the rounds, py-spy the server through a noop and a reserve run; "
        "collapsed stacks go to this directory",
    )
    return p.parse_args(argv)


def redis_process_id(redis_url: str) -> int:
    client = SyncRedis.from_url(redis_url)
    try:
        pid: int = client.info("server")["process_id"]
        return pid
    finally:
        client.close()


async def delete_prefix(redis_url: str, prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(key)
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.busy_before = cpu_busy()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed")
    pinning = Pinning(available=shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1)
    prefix = f"lcbench{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="livecart-bench-") as tmp:
        workdir = Path(tmp)
        valkey: EmbeddedValkey | None = None
        redis_url = args.redis_url
        try:
            if redis_url is None:
                valkey = EmbeddedValkey(workdir / "valkey", persistent=False)
                with pinning.inherited(WRK_CPU):
                    redis_url = valkey.start()
            redis_pid = redis_process_id(redis_url)
            description = pinning.describe(embedded_valkey=valkey is not None)
            say(f"pinning: {description}")
            http = bench_http(args, redis_url, redis_pid, prefix, workdir, pinning)
            if pinning.available:
                os.sched_setaffinity(0, {SERVER_CPU})
            say(f"(b) pipeline: {args.orders} order.paid entries, batch {args.batch}")
            pipeline_db, raw_db = f"sqlite:///{workdir}/p.db", f"sqlite:///{workdir}/raw.db"
            for url in (pipeline_db, raw_db):
                upgrade(url)  # outside any event loop: the migrations run their own
            meter = CpuMeter([redis_pid])
            pipeline = asyncio.run(
                bench_pipeline(redis_url, prefix, pipeline_db, args.orders, args.batch, meter)
            )
            say(f"  pipeline   {pipeline.per_s:9.0f} orders/s,  other {pipeline.other_cores:.2f}")
            raw = asyncio.run(bench_raw(raw_db, args.orders, args.batch, meter))
            say(f"  raw insert {raw.per_s:9.0f} rows/s,   other {raw.other_cores:.2f}")
        finally:
            if valkey is not None:
                valkey.stop()
            elif redis_url is not None:
                asyncio.run(delete_prefix(redis_url, prefix))
    result = figures(http, pipeline, raw, description, args)
    print(json.dumps(result, indent=2) if args.json else summary(result, http), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
