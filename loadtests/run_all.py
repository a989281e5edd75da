"""Every benchmark and the two storm scenarios, one after the other (about ten minutes; each
step has its own time limit, and the command exits 1 if any step failed or ran out of time):

    python loadtests/run_all.py            # needs wrk (apt-get install wrk) for bench_reserve

Runs, each bounded by its own time limit: bench_reserve.py (reserve vs a no-op endpoint,
pipeline vs raw inserts, ~1 min), bench_fanout.py (room fan-out vs websockets.broadcast(),
~2 min), bench_soldout.py (a sell-out reaching 2,000 viewers, ~1 min), viewer_memory.py
(memory and CPU of 1,000 idle viewers, ~2 min), bench_video.py (encode-once vs aiortc's
MediaRelay, then glass-to-glass latency at 10 and 100 viewers, ~5 min), scenarios.py storm
(2,000 viewers, a 200-unit deal) and scenarios.py reconnect (2,000 viewers drop and come
back), ~1 min each. Each script's own report is printed as it finishes and kept, with a summary
of times and exit codes, in ``--out`` (default ``loadtests/reports/all-<time>/``). The figures
belong in docs/benchmarks.md with the commit and date they were measured at. Run it on an
otherwise idle machine: the benchmarks warn when other processes took CPU during a run.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (name, command, time limit in seconds)
RUNS: list[tuple[str, list[str], int]] = [
    ("reserve", ["bench_reserve.py"], 150),
    ("fanout", ["bench_fanout.py"], 240),
    ("soldout", ["bench_soldout.py"], 240),
    ("idle", ["viewer_memory.py", "--no-trace", "--viewers", "1000", "--idle-s", "30"], 240),
    ("video", ["bench_video.py"], 420),
    ("storm", ["scenarios.py", "storm"], 240),
    ("reconnect", ["scenarios.py", "reconnect", "--viewers", "2000"], 240),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", nargs="+", choices=[name for name, _, _ in RUNS])
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    out = args.out or HERE / "reports" / f"all-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    summary = [f"commit {commit or '?'}, {time.strftime('%Y-%m-%d %H:%M %Z')}"]
    started = time.monotonic()
    failed = False
    for name, command, limit in RUNS:
        if args.only and name not in args.only:
            continue
        print(f"== {name}: {' '.join(command)}", flush=True)
        began = time.monotonic()
        code, stdout, stderr = run(command, limit)
        failed |= code != 0
        (out / f"{name}.log").write_text(stdout + "\n--- stderr ---\n" + stderr)
        if command[0] == "scenarios.py" and "verdict" in stderr:  # its verdict is on stderr
            print(stderr[stderr.find("verdict") :].strip(), flush=True)
        else:
            print(stdout.strip() or stderr.strip()[-4000:], flush=True)
        summary.append(f"{name:10} {time.monotonic() - began:6.0f} s   exit {code}")
    summary.append(f"{'all':10} {time.monotonic() - started:6.0f} s")
    (out / "summary.txt").write_text("\n".join(summary) + "\n")
    print("\n" + "\n".join(summary) + f"\nreports: {out}", flush=True)
    sys.exit(1 if failed else 0)


def run(command: list[str], limit: int) -> tuple[int | str, str, str]:
    """One script in its own process group, so a time-out stops the servers it started too
    (SIGTERM first, so they can clean up; SIGKILL if they do not)."""
    process = subprocess.Popen(
        [sys.executable, str(HERE / command[0]), *command[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=limit)
        return process.returncode, stdout, stderr
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        return f"stopped after {limit} s", stdout, stderr


if __name__ == "__main__":
    main()
