"""What one idle viewer costs the server: RSS per viewer and, with tracemalloc, where it goes.

For livecart (``livecart serve``, a fresh Valkey and SQLite file, one live room) and for a bare
``websockets`` server (bench_fanout.py's baseline, no compression), in the same run: connect
``--viewers`` idle viewers (livecart's send ``hello`` and get ``welcome``/``snapshot``/``holds``,
then nothing), wait a second, and read the server's RSS; the difference over the viewer count is
the memory per idle viewer (as bench_fanout.py reads it). Then the same again with the server
under tracemalloc: the allocations that appeared while the viewers connected, per viewer,
grouped by file:line. No timing is taken; with ``--idle-s S`` the untraced runs also read the
server's CPU over S seconds of the viewers doing nothing (issue 21: what an idle room costs).
``--floor N`` instead reads livecart's CPU with N idle viewers as served, then with each of the
node's loops switched off in turn (its settings set to an hour) and with all of them off: where
an idle node's CPU goes. Run: ``python loadtests/viewer_memory.py [--viewers 500] [--top 15]
[--frames 1] [--idle-s 0] [--floor N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import runpy
import secrets
import signal
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.bench_fanout import (
    Tally,
    ViewerProtocol,
    cpu_seconds,
    livecart_room,
    raise_open_files,
    rss_bytes,
)
from tests.harness import Server, free_port, livecart, serve

HERE = Path(__file__).resolve()
SNAPSHOT_ENV = "VIEWER_MEMORY_SNAPSHOT"  # where a traced server dumps its snapshot on SIGUSR1


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -------------------------------------------------------------------------------------------
# the servers, optionally under tracemalloc


def traced(argv: list[str], frames: int) -> None:
    """Run ``python <argv>`` (a module after ``-m``, or a script) in this process with
    tracemalloc on; SIGUSR1 dumps a snapshot to $VIEWER_MEMORY_SNAPSHOT."""
    tracemalloc.start(frames)
    target = os.environ[SNAPSHOT_ENV]

    def dump(signum: int, frame: object) -> None:
        tmp = f"{target}.tmp"
        tracemalloc.take_snapshot().dump(tmp)
        os.replace(tmp, target)

    signal.signal(signal.SIGUSR1, dump)
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        runpy.run_path(argv[0], run_name="__main__")


def server_command(target: str, port: int, frames: int | None) -> list[str]:
    if target == "livecart":
        command = livecart("serve")
    else:
        bench = str(HERE.parent / "bench_fanout.py")
        command = [sys.executable, bench, "baseline-server", "--port", str(port)]
    if frames is None:
        return command
    return [sys.executable, str(HERE), "traced", "--frames", str(frames), "--", *command[1:]]


@contextmanager
def running(
    target: str, workdir: Path, frames: int | None, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[Server, str, int]]:
    """The server, livecart's secret ("" for the baseline), and the room the viewers join."""
    port = free_port()
    env = {**os.environ, SNAPSHOT_ENV: str(workdir / f"{target}.snapshot"), **(extra_env or {})}
    log = workdir / f"{target}.log"
    if target == "baseline":
        with serve(server_command(target, port, frames), port=port, env=env, log=log) as server:
            yield server, "", 0
        return

    from web.embedded import EmbeddedValkey
    from web.migrate import upgrade

    secret = secrets.token_urlsafe(16)
    database_url = f"sqlite:///{workdir / f'viewers-{secrets.token_hex(4)}.db'}"
    upgrade(database_url)
    with EmbeddedValkey(workdir / f"valkey-{secrets.token_hex(4)}", persistent=False) as valkey:
        env |= {
            "REDIS_URL": valkey.url,
            "DATABASE_URL": database_url,
            "LIVECART_SECRET_KEY": secret,
            "LIVECART_PORT": str(port),
            "LIVECART_DATA_DIR": str(workdir),
        }
        command = server_command(target, port, frames)
        wait = 30.0 if frames is None else 180.0  # tracing slows the imports down
        with serve(
            command, port=port, env=env, log=log, ready_path="/readyz", within_s=wait
        ) as server:
            yield server, secret, livecart_room(server.base_url, database_url)


def snapshot(server: Server, path: Path) -> tracemalloc.Snapshot:
    path.unlink(missing_ok=True)
    os.kill(server.pid, signal.SIGUSR1)
    for _ in range(600):
        if path.exists():
            return tracemalloc.Snapshot.load(str(path))
        time.sleep(0.1)
    raise RuntimeError("the traced server wrote no snapshot")


# -------------------------------------------------------------------------------------------
# the viewers


async def connect(target: str, port: int, room: int, secret: str, n: int) -> list[ViewerProtocol]:
    loop = asyncio.get_running_loop()
    host = "127.0.0.1"
    path = f"/ws/rooms/{room}" if target == "livecart" else "/"
    hellos: list[bytes | None] = [None] * n
    if target == "livecart":
        from web.auth import GuestSessions

        sessions = GuestSessions(secret, 24 * 3600)
        hellos = [orjson.dumps({"type": "hello", "token": sessions.issue()[1]}) for _ in range(n)]
    tally = Tally(0)
    viewers: list[ViewerProtocol] = []
    for start in range(0, n, 250):
        batch = [
            ViewerProtocol(f"{host}:{port}", path, hellos[i], tally, False)
            for i in range(start, min(start + 250, n))
        ]
        for v in batch:
            await loop.create_connection(lambda v=v: v, host, port)
        await asyncio.wait_for(asyncio.gather(*(v.ready for v in batch)), 120)
        viewers += batch
    await asyncio.sleep(1.0)
    return viewers


def hang_up(viewers: list[ViewerProtocol]) -> None:
    for v in viewers:
        if v.transport is not None:
            v.transport.abort()


def measure(
    target: str,
    workdir: Path,
    n: int,
    frames: int | None,
    idle_s: float = 0,
    extra_env: dict[str, str] | None = None,
) -> dict[str, object]:
    """RSS per viewer (untraced run) or the tracemalloc difference (traced run); with
    ``idle_s``, the server's CPU share of a core over that long with the viewers connected."""
    with running(target, workdir, frames, extra_env) as (server, secret, room):
        port = server.port
        snap_path = workdir / f"{target}.snapshot"
        before = snapshot(server, snap_path) if frames is not None else None
        rss0 = rss_bytes(server.pid)

        async def go() -> tuple[int, tracemalloc.Snapshot | None, float]:
            viewers = await connect(target, port, room, secret, n)
            rss1 = rss_bytes(server.pid)
            after = snapshot(server, snap_path) if frames is not None else None
            idle = 0.0
            if idle_s:
                began, cpu = time.monotonic(), cpu_seconds(server.pid)
                await asyncio.sleep(idle_s)  # the viewers' loop keeps answering pings
                idle = (cpu_seconds(server.pid) - cpu) / (time.monotonic() - began)
            hang_up(viewers)
            return rss1, after, idle

        rss1, after, idle = asyncio.run(go())
        return {
            "rss_per_viewer": (rss1 - rss0) / n,
            "before": before,
            "after": after,
            "idle_cpu": idle,
        }


# The node's own loops, each switched off in turn for --floor (an hour is "never" in a run):
# the money passes over SQL, the room ticker (moves, sweep share, reports), lapsed holds and
# deal clocks, the order pipeline's stream reads, the reconcile pass, and websocket keepalive.
FLOOR_LOOPS = {
    "order sweeper": {"LIVECART_MONEY_INTERVAL_S": "3600"},
    "room ticker": {"LIVECART_ROOM_TICK_S": "3600"},
    "hold sweeper": {"LIVECART_SWEEP_INTERVAL_MS": "3600000"},
    "order pipeline": {"LIVECART_RUN_WORKER": "0"},
    "reconcile pass": {"LIVECART_RECONCILE_INTERVAL_S": "3600"},
    "keepalive pings": {"LIVECART_WS_PING_INTERVAL_S": "3600"},
}


def floor(workdir: Path, n: int, idle_s: float) -> list[tuple[str, float]]:
    """The server's CPU with ``n`` idle viewers: as it is, with each of its loops switched off
    in turn, and with all of them off. What a loop costs is the first less its own line."""
    runs = {"as served": {}, **{f"{name} off": env for name, env in FLOOR_LOOPS.items()}}
    runs["all of them off"] = {k: v for env in FLOOR_LOOPS.values() for k, v in env.items()}
    shares = []
    for name, env in runs.items():
        say(f"livecart, {n} idle viewers, {name} ...")
        got = measure("livecart", workdir, n, None, idle_s, env)
        shares.append((name, float(got["idle_cpu"])))  # type: ignore[arg-type]
    return shares


def top_sites(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int, top: int) -> str:
    key = "traceback" if len(after.traces) and after.traceback_limit > 1 else "lineno"
    stats = after.compare_to(before, key)
    total = sum(s.size_diff for s in stats)
    lines = [f"  traced: {total / n / 1024:.2f} KB per viewer; by file:"]
    by_file = after.compare_to(before, "filename")
    for s in by_file[:top]:
        name = s.traceback[0].filename
        lines.append(f"  {s.size_diff / n:8.0f} B {s.count_diff / n:6.1f} blocks  {name}")
    lines.append("  by line:")
    for s in stats[:top]:
        where = "\n      <- ".join(f"{f.filename}:{f.lineno}" for f in reversed(s.traceback))
        lines.append(f"  {s.size_diff / n:8.0f} B {s.count_diff / n:6.1f} blocks  {where}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    raise_open_files()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["traced"]:
        frames = int(argv[2]) if argv[1:2] == ["--frames"] else 1
        traced(argv[argv.index("--") + 1 :], frames)
        return 0
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--viewers", type=int, default=500)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--frames", type=int, default=1, help="traceback depth of each allocation")
    p.add_argument("--no-trace", action="store_true", help="RSS only")
    p.add_argument(
        "--idle-s", type=float, default=0, help="also read the server's CPU over this long idle"
    )
    p.add_argument(
        "--floor",
        type=int,
        metavar="N",
        help="instead: livecart's idle CPU with N viewers, each of its loops switched off in turn",
    )
    args = p.parse_args(argv)
    if args.floor is not None:
        idle_s = args.idle_s or 30.0
        with tempfile.TemporaryDirectory(prefix="livecart-floor-") as tmp:
            shares = floor(Path(tmp), args.floor, idle_s)
        print(f"livecart's CPU with {args.floor} viewers idle for {idle_s:g} s:")
        for name, share in shares:
            print(f"  {share:7.2%} of a core  {name}")
        return 0
    if not 1 <= args.viewers <= 1000:
        p.error("--viewers: 1 to 1000")
    rss: dict[str, float] = {}
    idle: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="livecart-viewers-") as tmp:
        workdir = Path(tmp)
        for target in ("baseline", "livecart"):
            say(f"{target}: {args.viewers} idle viewers, RSS ...")
            got = measure(target, workdir, args.viewers, None, args.idle_s)
            rss[target] = float(got["rss_per_viewer"])  # type: ignore[arg-type]
            idle[target] = float(got["idle_cpu"])  # type: ignore[arg-type]
        print(f"RSS per idle viewer, {args.viewers} viewers:")
        for target, value in rss.items():
            print(f"  {target:8} {value / 1024:6.1f} KB")
        print(f"  ratio    {rss['livecart'] / rss['baseline']:6.2f}x baseline")
        if args.idle_s:
            print(f"server CPU with the {args.viewers} viewers idle for {args.idle_s:g} s:")
            for target, share in idle.items():
                print(f"  {target:8} {share:7.2%} of a core")
        if args.no_trace:
            return 0
        for target in ("baseline", "livecart"):
            say(f"{target}: {args.viewers} idle viewers, tracemalloc ...")
            got = measure(target, workdir, args.viewers, args.frames)
            print(f"{target}: allocations per idle viewer (tracemalloc, top {args.top})")
            print(top_sites(got["before"], got["after"], args.viewers, args.top))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
