"""``livecart serve --workers 2``: two processes answer on the one port, a worker that dies is
replaced, and SIGTERM stops them all (and the embedded Valkey with them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests import harness
from tests.harness import free_port
from tests.test_cli import UNCONFIGURED
from tests.test_embedded import valkeys_on, wait_until

# No storage mark: livecart runs unconfigured (its own Valkey and SQLite), as test_embedded.


def workers_of(parent: int) -> set[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return {int(pid) for pid in children if b"web.cli" in Path(f"/proc/{pid}/cmdline").read_bytes()}


def tags_answering(port: int, requests: int) -> set[str]:
    """The process tags (the first 8 hex digits of X-Request-Id) that answered."""
    tags = set()
    for _ in range(requests):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            assert answer.status == 200
            tags.add(answer.headers["X-Request-Id"][:8])
    return tags


def serve_two_workers(tmp_path: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """``livecart serve --workers 2``, unconfigured, in ``tmp_path``: its port and process."""
    port = free_port()
    server = harness.serve(
        [sys.executable, "-m", "web.cli", "serve", "--port", str(port), "--workers", "2"],
        port=port,
        env=UNCONFIGURED,
        log=tmp_path / "serve.log",
        cwd=tmp_path,
        ready_path="/readyz",
    )
    return port, server.process


@pytest.mark.slow
def test_two_workers_share_the_port_and_one_that_dies_is_replaced(tmp_path: Path) -> None:
    port, parent = serve_two_workers(tmp_path)
    try:
        wait_until(lambda: len(workers_of(parent.pid)) == 2, 30, "two workers")
        first = workers_of(parent.pid)
        # Each request is a new connection: the kernel hands them to both workers.
        wait_until(lambda: len(tags_answering(port, 20)) == 2, 60, "both workers answering")

        os.kill(min(first), signal.SIGKILL)
        wait_until(
            lambda: len(workers_of(parent.pid)) == 2 and workers_of(parent.pid) != first,
            30,
            "a new worker in place of the killed one",
        )
        wait_until(lambda: len(tags_answering(port, 20)) == 2, 60, "both workers answering")
        assert "starting another" in (tmp_path / "serve.log").read_text()
    finally:
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0
    assert not harness.serving_now(port, None)
    wait_until(lambda: not valkeys_on(tmp_path / ".livecart" / "valkey"), 10, "Valkey stopped")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


@pytest.mark.slow
def test_workers_and_valkey_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL to ``serve --workers 2`` (no handler runs): the workers and the embedded Valkey
    are told by the kernel (PR_SET_PDEATHSIG) and end, and the port is free again."""
    port, parent = serve_two_workers(tmp_path)
    try:
        wait_until(lambda: len(workers_of(parent.pid)) == 2, 30, "two workers")
        workers = workers_of(parent.pid)
    finally:
        parent.kill()
        parent.wait(timeout=30)
    wait_until(lambda: not any(alive(pid) for pid in workers), 30, "the workers gone")
    wait_until(lambda: not valkeys_on(tmp_path / ".livecart" / "valkey"), 30, "Valkey stopped")
    assert not harness.serving_now(port, None)
