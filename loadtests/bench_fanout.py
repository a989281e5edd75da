"""Fan-out of one room's events to 1,000 and 5,000 viewers, against a bare ``websockets``
``broadcast()`` server measured in the same run with the same clients.

Both servers run pinned to one core; the viewers and the publisher run in a separate process on
the other core (raw asyncio sockets with a minimal frame reader, so the client side stays cheap).
The publisher keeps ``--window`` events in flight: an event is done when every viewer has it.

- livecart: ``livecart serve`` with ``LIVECART_BENCH_ROUTES=1``; each event is
  ``POST /api/bench/rooms/{id}/echo`` -> the room log and bus in Redis -> the gateway's fan-out
  (the path a pin takes, minus the room rules). Viewers send ``hello`` first, as real ones do.
- baseline: ``websockets.asyncio.server`` (no compression); a publisher connection sends each
  event and the server calls ``broadcast()`` to every viewer connection.

Printed per viewer count: deliveries/s, share delivered, p50/p99 latency (publisher's send to a
viewer's receipt), server memory per idle viewer, client CPU use. Run:
``python loadtests/bench_fanout.py [--viewers 1000 5000] [--events 300] [--window 4]
[--rounds 2] [--json]``. Ratios are of the means over rounds; rounds alternate the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

# Run as a script from a checkout: its root holds tests.harness (and livecart's packages, when
# livecart is not installed).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import Server, free_port, livecart, serve

HERE = Path(__file__).resolve()
SERVER_CPU, CLIENT_CPU = "0", "1"
DELIVERY_TARGET = 0.8  # our deliveries/s as a share of the baseline's
P99_TARGET = 2.0  # our p99 latency as a multiple of the baseline's at most
EVENT_TIMEOUT_S = 10.0
SAMPLE_EVERY = 10  # latency is taken on every tenth viewer; all of them are counted


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def pinned(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


# -------------------------------------------------------------------------------------------
# the baseline server: websockets' own broadcast()


def baseline_server(port: int) -> None:
    import uvloop
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    viewers: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == "/pub":
            async for message in ws:
                broadcast(viewers, message)
            return
        viewers.add(ws)
        try:
            await ws.wait_closed()
        finally:
            viewers.discard(ws)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, compression=None, backlog=4096):
            print("ready", flush=True)
            await asyncio.Future()

    uvloop.run(main())


# -------------------------------------------------------------------------------------------
# the client process: viewers and the publisher


def ws_request(host: str, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame; a zero mask key leaves the payload as it is (RFC 6455 5.3)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    else:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


class Tally:
    """What the sampled viewers received, by event (its send time in ns is its id): an event is
    done when every sampled viewer has it. The other viewers only count (cheaply, in C), so the
    client process stays well below its own ceiling."""

    def __init__(self, sampled: int) -> None:
        self.sampled = sampled
        self.counts: dict[int, int] = {}
        self.done: dict[int, asyncio.Future[None]] = {}
        self.latency_us = array("q")
        self.recording = False

    def expect(self, t: int) -> asyncio.Future[None]:
        self.counts[t] = 0
        future = self.done[t] = asyncio.get_running_loop().create_future()
        return future

    def received(self, payload: bytes, now_ns: int) -> int:
        seen = 0
        at = payload.find(b'"t":')
        while at != -1:
            seen += 1
            end = payload.index(b"}", at)
            t = int(payload[at + 4 : end])
            count = self.counts.get(t)
            if count is not None:
                count += 1
                self.counts[t] = count
                if self.recording:
                    self.latency_us.append((now_ns - t) // 1000)
                if count == self.sampled:
                    del self.counts[t]
                    future = self.done.pop(t)
                    if not future.done():
                        future.set_result(None)
            at = payload.find(b'"t":', end)
        return seen


class ViewerProtocol(asyncio.Protocol):
    def __init__(
        self, host: str, path: str, hello: bytes | None, tally: Tally, sampled: bool
    ) -> None:
        self.request = ws_request(host, path)
        self.hello = hello
        self.tally = tally
        self.sampled = sampled
        self.count = 0  # bench events received
        self.buffer = bytearray()
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.closed_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        # Fast path, the common case: exactly one small whole text frame, nothing buffered.
        if (
            not self.sampled
            and self.upgraded
            and self.ready.done()
            and not self.buffer
            and data[0] == 0x81
            and len(data) == 2 + data[1]
        ):
            self.count += data.count(b'"t":')
            return
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end == -1:
                return
            if b" 101 " not in buf[:end]:
                self.ready.set_exception(RuntimeError(bytes(buf[:end]).decode()))
                return
            del buf[: end + 4]
            self.upgraded = True
            if self.hello is None:
                self.ready.set_result(None)
            else:
                assert self.transport is not None
                self.transport.write(client_frame(self.hello))
        now = time.time_ns() if self.sampled else 0
        at, size = 0, len(buf)
        while size - at >= 2:
            n, head = buf[at + 1] & 0x7F, 2
            if n == 126:
                if size - at < 4:
                    break
                n, head = int.from_bytes(buf[at + 2 : at + 4], "big"), 4
            elif n == 127:
                if size - at < 10:
                    break
                n, head = int.from_bytes(buf[at + 2 : at + 10], "big"), 10
            if size - at < head + n:
                break
            opcode = buf[at] & 0x0F
            payload = bytes(buf[at + head : at + head + n])
            at += head + n
            if opcode == 0x1:
                if not self.ready.done() and b'"holds"' in payload:
                    self.ready.set_result(None)
                if self.sampled:
                    self.count += self.tally.received(payload, now)
                else:
                    self.count += payload.count(b'"t":')
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(client_frame(payload, 0xA))  # pong
            elif opcode == 0x8:
                self.closed_code = int.from_bytes(payload[:2], "big") if n >= 2 else 1005
        del buf[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before ready"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_clients(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    host, port = "127.0.0.1", args.port
    every = SAMPLE_EVERY
    tally = Tally(len(range(0, args.viewers, every)))
    path = f"/ws/rooms/{args.room}" if args.target == "livecart" else "/"
    tokens: list[bytes | None] = [None] * args.viewers
    if args.target == "livecart":
        from web.auth import GuestSessions

        sessions = GuestSessions(args.secret, 24 * 3600)
        tokens = [
            orjson.dumps({"type": "hello", "token": sessions.issue()[1]})
            for _ in range(args.viewers)
        ]
    rss_before = rss_bytes(args.server_pid)
    viewers: list[ViewerProtocol] = []
    for start in range(0, args.viewers, 250):
        batch = [
            ViewerProtocol(f"{host}:{port}", path, tokens[i], tally, i % every == 0)
            for i in range(start, min(start + 250, args.viewers))
        ]
        for v in batch:
            await loop.create_connection(lambda v=v: v, host, port)
        await asyncio.wait_for(asyncio.gather(*(v.ready for v in batch)), 60)
        viewers += batch
    await asyncio.sleep(1.0)
    rss_after = rss_bytes(args.server_pid)

    publish = await publisher(args, host, port)
    window = asyncio.Semaphore(args.window)
    timeouts = 0

    async def one_event() -> None:
        """Publish one event; its window slot (already taken) is freed once all have it."""
        nonlocal timeouts
        t = time.time_ns()
        done = tally.expect(t)
        await publish(t)
        try:
            await asyncio.wait_for(asyncio.shield(done), EVENT_TIMEOUT_S)
        except TimeoutError:
            timeouts += 1
            tally.counts.pop(t, None)
            tally.done.pop(t, None)
        finally:
            window.release()

    async def events(count: int) -> None:
        tasks = []
        for _ in range(count):
            await window.acquire()
            tasks.append(asyncio.create_task(one_event()))
        await asyncio.gather(*tasks)

    def received() -> int:
        return sum(v.count for v in viewers)

    await events(args.warmup)
    tally.recording = True
    before = received()
    cpu0, server0, wall0 = time.process_time(), cpu_seconds(args.server_pid), time.perf_counter()
    await events(args.events)
    wall = time.perf_counter() - wall0
    cpu, server_cpu = time.process_time() - cpu0, cpu_seconds(args.server_pid) - server0
    delivered = received() - before
    tally.recording = False
    expected_total = (args.warmup + args.events) * args.viewers
    for _ in range(50):  # stragglers: the unsampled viewers may be a frame behind
        if received() >= expected_total:
            break
        await asyncio.sleep(0.1)
    lat = sorted(tally.latency_us)
    return {
        "target": args.target,
        "viewers": args.viewers,
        "events": args.events,
        "window": args.window,
        "deliveries": delivered,
        "delivered_share": received() / expected_total,
        "seconds": wall,
        "deliveries_per_s": delivered / wall,
        "p50_ms": lat[len(lat) // 2] / 1000 if lat else None,
        "p99_ms": lat[int(len(lat) * 0.99)] / 1000 if lat else None,
        "latency_samples": len(lat),
        "event_timeouts": timeouts,
        "viewers_closed": sum(1 for v in viewers if v.closed_code is not None),
        "server_bytes_per_idle_viewer": (rss_after - rss_before) / args.viewers,
        "client_cpu_share": cpu / wall,
        "server_cpu_share": server_cpu / wall,
    }


async def publisher(args: argparse.Namespace, host: str, port: int) -> Any:
    if args.target == "livecart":
        reader, writer = await asyncio.open_connection(host, port)
        head = (
            f"POST /api/bench/rooms/{args.room}/echo HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/json\r\n"
        )

        one_at_a_time = asyncio.Lock()  # one keep-alive connection, one request at a time

        async def post(t: int) -> None:
            body = b'{"t":%d}' % t
            async with one_at_a_time:
                writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                status = await reader.readuntil(b"\r\n\r\n")
            if b" 204 " not in status.split(b"\r\n", 1)[0]:
                raise RuntimeError(status.decode())

        return post

    reader, writer = await asyncio.open_connection(host, port)
    writer.write(ws_request(f"{host}:{port}", "/pub"))
    await reader.readuntil(b"\r\n\r\n")

    async def send(t: int) -> None:
        # The same message livecart's viewers get: [{"seq":N,"type":"bench","t":T}]
        writer.write(client_frame(b'[{"seq":1000000,"type":"bench","t":%d}]' % t))
        await writer.drain()

    return send


# -------------------------------------------------------------------------------------------
# orchestration


def clients(
    args: argparse.Namespace, target: str, port: int, pid: int, room: int, secret: str
) -> dict[str, Any]:
    cmd = [
        *pinned(CLIENT_CPU),
        sys.executable,
        str(HERE),
        "clients",
        "--target",
        target,
        "--port",
        str(port),
        "--server-pid",
        str(pid),
        "--room",
        str(room),
        # One argument: a secret may begin with "-", which argparse would take for an option.
        f"--secret={secret}",
        "--viewers",
        str(args.n),
        "--events",
        str(args.events),
        "--warmup",
        str(args.warmup),
        "--window",
        str(args.window),
    ]
    out = subprocess.run(cmd, capture_output=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"clients failed:\n{out.stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def livecart_seller(database_url: str) -> tuple[str, int]:
    """A new seller with a shop, made in SQL: its API token and the shop's id."""
    from catalog import service
    from kernel.db import Database

    async def seller() -> tuple[str, int]:
        db = Database(database_url)
        try:
            async with db.session() as session:
                _, shop, token = await service.create_seller(
                    session, "Bench", f"bench-{secrets.token_hex(4)}@example.com"
                )
            assert shop.id is not None
            return token, shop.id
        finally:
            await db.close()

    return asyncio.run(seller())


def livecart_room(base: str, database_url: str, seller: tuple[str, int] | None = None) -> int:
    """A live room: its seller made in SQL, the room over the API like a creator would."""
    import httpx

    token, shop = seller or livecart_seller(database_url)
    h = {"Authorization": f"Bearer {token}"}
    room = httpx.post(f"{base}/api/rooms", headers=h, json={"shop_id": shop, "title": "Bench"})
    room_id: int = room.json()["room"]["id"]
    httpx.post(f"{base}/api/rooms/{room_id}/live", headers=h).raise_for_status()
    return room_id


@dataclass
class Node:
    """A ``livecart serve`` of its own: pinned to SERVER_CPU, its Valkey to CLIENT_CPU."""

    server: Server
    database_url: str
    secret: str
    env: dict[str, str]  # the server's environment, for another node on the same stores


@contextmanager
def livecart_node(workdir: Path, name: str, nice: int = 0, **extra_env: str) -> Iterator[Node]:
    from web.embedded import EmbeddedValkey
    from web.migrate import upgrade

    secret = secrets.token_urlsafe(16)
    database_url = f"sqlite:///{workdir / f'bench-{name}.db'}"
    upgrade(database_url)
    with EmbeddedValkey(workdir / f"valkey-{name}", persistent=False) as valkey:
        # Valkey shares the clients' core: the server's core is its alone, as the baseline's is.
        if pinned(CLIENT_CPU) and valkey._process is not None:
            subprocess.run(
                ["taskset", "-pc", CLIENT_CPU, str(valkey._process.pid)],
                check=True,
                capture_output=True,
            )
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": valkey.url,
            "DATABASE_URL": database_url,
            "LIVECART_SECRET_KEY": secret,
            "LIVECART_PORT": str(port),
            "LIVECART_BENCH_ROUTES": "1",
            "LIVECART_DATA_DIR": str(workdir),
            **extra_env,
        }
        with serve_pinned(env, port, workdir / f"livecart-{name}.log", nice) as server:
            yield Node(server, database_url, secret, env)


@contextmanager
def another_node(node: Node, workdir: Path, name: str) -> Iterator[Server]:
    """A second ``livecart serve`` on ``node``'s Valkey and SQL, pinned to the same core."""
    port = free_port()
    env = {**node.env, "LIVECART_PORT": str(port)}
    with serve_pinned(env, port, workdir / f"livecart-{name}.log") as server:
        yield server


def serve_pinned(env: dict[str, str], port: int, log: Path, nice: int = 0) -> Any:
    """``livecart serve`` pinned to SERVER_CPU, at ``nice`` if not 0."""
    niced = ["nice", "-n", str(nice)] if nice else []
    command = [*pinned(SERVER_CPU), *niced, *livecart("serve")]
    return serve(command, port=port, env=env, log=log, ready_path="/readyz")


def run_livecart(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with livecart_node(workdir, str(args.n)) as node:
        room = livecart_room(node.server.base_url, node.database_url)
        return clients(args, "livecart", node.server.port, node.server.pid, room, node.secret)


def run_baseline(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    port = free_port()
    log = workdir / "baseline.log"
    cmd = [*pinned(SERVER_CPU), sys.executable, str(HERE), "baseline-server", "--port", str(port)]
    with serve(cmd, port=port, env=dict(os.environ), log=log) as server:
        return clients(args, "baseline", port, server.pid, 0, "")


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| viewers | server | round | deliveries/s | delivered | p50 ms | p99 ms "
        "| bytes/idle viewer | server CPU | client CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['viewers']} | {r['target']} | {r['round']} | {r['deliveries_per_s']:,.0f} | "
            f"{r['delivered_share']:.2%} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['server_bytes_per_idle_viewer']:,.0f} | {r['server_cpu_share']:.0%} | "
            f"{r['client_cpu_share']:.0%} |"
        )
    return "\n".join(lines)


def mean_of(rows: list[dict[str, Any]], n: int, target: str, field: str) -> float:
    values = [r[field] for r in rows if r["viewers"] == n and r["target"] == target]
    return sum(values) / len(values)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Ratios of the means over rounds (rounds alternate baseline and livecart)."""
    out = []
    for n in sorted({r["viewers"] for r in rows}):
        rate = mean_of(rows, n, "livecart", "deliveries_per_s") / mean_of(
            rows, n, "baseline", "deliveries_per_s"
        )
        p99 = mean_of(rows, n, "livecart", "p99_ms") / mean_of(rows, n, "baseline", "p99_ms")
        delivered = min(
            r["delivered_share"] for r in rows if r["viewers"] == n and r["target"] == "livecart"
        )
        out.append(
            f"{n} viewers: deliveries/s {rate:.2f}x baseline (target >= {DELIVERY_TARGET}x: "
            f"{'met' if rate >= DELIVERY_TARGET else 'NOT met'}); p99 {p99:.2f}x baseline "
            f"(target <= {P99_TARGET}x: {'met' if p99 <= P99_TARGET else 'NOT met'}); "
            f"delivered {delivered:.2%}"
        )
    return out


def raise_open_files() -> None:
    """Thousands of sockets: lift the soft limit on open files (children inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    raise_open_files()
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="command")
    b = sub.add_parser("baseline-server")
    b.add_argument("--port", type=int, required=True)
    c = sub.add_parser("clients")
    for name in (
        "--port",
        "--server-pid",
        "--room",
        "--viewers",
        "--events",
        "--warmup",
        "--window",
    ):
        c.add_argument(name, type=int, required=True)
    c.add_argument("--target", choices=["livecart", "baseline"], required=True)
    c.add_argument("--secret", default="")
    p.add_argument("--viewers", type=int, nargs="+", default=[1000, 5000])
    p.add_argument("--events", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--window", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.command == "baseline-server":
        baseline_server(args.port)
        return 0
    if args.command == "clients":
        import uvloop

        print(json.dumps(uvloop.run(run_clients(args))))
        return 0
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="livecart-fanout-") as tmp:
        for n in args.viewers:
            args.n = n
            # Rounds alternate the two servers, so drift on a shared machine hits both.
            for round_ in range(1, args.rounds + 1):
                say(f"{n} viewers, round {round_}: baseline ...")
                rows.append({**run_baseline(args, Path(tmp)), "round": round_})
                say(f"{n} viewers, round {round_}: livecart ...")
                rows.append({**run_livecart(args, Path(tmp)), "round": round_})
    if args.json:
        print(json.dumps(rows, indent=2))
    print(table(rows))
    for line in verdicts(rows):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
