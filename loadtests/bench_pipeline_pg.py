"""The order pipeline on PostgreSQL: ``order.paid`` entries from a Redis stream persisted by one
pipeline worker, against raw batched inserts of the same rows into the same kind of database
(benchmarks.md, "(b) pipeline" has the same two on SQLite). Each runs on a fresh database of
its own on the PostgreSQL server at ``--database-url``; Redis is an embedded Valkey.

Run: ``python loadtests/bench_pipeline_pg.py [--orders 20000] [--batch 500] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.bench_reserve import CpuMeter, bench_pipeline, bench_raw, redis_process_id, say
from loadtests.scratch_db import scratch_database
from web.embedded import EmbeddedValkey
from web.migrate import upgrade


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=20_000, help="order.paid entries (20000)")
    p.add_argument("--batch", type=int, default=500, help="pipeline and raw insert batch (500)")
    p.add_argument("--rounds", type=int, default=3, help="pipeline + raw pairs (3)")
    p.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL server to create the runs' databases on",
    )
    args = p.parse_args(argv)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="livecart-pgbench-") as tmp:
        valkey = EmbeddedValkey(Path(tmp) / "valkey", persistent=False)
        redis_url = valkey.start()
        try:
            meter = CpuMeter([redis_process_id(redis_url)])
            for n in range(args.rounds):
                with (
                    scratch_database(args.database_url, "livecart_bench_p") as piped,
                    scratch_database(args.database_url, "livecart_bench_raw") as raw_url,
                ):
                    upgrade(piped)
                    upgrade(raw_url)
                    prefix = f"lcpg{n}"
                    pipeline = asyncio.run(
                        bench_pipeline(redis_url, prefix, piped, args.orders, args.batch, meter)
                    )
                    raw = asyncio.run(bench_raw(raw_url, args.orders, args.batch, meter))
                say(f"round {n + 1}: pipeline {pipeline.per_s:,.0f} orders/s, raw {raw.per_s:,.0f}")
                rounds.append(
                    {
                        "pipeline_orders_per_s": round(pipeline.per_s),
                        "raw_rows_per_s": round(raw.per_s),
                        "pipeline_over_raw": round(pipeline.per_s / raw.per_s, 2),
                    }
                )
        finally:
            valkey.stop()
    print(json.dumps({"orders": args.orders, "batch": args.batch, "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
