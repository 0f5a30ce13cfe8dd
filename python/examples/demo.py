"""`make demo`: a read_parquet -> map_batches -> write_parquet pipeline on the embedded
local cluster, on data this script generates, checked against pyarrow computed directly.

    python python/examples/demo.py [--dir DIR] [--rows-per-file N] [--files N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import volley as ray


def generate(path: str, files: int, rows: int) -> None:
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(42)
    keys = np.array([f"key-{i:03d}" for i in range(1000)])
    for f in range(files):
        ids = np.arange(f * rows, (f + 1) * rows, dtype=np.int64)
        key = keys[rng.integers(0, 1000, rows)]
        t = pa.table({"id": ids, "value": rng.random(rows), "key": key})
        pq.write_table(t, f"{path}/part-{f:03d}.parquet")


def double_value(batch: pa.Table) -> pa.Table:
    """The user function: value * 2 (runs in worker processes, batches zero-copy)."""
    i = batch.schema.get_field_index("value")
    return batch.set_column(i, "value", pc.multiply(batch["value"], 2.0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=".volley-demo")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--rows-per-file", type=int, default=500_000)
    args = ap.parse_args()
    src, dst = f"{args.dir}/input", f"{args.dir}/output"
    if not os.path.isdir(src) or len(os.listdir(src)) != args.files:
        shutil.rmtree(src, ignore_errors=True)
        print(f"generating {args.files} x {args.rows_per_file:,} rows into {src} ...")
        generate(src, args.files, args.rows_per_file)
    shutil.rmtree(dst, ignore_errors=True)

    t0 = time.perf_counter()
    ray.init()
    ds = (
        ray.data.read_parquet(src)
        .map_batches(double_value, batch_format="pyarrow")
        .filter(expr="value > 0.5")
    )
    ds.write_parquet(dst)
    wall = time.perf_counter() - t0

    # The same computation with pyarrow directly.
    want = pq.read_table(src)
    want = want.set_column(1, "value", pc.multiply(want["value"], 2.0))
    want = want.filter(pc.greater(want["value"], 0.5))
    got = pq.read_table(dst)
    assert got.num_rows == want.num_rows, (got.num_rows, want.num_rows)
    assert pc.sum(got["id"]).as_py() == pc.sum(want["id"]).as_py()
    assert abs(pc.sum(got["value"]).as_py() - pc.sum(want["value"]).as_py()) < 1e-6 * want.num_rows

    print("read_parquet -> map_batches(double_value) -> filter(value > 0.5) -> write_parquet")
    print(f"  input : {args.files * args.rows_per_file:,} rows in {src}")
    print(f"  output: {got.num_rows:,} rows in {len(os.listdir(dst))} files in {dst}")
    print(f"  wall  : {wall:.2f} s (including init); result equals pyarrow's")
    print(ds.stats())
    ray.shutdown()


if __name__ == "__main__":
    main()
