"""``livecart serve`` processes forked from a parent that has already imported livecart: the
crash tests restart a server well over a hundred times, and importing costs about 2 s of CPU
each time, while a fork costs milliseconds. Each child is a real process running the real
``livecart serve`` (``web.cli.main``) with its own environment and the crash points the test
installs (tests/crashing.py); SIGKILL ends it as it would any server."""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path

from checkout.faults import NO_CRASH, CrashPoints
from tests.harness import ServerFailed, wait_until_serving

FORKS = multiprocessing.get_context("forkserver")
# Imported once, in the fork server, before any child: what `livecart serve` would import.
FORKS.set_forkserver_preload(
    ["web.cli", "web.app", "web.runtime", "tests.forked", "tests.crashing"]
)

# A forked child's exit code comes from the fork server through a pipe, read by whoever polls
# the child first; a second thread polling it at the same moment reads end-of-file and records
# exit code 255 over the real one (a crash lane's join raced another lane's start, which polls
# every child). Every poll of a child goes through this lock.
_POLLING = threading.Lock()


def serve(env: dict[str, str], log: str, crash: CrashPoints) -> None:
    """The child: output to ``log``, then what ``python -m web.cli serve`` does, with ``crash``
    installed."""
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.environ.update(env)
    from web.cli import main

    main(["serve"], crash)


def start(
    env: dict[str, str], log: Path, port: int, within_s: float, crash: CrashPoints = NO_CRASH
) -> BaseProcess:
    process = FORKS.Process(
        target=serve, args=({**env, "LIVECART_PORT": str(port)}, str(log), crash)
    )
    with _POLLING:
        process.start()
    try:
        wait_until_serving(port, lambda: exit_code(process, 0) is not None, log, within_s=within_s)
    except ServerFailed:
        stop(process)
        raise
    return process


def exit_code(process: BaseProcess, within_s: float) -> int | None:
    """The child's exit code once it has ended (waiting up to ``within_s``), else None."""
    wait([process.sentinel], within_s)
    with _POLLING:
        return process.exitcode


def stop(process: BaseProcess) -> None:
    with _POLLING:
        process.terminate()
    if exit_code(process, 15) is None:
        with _POLLING:
            process.kill()
        exit_code(process, 60)
