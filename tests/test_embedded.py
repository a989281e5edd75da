"""The embedded Valkey never outlives livecart and never runs twice on one append-only file: a
server killed with SIGKILL takes its Valkey with it, a Valkey left running anyway is stopped
before a new one starts, and a second livecart on the same data directory is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import harness
from tests.harness import free_port
from tests.test_cli import UNCONFIGURED
from web.embedded import valkey_binary

# No storage mark: livecart runs here unconfigured (its own Valkey and SQLite file) whatever
# REDIS_URL and DATABASE_URL say, so CI's storage step would only repeat it.


def serve(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """``livecart serve`` with nothing configured, in ``workdir``, once it serves."""
    return harness.serve(
        [sys.executable, "-m", "web.cli", "serve", "--port", str(port)],
        port=port,
        env=UNCONFIGURED,
        log=workdir / f"serve-{port}.log",
        cwd=workdir,
    ).process


def valkeys_on(data_dir: Path) -> list[int]:
    """Pids of valkey-server processes working in this data directory (Valkey changes into
    its --dir and rewrites its command line to ".../valkey-server host:port")."""
    found = []
    wanted = data_dir.resolve()
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and b"valkey-server" in (entry / "cmdline").read_bytes().split(b" ")[0]
                and (entry / "cwd").resolve() == wanted
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_until(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        time.sleep(0.05)


def test_a_killed_server_takes_its_valkey_with_it(tmp_path: Path) -> None:
    data = tmp_path / ".livecart" / "valkey"
    port = free_port()
    first = serve(tmp_path, port)
    try:
        (valkey,) = valkeys_on(data)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    wait_until(lambda: not valkeys_on(data), 10, "the orphaned Valkey to stop")

    port = free_port()
    second = serve(tmp_path, port)
    try:
        assert len(valkeys_on(data)) == 1 and valkeys_on(data) != [valkey]
    finally:
        second.send_signal(signal.SIGINT)
        assert second.wait(timeout=20) == 0
    assert valkeys_on(data) == []


def test_a_valkey_left_running_is_stopped_before_a_new_one_starts(tmp_path: Path) -> None:
    """As one started by a livecart from before PR_SET_PDEATHSIG, or on another OS."""
    data = tmp_path / ".livecart" / "valkey"
    data.mkdir(parents=True)
    stale = subprocess.Popen(
        [
            valkey_binary(),
            "--port",
            str(free_port()),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data.resolve()),
            "--appendonly",
            "yes",
            "--pidfile",
            str((data / "valkey.pid").resolve()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: (data / "valkey.pid").exists(), 10, "the stale Valkey's pid file")
        port = free_port()
        server = serve(tmp_path, port)
        try:
            assert stale.wait(timeout=10) == 0  # stopped with SIGTERM: it flushed and exited
            assert [pid for pid in valkeys_on(data) if pid != stale.pid] == valkeys_on(data)
            assert len(valkeys_on(data)) == 1
            log = (tmp_path / f"serve-{port}.log").read_text()
            assert f"stopped a Valkey (pid {stale.pid}) left running" in log
        finally:
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=20) == 0
    finally:
        if stale.poll() is None:
            stale.kill()
            stale.wait()


def test_a_second_livecart_on_one_data_dir_is_refused(tmp_path: Path) -> None:
    port = free_port()
    first = serve(tmp_path, port)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "web.cli", "serve", "--port", str(free_port())],
            env=UNCONFIGURED,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "another livecart is running on" in second.stderr
        assert len(valkeys_on(tmp_path / ".livecart" / "valkey")) == 1
    finally:
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=20) == 0
    assert os.path.exists(tmp_path / ".livecart" / "valkey" / "appendonlydir")
