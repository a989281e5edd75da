"""``livecart serve --workers N``: N server processes on one listening socket, so a node uses
every core (decision 0039).

The parent binds the socket, then forks the workers; each runs the whole app (HTTP, websockets,
its own order pipeline consumer and sweeper) on an inherited copy of the socket, and the kernel
hands each new connection to one of them. The parent only watches: a worker that dies is
replaced, SIGTERM or SIGINT is passed to every worker (each drains as a single server does),
and the parent leaves when they all have. Workers die with the parent (PR_SET_PDEATHSIG), so a
SIGKILLed parent leaves no orphan serving on the port.

The processes share nothing in memory: each is a node of its own to the rest of livecart (its
own bus subscriptions, viewer counts and gateway), exactly as separate machines are.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable

from web.embedded import die_with_parent

log = logging.getLogger("livecart.processes")


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.set_inheritable(True)
    return sock


def run_workers(count: int, serve: Callable[[socket.socket], None], sock: socket.socket) -> int:
    """Fork ``count`` workers running ``serve(sock)`` and keep that many running until told to
    stop; returns the exit status for the parent (0 after a stop)."""
    workers: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def start(number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's frames (its cleanup is not ours)
            status = 1
            try:
                die_with_parent()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                serve(sock)
                status = 0
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else 0
            except BaseException:
                log.exception("worker %s failed", number)
            finally:
                os._exit(status)
        workers[pid] = number

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for number in range(count):
        start(number)
    while workers:
        pid, status = os.wait()
        if pid not in workers:
            continue
        number = workers.pop(pid)
        if stopping:
            continue
        log.error("worker %s (pid %s) ended (status %s); starting another", number, pid, status)
        start(number)
    sock.close()
    return 0
