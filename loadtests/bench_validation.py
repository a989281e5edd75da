"""What validating a reserve body costs: livecart's pydantic model (``web.schemas.ReserveIn``
through ``web.http.parse``) against the same rules as a msgspec ``Struct``, in this process.

Issue 21 asked to measure msgspec against pydantic before choosing; the figures and the choice
are in docs/benchmarks.md ("Reserve against no-op: where the time goes"). msgspec is not one of
livecart's dependencies: ``pip install msgspec`` to run this.

    .venv/bin/python loadtests/bench_validation.py [--number 200000]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

# Run as a script from a checkout: its root holds livecart's packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from web.http import parse
from web.schemas import ReserveIn

BODIES = {
    "buy-now body": b'{"qty":1}',
    "with a request id": b'{"qty":1,"request_id":"retry-7f3a.2"}',
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--number", type=int, default=200_000, help="calls timed per body")
    p.add_argument("--repeat", type=int, default=5, help="timings per body; the best is kept")
    args = p.parse_args(argv)
    try:  # not a dependency (nor typed here): imported by name
        msgspec: Any = importlib.import_module("msgspec")
    except ImportError:
        sys.exit("msgspec is not installed: pip install msgspec")
    reserve = msgspec.defstruct(
        "Reserve",
        [
            ("qty", Annotated[int, msgspec.Meta(ge=1, le=1000)], 1),
            (
                "request_id",
                Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_.:-]{1,64}$")] | None,
                None,
            ),
        ],
        forbid_unknown_fields=True,
    )
    decoder = msgspec.json.Decoder(reserve)

    number: int = args.number

    def best(call: Callable[[], object]) -> float:
        return min(timeit.repeat(call, number=number, repeat=args.repeat)) / number * 1e6

    for name, body in BODIES.items():
        assert parse(ReserveIn, body).qty == decoder.decode(body).qty == 1
        ours = best(partial(parse, ReserveIn, body))
        theirs = best(partial(decoder.decode, body))
        print(
            f"{name:<18} pydantic {ours:5.2f} us   msgspec {theirs:5.2f} us   "
            f"saved {ours - theirs:5.2f} us a request"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
