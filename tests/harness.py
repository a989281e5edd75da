"""Start a server process, wait until it serves, stop it: the one harness behind the tests'
``livecart serve`` fixtures and the load tests' servers (``loadtests/*.py`` put the checkout on
``sys.path`` to import it, so it needs nothing but the standard library and ``web.embedded``).

Readiness is a condition, never a fixed sleep: the port accepts connections (uvicorn binds it
once the app's startup has run) or, with ``ready_path``, that path answers 200 (``/readyz``:
Redis and the database answer too). The server's output goes to a log file; every failure
raises ``ServerFailed`` with the log's tail in its message.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "NO_ADDRESS_LIMITS",
    "ROOT",
    "Server",
    "ServerFailed",
    "free_port",
    "livecart",
    "serve",
    "stop_process",
    "stop_server",
    "wait_until_serving",
]

ROOT = Path(__file__).resolve().parent.parent  # the checkout
STARTUP_S = 30.0
STOP_S = 15.0
LOG_TAIL_LINES = 80
POLL_S = 0.05

# A test client or load generator plays thousands of buyers from 127.0.0.1: the per-address
# limits would see one client and throttle it, so they are off unless a test turns them on
# (tests/test_limits.py; loadtests/bench_reserve.py sets them out of reach instead).
NO_ADDRESS_LIMITS = {
    "LIVECART_SESSION_RATE": "0",
    "LIVECART_RESERVE_RATE": "0",
    "LIVECART_CHAT_RATE": "0",
    "LIVECART_ADDRESS_HOLD_CAP": "0",
    "LIVECART_SIGN_IN_RATE": "0",
    "LIVECART_ACCOUNT_SIGN_IN_RATE": "0",
}


# Test servers get ports below the kernel's ephemeral range (32768-60999 on Linux), so no
# outgoing connection and no `bind(("", 0))` elsewhere ever holds one, each pytest-xdist worker
# from a slice of its own, so two workers never hand out one number. Readiness is "the port
# answers": a port handed to two servers let a test talk to another test's server (a crash lane
# was answered 401 by a server signing with another secret).
PORTS_FROM, PORTS_TO = 10_000, 32_000


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker[2:]) if worker.startswith("gw") else count  # the controller: its own
    width = (PORTS_TO - PORTS_FROM) // (count + 1)
    return range(PORTS_FROM + index * width, PORTS_FROM + (index + 1) * width)


_NEXT = itertools.count(random.randrange(1 << 16))  # a fresh start for each run of the process


def free_port() -> int:
    """A port of this process's slice that nobody listens on, not handed out before by this
    process (unless the whole slice went round)."""
    ports = _slice()
    for _ in range(len(ports)):
        port = ports[next(_NEXT) % len(ports)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {ports}")


class ServerFailed(RuntimeError):
    """A server exited early or did not come up in time; the message ends with its log."""

    def __init__(self, what: str, log: Path) -> None:
        super().__init__(f"{what}\n--- last lines of {log} ---\n{log_tail(log)}")


@dataclass
class Server:
    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        stop_server(self)


def livecart(*args: str) -> list[str]:
    """The command line of ``livecart <args>`` run by this interpreter."""
    return [sys.executable, "-m", "web.cli", *args]


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def serve(
    command: list[str],
    *,
    port: int,
    env: dict[str, str],
    log: Path,
    cwd: Path | None = None,
    ready_path: str | None = None,
    within_s: float = STARTUP_S,
) -> Server:
    """Start ``command`` (which listens on 127.0.0.1:``port``) with exactly ``env``, its output
    appended to ``log``, and return once it serves; stopped again if it does not. In a
    ``with`` block it is stopped however the block ends."""
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", port, process, log)
    try:
        wait_until_serving(port, lambda: process.poll() is not None, log, ready_path, within_s)
    except BaseException:
        stop_server(server)
        raise
    return server


def wait_until_serving(
    port: int,
    exited: Callable[[], bool],
    log: Path,
    ready_path: str | None = None,
    within_s: float = STARTUP_S,
) -> None:
    """Poll until the port accepts connections (or ``ready_path`` answers 200); raise
    ``ServerFailed`` as soon as ``exited()`` says the process is gone, or after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not serving_now(port, ready_path):
        if exited():
            raise ServerFailed(f"the server for port {port} exited before it served", log)
        if time.monotonic() > deadline:
            what = ready_path or "connections"
            raise ServerFailed(f"port {port} did not answer {what} within {within_s} s", log)
        time.sleep(POLL_S)


def serving_now(port: int, ready_path: str | None) -> bool:
    if ready_path is None:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0
    url = f"http://127.0.0.1:{port}{ready_path}"
    # Refused, reset, or an HTTP error status (503: not ready yet) all mean "not yet".
    with suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
        return bool(answer.status == 200)
    return False


def stop_server(server: Server, within_s: float = STOP_S) -> None:
    stop_process(server.process, within_s)


def stop_process(process: subprocess.Popen[bytes], within_s: float = STOP_S) -> None:
    """SIGTERM, so it shuts down cleanly; SIGKILL if it has not exited within ``within_s``."""
    process.terminate()
    try:
        process.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
