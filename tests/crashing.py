"""The crash tests' hook into a real livecart process (decision 0024): crash points that kill it
with SIGKILL at one point of checkout/faults.py ``POINTS``, as a power cut or the OOM killer
would: nothing is flushed, no ``finally`` runs. Production never installs them; nothing in
livecart imports this module.

With a trigger file the process dies there only while the file exists, and removes it first: a
restarted process with the same crash points serves the retry, and the test arms the next
crash by writing the file again.

tests/forked.py installs them in forked ``livecart serve`` children. A subprocess runs a
livecart command with them as::

    python -m tests.crashing POINT [--trigger FILE] worker
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from checkout.faults import AUCTION_POINTS, MONEY_POINTS, POINTS, CrashPoints


class SigkillAt(CrashPoints):
    def __init__(self, point: str, trigger: Path | None = None) -> None:
        if point not in (*POINTS, *MONEY_POINTS, *AUCTION_POINTS):
            raise ValueError(f"{point!r} is not a crash point: {', '.join(POINTS)}")
        self.point = point
        self.trigger = trigger

    def reach(self, point: str) -> None:
        if point != self.point:
            return
        if self.trigger is not None:
            # The trigger holds the point and, optionally, how many reaches to let pass first
            # ("checkout.after_charge 1": die paying a cart's second hold, not its first).
            try:
                _, _, passes = self.trigger.read_text().partition(" ")
                if passes.strip() and int(passes) > 0:
                    self.trigger.write_text(f"{point} {int(passes) - 1}")
                    return
                self.trigger.unlink()
            except FileNotFoundError:
                return  # not armed now
        print(f"LIVECART-FAULT crash at {point}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    from web.cli import main as livecart

    p = argparse.ArgumentParser(description="run a livecart command that dies at a crash point")
    p.add_argument("point", choices=(*POINTS, *MONEY_POINTS))
    p.add_argument("--trigger", type=Path, help="die only while this file exists")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the livecart command and options")
    args = p.parse_args(argv)
    livecart(args.command, crash=SigkillAt(args.point, args.trigger))


if __name__ == "__main__":
    main()
