"""What the access log costs: server CPU per request and requests/s for ``POST /api/noop`` with
the access log on (the default) against the same server with ``LIVECART_ACCESS_LOG=0``,
measured in the same run. Two ``livecart serve`` processes share one embedded Valkey and one
pinned core; wrk (on the other core) drives them in alternating rounds, so drift on the
machine falls on both.

Run: ``python loadtests/bench_access_log.py [--rounds 6] [--duration 4] [--json]``.
Everything listens on 127.0.0.1 and stops by itself; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_reserve import SERVER_CPU, WRK_CPU, Pinning, process_cpu_s, say, serve

from web.embedded import EmbeddedValkey, free_port
from web.migrate import upgrade

NOOP_SCRIPT = (
    'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n'
)
COUNTED = re.compile(r"(\d+) requests in")


def round_of(
    port: int, pid: int, script: Path, duration: int, pinning: Pinning
) -> tuple[float, float]:
    """(µs of server CPU per request, requests/s) for one wrk run against one server."""
    before = process_cpu_s(pid)
    done = subprocess.run(
        [
            *pinning.prefix(WRK_CPU),
            "wrk",
            "-t1",
            "-c64",
            f"-d{duration}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/api/noop",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
    )
    spent = process_cpu_s(pid) - before
    found = COUNTED.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    requests = int(found.group(1))
    return spent / requests * 1e6, requests / duration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        say("needs wrk (apt-get install wrk)")
        return 2
    pinning = Pinning(available=shutil.which("taskset") is not None)
    work = Path(tempfile.mkdtemp(prefix="bench-access-"))
    script = work / "noop.lua"
    script.write_text(NOOP_SCRIPT)
    samples: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    with contextlib.ExitStack() as stack, pinning.inherited(WRK_CPU):
        valkey = stack.enter_context(EmbeddedValkey(work / "valkey", persistent=False))
        database = f"sqlite:///{work / 'livecart.db'}"
        upgrade(database)
        servers: dict[str, tuple[int, int]] = {}
        for name, log_on in (("on", "1"), ("off", "0")):
            port = free_port()
            env = {
                **os.environ,
                "REDIS_URL": valkey.url,
                "DATABASE_URL": database,
                "LIVECART_SECRET_KEY": "bench-" + "x" * 26,
                "LIVECART_BENCH_ROUTES": "1",
                "LIVECART_REDIS_PREFIX": f"bench-access-{name}",
                "LIVECART_DATA_DIR": str(work / name),
                "LIVECART_ACCESS_LOG": log_on,
            }
            (work / name).mkdir()
            pid = stack.enter_context(serve(env, port, work / name / "server.log", pinning))
            servers[name] = (port, pid)
        say(f"server on CPU {SERVER_CPU}, wrk on CPU {WRK_CPU}; {args.rounds} rounds")
        for number in range(args.rounds):
            for name, (port, pid) in servers.items():
                cpu_us, rps = round_of(port, pid, script, args.duration, pinning)
                samples[name].append((cpu_us, rps))
                say(f"  round {number} log {name:<3} {rps:8.0f} req/s  {cpu_us:6.1f} µs CPU/req")
    figures = {
        name: {
            "cpu_us_per_request": statistics.median(c for c, _ in runs),
            "requests_per_s": statistics.median(r for _, r in runs),
        }
        for name, runs in samples.items()
    }
    on, off = figures["on"], figures["off"]
    figures["added_cpu_us"] = on["cpu_us_per_request"] - off["cpu_us_per_request"]
    figures["cpu_ratio_on_off"] = on["cpu_us_per_request"] / off["cpu_us_per_request"]
    figures["rps_ratio_on_off"] = on["requests_per_s"] / off["requests_per_s"]
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"access log on vs off (medians of {args.rounds} rounds): "
            f"CPU per no-op request {on['cpu_us_per_request']:.1f} vs "
            f"{off['cpu_us_per_request']:.1f} µs ({figures['cpu_ratio_on_off']:.2f}x, "
            f"+{figures['added_cpu_us']:.1f} µs); requests/s {on['requests_per_s']:.0f} vs "
            f"{off['requests_per_s']:.0f} ({figures['rps_ratio_on_off']:.2f}x)"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
