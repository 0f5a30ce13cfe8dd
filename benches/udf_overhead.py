"""The overhead of one Python UDF call in ``map_batches``: µs per call on 1-row batches.

    .venv-bench/bin/python benches/udf_overhead.py [volley|ray] [--rows N] [--runs R]

``range(N)`` in 2 blocks on 2 CPUs, mapped by an identity pyarrow UDF with ``batch_size=1``
(N calls) and with whole blocks as batches (2 calls), each consumed by ``iter_batches``; the
overhead per call is the difference of the two median times over N. It measures what a
small-batch pipeline pays per batch between the engine and the Python worker: the round trip,
the batch's framing and the result's rebuild, not the UDF's work.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time


def identity(batch):  # noqa: ANN001, ANN201
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("system", nargs="?", default="volley", choices=["volley", "ray"])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ray = importlib.import_module(args.system)
    importlib.import_module(f"{args.system}.data")
    ray.init(num_cpus=2)
    ray.data.DataContext.get_current().enable_progress_bars = False

    def timed(batch_size: int | None) -> float:
        ds = ray.data.range(args.rows, override_num_blocks=2).map_batches(
            identity, batch_format="pyarrow", batch_size=batch_size
        )
        t = time.perf_counter()
        rows = sum(b.num_rows for b in ds.iter_batches(batch_format="pyarrow", batch_size=None))
        elapsed = time.perf_counter() - t
        if rows != args.rows:
            raise SystemExit(f"got {rows} rows, expected {args.rows}")
        return elapsed

    try:
        timed(1)  # warm-up: workers started, the UDF shipped
        small = statistics.median(timed(1) for _ in range(args.runs))
        whole = statistics.median(timed(None) for _ in range(args.runs))
    finally:
        ray.shutdown()
    per_call_us = (small - whole) / args.rows * 1e6
    print(
        json.dumps(
            {
                "system": args.system,
                "calls": args.rows,
                "one_row_batches_s": small,
                "whole_blocks_s": whole,
                "per_call_us": round(per_call_us, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
