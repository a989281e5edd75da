"""Crash points: places where a process dying changes what must happen next. The crash tests
name one (``LIVECART_FAULT_CRASH_AT``) and the process kills itself there with SIGKILL, as a
power cut or the OOM killer would; nothing is flushed, no ``finally`` runs. With
``LIVECART_FAULT_CRASH_FILE`` it does so only while that file exists, and removes it first: a
restarted process with the same settings serves the retry, and the test arms the next crash by
writing the file again.

Production never sets it, and reaching an unnamed point costs one string comparison.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

# Every point, in the order a checkout reaches them; tests/test_crash_points.py kills at each.
POINTS = (
    "checkout.before_charge",  # the attempt is in SQL, the provider not yet called
    "checkout.after_charge",  # the provider approved, the hold is still paying
    "checkout.after_commit",  # the hold is sold and order.paid is in the stream; no outcome
    "checkout.after_outcome",  # the attempt says committed; the buyer has no answer yet
    "checkout.after_refund",  # a lapsed hold's charge was refunded; the attempt says pending
    "pipeline.before_ack",  # the orders are committed in SQL, their entries not acknowledged
)


class CrashPoints:
    def __init__(self, armed: str = "", trigger: Path | None = None) -> None:
        if armed and armed not in POINTS:
            raise SystemExit(f"LIVECART_FAULT_CRASH_AT must be one of {', '.join(POINTS)}")
        self.armed = armed
        self.trigger = trigger

    def reach(self, point: str) -> None:
        if point != self.armed:
            return
        if self.trigger is not None:
            try:
                self.trigger.unlink()
            except FileNotFoundError:
                return  # not armed now
        print(f"LIVECART-FAULT crash at {point}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


NO_CRASH = CrashPoints()
