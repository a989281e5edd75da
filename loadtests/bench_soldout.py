"""How soon a flash deal's sell-out reaches every viewer of its room (issue 21 item 1: the
target is ``deal.sold_out`` at every viewer within 50 ms, p99, of the last hold, at 2,000
viewers).

One ``livecart serve`` pinned to one core (as in bench_fanout.py: its Valkey and the client
process share the other core), a live room, and a flash deal of ``--units`` units, one per
buyer. The client process connects ``--viewers`` viewers (raw asyncio sockets; each sends
``hello`` and waits for its ``holds``), waits out the deal's countdown and has ``--buyers``
guests reserve at once over ``--connections`` keep-alive connections, the way a storm's first
second does (``--connections 1000``: every buyer on a connection of its own, all sent at once).
Each viewer notes when a frame carrying ``deal.sold_out`` reached it; each buyer how long its
answer took from its request's send (the reserve latency a light client sees).

The lag is measured from the last hold, by Redis's clock (its ``expires_ms`` less the hold's
lifetime; Redis, the server and the clients share this machine's clock), to each viewer's
receipt. It is split at the room's move that emitted the event (the event's ``ms``, stamped by
the server): hold -> move is the push (the nudge and the move's start), move -> viewer the
fan-out. Each round first measures the floor on this machine: a bare ``websockets`` server's
``broadcast()`` of one frame at a time to as many viewers (bench_fanout.py's baseline), from its
send to each viewer's receipt. The client's own CPU share over the burst is printed with the
figures: past 70 % of a core, its own queue is in the latencies (the verdict says so).

``--tick-s 10`` runs the server with a 10 s room tick, so a sell-out that arrives at once was
pushed (test_stock_push.py proves the same in the suite).

``--nodes 2`` puts the viewers on a second ``livecart serve`` of the same Valkey and SQL,
pinned to the same core as the first, which takes the buyers (decision 0052: websockets on
nodes of their own); ``--buyers-nice N`` runs the buyers' node at that nice level. The server
CPU printed is then both processes'. Run:
``python loadtests/bench_soldout.py [--viewers 2000] [--units 200] [--buyers 1000]
[--connections 32] [--rounds 3] [--tick-s S] [--nodes 1|2] [--buyers-nice N] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.bench_fanout import (
    CLIENT_CPU,
    Tally,
    ViewerProtocol,
    another_node,
    cpu_seconds,
    livecart_node,
    livecart_room,
    livecart_seller,
    pinned,
    raise_open_files,
    run_baseline,
)

HERE = Path(__file__).resolve()
TARGET_P99_MS = 50.0
CLIENT_CPU_BOUND = 0.7  # of one core: past it the client's own queue is in the lags
SEE_ALL_S = 30.0  # how long every viewer may take to see the sell-out
FLOOR_EVENTS = 20  # frames the bare server broadcasts, one at a time, for its floor
SOLD_OUT = b'"deal.sold_out"'
MOVE_MS = re.compile(rb'"type":"deal\.sold_out"[^}]*"ms":(\d+)')
HOLD_TTL_S = 120  # the server's LIVECART_HOLD_TTL_S, set explicitly below


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -------------------------------------------------------------------------------------------
# the client process


class Audience:
    """How many viewers have seen the sell-out; ``everyone`` is set once all of them have."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.everyone = asyncio.Event()

    def saw(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.everyone.set()


class Watcher(ViewerProtocol):
    """A viewer that notes when the sell-out reached it (the frame may straddle two reads)."""

    def __init__(self, host: str, path: str, hello: bytes, audience: Audience) -> None:
        super().__init__(host, path, hello, Tally(0), sampled=False)
        self.audience = audience
        self.sold_out_ns = 0
        self.tail = b""
        self.move_ms: int | None = None

    def data_received(self, data: bytes) -> None:
        if not self.sold_out_ns and self.ready.done():
            chunk = self.tail + data
            if SOLD_OUT in chunk:
                self.sold_out_ns = time.time_ns()
                self.audience.saw()
                if (found := MOVE_MS.search(chunk)) is not None:
                    self.move_ms = int(found.group(1))
            self.tail = data[-len(SOLD_OUT) :]
        super().data_received(data)


class Buyers:
    """``--buyers`` guests over ``--connections`` keep-alive connections, opened before the deal
    does; each connection sends its buyers' reservations one after another. Each answer's time
    from its request's send is kept: the reserve latency as a light client sees it."""

    def __init__(self, args: argparse.Namespace, tokens: list[str]) -> None:
        self.args = args
        shares = (tokens[i :: args.connections] for i in range(args.connections))
        self.shares = [mine for mine in shares if mine]
        self.links: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.expiries: list[int] = []  # the holds' (Redis time + the hold's lifetime)
        self.statuses: dict[int, int] = {}
        self.latency_ms: list[float] = []

    async def connect(self) -> None:
        for _ in self.shares:
            self.links.append(await asyncio.open_connection("127.0.0.1", self.args.port))

    async def reserve(self) -> None:
        pairs = zip(self.links, self.shares, strict=True)
        await asyncio.gather(*(self._send(link, mine) for link, mine in pairs))

    async def _send(
        self, link: tuple[asyncio.StreamReader, asyncio.StreamWriter], mine: list[str]
    ) -> None:
        reader, writer = link
        body = b'{"qty":1}'
        try:
            for token in mine:
                sent = time.perf_counter()
                writer.write(
                    (
                        f"POST /api/deals/{self.args.deal}/reserve HTTP/1.1\r\n"
                        f"Host: 127.0.0.1:{self.args.port}\r\nAuthorization: Bearer {token}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    ).encode()
                    + body
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                assert length is not None, head
                answer = orjson.loads(await reader.readexactly(int(length.group(1))))
                self.latency_ms.append((time.perf_counter() - sent) * 1000)
                status = int(head.split(b" ", 2)[1])
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 201:
                    self.expiries.append(answer["hold"]["expires_ms"])
        finally:
            writer.close()


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(len(values) * share))]


async def run_clients(args: argparse.Namespace) -> dict[str, Any]:
    from web.auth import GuestSessions

    loop = asyncio.get_running_loop()
    sessions = GuestSessions(args.secret, 24 * 3600)
    audience = Audience(args.viewers)
    viewers: list[Watcher] = []
    for start in range(0, args.viewers, 250):
        batch = [
            Watcher(
                f"127.0.0.1:{args.viewer_port or args.port}",
                f"/ws/rooms/{args.room}",
                orjson.dumps({"type": "hello", "token": sessions.issue()[1]}),
                audience,
            )
            for _ in range(start, min(start + 250, args.viewers))
        ]
        for v in batch:
            await loop.create_connection(lambda v=v: v, "127.0.0.1", args.viewer_port or args.port)
        await asyncio.wait_for(asyncio.gather(*(v.ready for v in batch)), 60)
        viewers += batch
    tokens = [sessions.issue()[1] for _ in range(args.buyers)]
    # The deal opens by Redis's clock, which is this machine's: a moment after it, all at once.
    buyers = Buyers(args, tokens)
    await buyers.connect()
    await asyncio.sleep(max(0.0, args.starts_ms / 1000 + 0.05 - time.time()))
    pids = [args.server_pid, *([args.viewer_pid] if args.viewer_pid else [])]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    server0 = sum(cpu_seconds(pid) for pid in pids)
    await buyers.reserve()
    expiries, statuses = buyers.expiries, buyers.statuses
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(audience.everyone.wait(), SEE_ALL_S)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    server_cpu = sum(cpu_seconds(pid) for pid in pids) - server0
    if len(expiries) != args.units:
        raise RuntimeError(f"{len(expiries)} holds for {args.units} units: {statuses}")
    last_hold_ms = max(expiries) - HOLD_TTL_S * 1000
    lags = sorted(v.sold_out_ns / 1e6 - last_hold_ms for v in viewers if v.sold_out_ns)
    moves = {v.move_ms for v in viewers if v.move_ms is not None}
    move_ms = min(moves) if moves else None
    fanout = sorted(v.sold_out_ns / 1e6 - move_ms for v in viewers if v.sold_out_ns and move_ms)
    return {
        "viewers": args.viewers,
        "nodes": 2 if args.viewer_port else 1,  # the viewers on a node of their own, or not
        "units": args.units,
        "buyers": args.buyers,
        "answers": {str(k): n for k, n in sorted(statuses.items())},
        "connections": args.connections,
        "reserve_p50_ms": percentile(sorted(buyers.latency_ms), 0.50),
        "reserve_p99_ms": percentile(sorted(buyers.latency_ms), 0.99),
        "saw_sold_out": len(lags),
        "lag_p50_ms": percentile(lags, 0.50) if lags else None,
        "lag_p95_ms": percentile(lags, 0.95) if lags else None,
        "lag_p99_ms": percentile(lags, 0.99) if lags else None,
        "lag_max_ms": lags[-1] if lags else None,
        "hold_to_move_ms": move_ms - last_hold_ms if move_ms else None,
        "move_to_viewer_p99_ms": percentile(fanout, 0.99) if fanout else None,
        "moves_seen": len(moves),
        "client_cpu_share": cpu / wall,
        "server_cpu_share": server_cpu / wall,
        "seconds": wall,
    }


# -------------------------------------------------------------------------------------------
# orchestration


def flash_deal(base: str, seller: tuple[str, int], room: int, units: int) -> dict[str, Any]:
    """A product in the room's bag, its SKU and a flash deal of ``units``, one per buyer."""
    import httpx

    h = {"Authorization": f"Bearer {seller[0]}"}

    def post(path: str, body: dict[str, Any]) -> Any:
        r = httpx.post(base + path, headers=h, json=body, timeout=10)
        if r.status_code >= 300:
            raise RuntimeError(f"POST {path} -> {r.status_code}: {r.text}")
        return r.json()

    product = post(f"/api/shops/{seller[1]}/products", {"title": "Bench jacket"})["product"]
    sku = post(
        f"/api/products/{product['id']}/skus",
        {"variant": "M", "list_price": 9900, "currency": "USD", "stock": units},
    )["sku"]
    post(f"/api/rooms/{room}/bag", {"product_id": product["id"]})
    fields = {"deal_price": 4900, "quantity": units, "per_buyer_limit": 1}
    deal = post(
        f"/api/rooms/{room}/deals",
        {"sku_id": sku["id"], "countdown_s": 10, "duration_s": 300, **fields},
    )["deal"]
    return dict(deal)


def one_round(args: argparse.Namespace, workdir: Path, name: str) -> dict[str, Any]:
    # Every buyer comes from 127.0.0.1: the per-address limits would refuse a storm's worth.
    env = {
        "LIVECART_HOLD_TTL_S": str(HOLD_TTL_S),
        "LIVECART_RESERVE_RATE": "1000000",
        "LIVECART_RESERVE_BURST": "1000000000",
        "LIVECART_ADDRESS_HOLD_CAP": "1000000000",
    }
    if args.tick_s is not None:
        env["LIVECART_ROOM_TICK_S"] = str(args.tick_s)
    with contextlib.ExitStack() as stack:
        node = stack.enter_context(livecart_node(workdir, name, args.buyers_nice, **env))
        # --nodes 2: the viewers on a second node of the same stores and the same core, so
        # the burst's HTTP answers and the room's push and fan-out run in separate processes.
        watched = (
            stack.enter_context(another_node(node, workdir, f"{name}-b"))
            if args.nodes == 2
            else None
        )
        base = node.server.base_url
        seller = livecart_seller(node.database_url)
        room = livecart_room(base, node.database_url, seller)
        deal = flash_deal(base, seller, room, args.units)
        cmd = [
            *pinned(CLIENT_CPU),
            sys.executable,
            str(HERE),
            "clients",
            f"--port={node.server.port}",
            f"--server-pid={node.server.pid}",
            f"--room={room}",
            f"--deal={deal['deal_id']}",
            f"--starts-ms={deal['starts_ms']}",
            f"--secret={node.secret}",  # one argument: a secret may begin with "-"
            f"--viewers={args.viewers}",
            f"--units={args.units}",
            f"--buyers={args.buyers}",
            f"--connections={args.connections}",
            *([f"--viewer-port={watched.port}", f"--viewer-pid={watched.pid}"] if watched else []),
        ]
        out = subprocess.run(cmd, capture_output=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"clients failed:\n{out.stderr.decode()[-3000:]}")
        result: dict[str, Any] = json.loads(out.stdout)
        return result


def floor(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The floor on this machine: one frame at a time from a bare ``websockets`` server's
    ``broadcast()`` to as many viewers, timed from its send to every tenth viewer's receipt
    (bench_fanout.py's baseline with one event in flight)."""
    plain = argparse.Namespace(n=args.viewers, events=FLOOR_EVENTS, warmup=2, window=1)
    return run_baseline(plain, workdir)


def table(rows: list[dict[str, Any]]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        "| round | saw it | lag p50 | p95 | p99 | max ms | hold -> move ms "
        "| move -> viewer p99 ms | reserve p50 / p99 ms | client CPU | server CPU "
        "| bare broadcast p50 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['round']} | {r['saw_sold_out']} of {r['viewers']} | {ms(r['lag_p50_ms'])} "
            f"| {ms(r['lag_p95_ms'])} | {ms(r['lag_p99_ms'])} | {ms(r['lag_max_ms'])} "
            f"| {ms(r['hold_to_move_ms'])} | {ms(r['move_to_viewer_p99_ms'])} "
            f"| {ms(r['reserve_p50_ms'])} / {ms(r['reserve_p99_ms'])} "
            f"| {r['client_cpu_share']:.0%} | {r['server_cpu_share']:.0%} "
            f"| {ms(r['floor']['p50_ms'])} / {ms(r['floor']['p99_ms'])} |"
        )
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]]) -> str:
    p99s = sorted(r["lag_p99_ms"] for r in rows if r["lag_p99_ms"] is not None)
    busy = [r["round"] for r in rows if r["client_cpu_share"] > CLIENT_CPU_BOUND]
    missed = sum(r["viewers"] - r["saw_sold_out"] for r in rows)
    median = statistics.median(p99s) if p99s else float("nan")
    floors = [r["floor"]["p99_ms"] for r in rows]
    return (
        f"sold-out lag p99, median of {len(p99s)} rounds: {median:.1f} ms (target <= "
        f"{TARGET_P99_MS:.0f} ms: {'met' if median <= TARGET_P99_MS else 'NOT met'}); "
        f"{median / statistics.median(floors):.2f}x a bare broadcast's p99 of one frame; "
        f"viewers that never saw it: {missed}"
        + (f"; client past {CLIENT_CPU_BOUND:.0%} of a core in rounds {busy}" if busy else "")
    )


def main(argv: list[str] | None = None) -> int:
    raise_open_files()
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="command")
    c = sub.add_parser("clients")
    for name in ("--port", "--server-pid", "--room", "--deal", "--starts-ms"):
        c.add_argument(name, type=int, required=True)
    c.add_argument("--secret", required=True)
    c.add_argument("--viewer-port", type=int, default=None)
    c.add_argument("--viewer-pid", type=int, default=None)
    for parser in (p, c):
        parser.add_argument("--viewers", type=int, default=2000)
        parser.add_argument("--units", type=int, default=200)
        parser.add_argument("--buyers", type=int, default=1000)
        parser.add_argument("--connections", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tick-s", type=float, default=None)
    p.add_argument(
        "--nodes",
        type=int,
        choices=(1, 2),
        default=1,
        help="2: viewers on a second node (same Valkey, SQL and core), buyers on the first",
    )
    p.add_argument("--buyers-nice", type=int, default=0, help="the nice level of the buyers' node")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.command == "clients":
        import uvloop

        print(json.dumps(uvloop.run(run_clients(args))))
        return 0
    if args.buyers < args.units:
        p.error("--buyers must be at least --units: the deal has to sell out")
    rows = []
    with tempfile.TemporaryDirectory(prefix="livecart-soldout-") as tmp:
        for round_ in range(1, args.rounds + 1):
            say(f"round {round_}: {args.viewers} viewers, {args.buyers} buyers ...")
            # The floor first, then livecart: drift on a shared machine hits both alike.
            bare = floor(args, Path(tmp))
            ours = one_round(args, Path(tmp), f"r{round_}")
            rows.append({**ours, "round": round_, "floor": bare})
    if args.json:
        print(json.dumps(rows, indent=2))
        say(verdict(rows))
    else:
        print(table(rows))
        print(verdict(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
