"""Volley's Python API on the benchmark dataset (issue 4): read_parquet -> map_batches(UDF)
-> filter -> write_parquet with a pyarrow UDF and with a pandas UDF, each run in a fresh
process (one warm-up, then --runs); wall time and the peak PSS of the whole process tree
(driver + workers), sampled every 50 ms.

    .venv/bin/python benches/python_pipeline.py [--data /tmp/volley-bench-data] [--runs 3]

The data comes from ``data_bench generate`` (benches/run_data.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

CHILD = r"""
import shutil, sys, time
import pyarrow.compute as pc
import volley as ray

fmt, src, out = sys.argv[1], sys.argv[2], sys.argv[3]
ray.init()
ray.data.DataContext.get_current().enable_progress_bars = False

def arrow_udf(t):
    return t.set_column(t.schema.get_field_index("value"), "value", pc.multiply(t["value"], 2.0))

def pandas_udf(df):
    df["value"] = df["value"] * 2
    return df

udf = arrow_udf if fmt == "pyarrow" else pandas_udf
for i in range(2):  # warm-up, then the measured run
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    ds = ray.data.read_parquet(src).map_batches(udf, batch_format=fmt).filter(expr="value > 0.5")
    ds.write_parquet(out)
    wall = time.perf_counter() - t
print(wall, flush=True)
ray.shutdown()
"""


def tree_pss_kib(root: int) -> int:
    kids: dict = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(d))
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def one(fmt: str, data: str) -> tuple:
    out = f"{data}/out-python-{fmt}"
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, fmt, f"{data}/big", out], stdout=subprocess.PIPE, text=True
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_pss_kib(p.pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    stdout, _ = p.communicate(timeout=1200)
    done.set()
    t.join()
    if p.returncode != 0:
        raise SystemExit(f"{fmt} run failed")
    return float(stdout.strip().splitlines()[-1]), peak / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/volley-bench-data")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for fmt in ("pyarrow", "pandas"):
        runs = [one(fmt, args.data) for _ in range(args.runs)]
        walls = [w for w, _ in runs]
        print(
            json.dumps(
                {
                    "pipeline": f"map_batches({fmt} UDF) -> write_parquet",
                    "median_s": round(statistics.median(walls), 3),
                    "min_s": round(min(walls), 3),
                    "max_s": round(max(walls), 3),
                    "peak_tree_pss_mib": round(max(m for _, m in runs)),
                }
            )
        )


if __name__ == "__main__":
    main()
