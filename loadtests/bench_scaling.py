"""Scaling: reserve throughput with 1, 2 and 3 Redis primaries (a Valkey cluster on loopback,
tests/cluster.py) and with 1, 2 and 4 server processes (``livecart serve --workers N``), each
as a ratio against ``POST /api/noop`` on the same server in the same run (docs/benchmarks.md,
"Scaling").

Reservations go to ``--deals`` live deals (12), spread over the cluster's slots, by distinct
pre-signed buyers, driven by wrk (one thread). On a 2-core machine the server processes, the
Valkey primaries and wrk all compete for the same two cores: more processes cannot give more
throughput here, and the figures say how much each configuration gets per busy core instead.

With ``--replicas 1 --wait 0 1`` each primary has a replica and every configuration runs with
``LIVECART_REDIS_WAIT_REPLICAS`` 0 and 1 (decision 0038): what waiting for a replica costs a
reservation; ``--rounds`` repeats the whole set, interleaved, for a spread.

Run: ``python loadtests/bench_scaling.py [--duration 5] [--primaries 1 2 3] [--processes 1 2 4]
[--replicas 0] [--wait 0] [--rounds 1]``.
Everything listens on 127.0.0.1 and stops by itself; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.bench_reserve import (
    BODY,
    SESSION_MAX_AGE_S,
    WRK_SCRIPT,
    CpuMeter,
    Pinning,
    Wrk,
    WrkRun,
    create_seller,
    process_cpu_s,
    say,
    start_deal,
)
from tests import harness
from tests.cluster import ValkeyCluster
from tests.harness import ROOT, free_port, livecart
from web.auth import GuestSessions
from web.migrate import upgrade

UNPINNED = Pinning(available=False)  # scaling over cores: nothing is pinned


def write_script(path: Path, paths: list[str], tokens: list[str]) -> Path:
    """bench_reserve's wrk script, with each prepared request on the next of ``paths``."""
    script = WRK_SCRIPT.replace('local path = "%(path)s"', "local paths = {%(path)s}").replace(
        'wrk.format("POST", path,', 'wrk.format("POST", paths[(i - 1) %% #paths + 1],'
    )
    quoted = ",".join(f'"{t}"' for t in tokens)
    listed = ",".join(f'"{p}"' for p in paths)
    path.write_text(script % {"tokens": quoted, "path": listed, "body": BODY})
    return path


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


@dataclass
class Figure:
    primaries: int
    processes: int
    replicas: int  # per primary
    wait: int  # LIVECART_REDIS_WAIT_REPLICAS
    noop_rps: float
    reserve_rps: float
    server_cores: float  # CPU of the server processes during the reserve run, in cores
    redis_cores: float  # CPU of the Valkey primaries during the reserve run
    wrk_statuses: dict[str, int]

    @property
    def ratio(self) -> float:
        return self.reserve_rps / self.noop_rps

    @property
    def per_busy_core(self) -> float:
        return self.reserve_rps / max(0.01, self.server_cores + self.redis_cores)


def measure(
    cluster: ValkeyCluster, processes: int, wait: int, args: argparse.Namespace, workdir: Path
) -> Figure:
    name = f"serve-{cluster.primaries}-{processes}-{wait}-{secrets.token_hex(2)}"
    database_url = f"sqlite:///{workdir / f'{name}.db'}"
    upgrade(database_url)
    seller_token, shop_id = asyncio.run(create_seller(database_url))
    secret = secrets.token_urlsafe(32)
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": cluster.url,
        "DATABASE_URL": database_url,
        "LIVECART_SECRET_KEY": secret,
        "LIVECART_BENCH_ROUTES": "1",
        "LIVECART_REDIS_PREFIX": f"bs{secrets.token_hex(3)}",
        "LIVECART_DATA_DIR": str(workdir / "data"),
        "LIVECART_RESERVE_RATE": "1000000",
        "LIVECART_RESERVE_BURST": "1000000000",
        "LIVECART_ADDRESS_HOLD_CAP": "1000000000",
        "LIVECART_REDIS_WAIT_REPLICAS": str(wait),
    }
    command = livecart("serve", "--no-worker", "--port", str(port), "--workers", str(processes))
    log = workdir / f"{name}.log"
    with harness.serve(command, port=port, env=env, log=log, cwd=ROOT, ready_path="/readyz") as s:
        base = f"http://127.0.0.1:{port}"
        deals = [start_deal(base, seller_token, shop_id) for _ in range(args.deals)]
        sessions = GuestSessions(secret, SESSION_MAX_AGE_S)
        tokens = [sessions.issue()[1] for _ in range(args.buyers)]
        paths = [f"/api/deals/{d}/reserve" for d in deals]
        reserve = write_script(workdir / "reserve.lua", paths, tokens)
        noop = write_script(workdir / "noop.lua", ["/api/noop"], tokens)
        servers = children_of(s.pid) if processes > 1 else [s.pid]
        redis = [n.process.pid for n in cluster.nodes if n.process is not None]  # replicas too
        wrk = Wrk(base, args.connections, UNPINNED, CpuMeter([*servers, *redis]))
        wrk.run("warm-up", noop, args.warmup)
        wrk.run("warm-up", reserve, args.warmup)
        noop_run = wrk.run("noop", noop, args.duration)
        before = [process_cpu_s(p) for p in (*servers, *redis)]
        began = time.monotonic()
        reserve_run: WrkRun = wrk.run("reserve", reserve, args.duration)
        spent = [process_cpu_s(p) - b for p, b in zip((*servers, *redis), before, strict=True)]
        elapsed = time.monotonic() - began
    return Figure(
        primaries=cluster.primaries,
        processes=processes,
        replicas=cluster.replicas,
        wait=wait,
        noop_rps=noop_run.rps,
        reserve_rps=reserve_run.rps,
        server_cores=sum(spent[: len(servers)]) / elapsed,
        redis_cores=sum(spent[len(servers) :]) / elapsed,
        wrk_statuses=reserve_run.statuses,
    )


def table(figures: list[Figure]) -> str:
    rows = [
        "| primaries | replicas each | WAIT | server processes | no-op req/s | reserve req/s "
        "| reserve / no-op | server cores | Valkey cores | reserve req/s per busy core |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        rows.append(
            f"| {f.primaries} | {f.replicas} | {f.wait} | {f.processes} | {f.noop_rps:,.0f} "
            f"| {f.reserve_rps:,.0f} "
            f"| {f.ratio:.2f}x | {f.server_cores:.2f} | {f.redis_cores:.2f} "
            f"| {f.per_busy_core:,.0f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=5, help="seconds per measured run (5)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per endpoint (2)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    p.add_argument("--buyers", type=int, default=5000, help="distinct pre-signed buyers (5000)")
    p.add_argument("--deals", type=int, default=12, help="live deals reserved round-robin (12)")
    p.add_argument("--primaries", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--replicas", type=int, default=0, help="replicas per primary (0)")
    p.add_argument("--wait", type=int, nargs="+", default=[0], help="WAIT replicas (0)")
    p.add_argument("--rounds", type=int, default=1, help="times the whole set runs (1)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed")
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="livecart-scaling-") as tmp:
        for primaries in args.primaries:
            directory = Path(tmp) / f"cluster-{primaries}"
            replicas = args.replicas
            with ValkeyCluster(directory, primaries=primaries, replicas=replicas) as cluster:
                say(f"== {primaries} primaries, {replicas} replicas each: {cluster.url}")
                for round_ in range(args.rounds):
                    for processes in args.processes:
                        for wait in args.wait:
                            say(f"-- round {round_ + 1}: {processes} processes, WAIT {wait}")
                            figures.append(measure(cluster, processes, wait, args, Path(tmp)))
    if args.json:
        print(json.dumps([{**vars(f), "ratio": f.ratio} for f in figures], indent=2))
    else:
        print(table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
