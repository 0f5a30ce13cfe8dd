"""The benchmark pipelines: their catalogue, the statistics every run returns, the UDFs every
system applies, and the entry point of the child process that times one pipeline.

Each ``pipelines_<system>.py`` implements every pipeline of ``PIPELINES`` for one system and
ends with ``child_main(load)``. ``run.py`` starts it once per (system, pipeline) in a fresh
process:

    python pipelines_<system>.py PIPELINE DATA_DIR OUT_DIR RUNS

which starts the system, runs the pipeline once as a warm-up and then RUNS times, and prints
one JSON line: ``{"times_s": [...], "stats": {...}}`` (the statistics of the last run's
result; write pipelines print ``null``, and ``run.py`` reads what they wrote instead), and

    python pipelines_<system>.py PIPELINE DATA_DIR OUT_DIR cold

which imports and starts the system and runs the pipeline once, printing the same line as
soon as the result is in (``run.py`` times the process from its start to that line: what a
fresh notebook kernel or a batch job sees).

    python pipelines_<system>.py --check

prints ``{"version": "..."}``, or exits with ``UNAVAILABLE`` when the system is not installed.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd
    import pyarrow as pa

#: Exit status of a child whose system cannot be imported.
UNAVAILABLE = 3

#: The map pipelines' UDF keeps the rows whose ``value`` is above this, then doubles it.
KEEP_ABOVE = 0.5

#: Rows per UDF call in the scan pipelines: many small batches (Ray Data's default until it
#: became whole blocks), the same in every system.
SCAN_BATCH_ROWS = 1024

#: Every system runs on this many CPUs (``ray.init(num_cpus=2)``, pyarrow's thread pools and
#: a pool of 2 over files), so a bigger machine compares the same way.
CPUS = 2


@dataclass(frozen=True)
class Pipeline:
    """One benchmark pipeline."""

    name: str
    #: What it does, in one line (the results file and the README say it).
    title: str
    #: The dataset it reads: ``"big"`` (20 x 1M rows) or ``"small"`` (2,000 x 1,000 rows).
    input: str
    #: Whether it writes parquet (then its statistics are read back from what it wrote).
    writes: bool


PIPELINES: dict[str, Pipeline] = {
    p.name: p
    for p in [
        Pipeline("count", "`read_parquet(big).count()`", "big", writes=False),
        Pipeline(
            "full_scan",
            f'`map_batches(stats_udf, batch_format="pyarrow", batch_size={SCAN_BATCH_ROWS})` '
            "over every column, then `take_all()`",
            "big",
            writes=False,
        ),
        Pipeline(
            "small_files_scan",
            "the same stats UDF over 2,000 small files, then `take_all()`",
            "small",
            writes=False,
        ),
        Pipeline(
            "map_write",
            "a pyarrow UDF that keeps `value > 0.5` and doubles `value`, then `write_parquet`",
            "big",
            writes=True,
        ),
        Pipeline(
            "map_pandas_write",
            "the same UDF on pandas batches, then `write_parquet`",
            "big",
            writes=True,
        ),
        Pipeline(
            "map_native",
            "the same filter and doubling as native expressions (no Python), then `write_parquet`",
            "big",
            writes=True,
        ),
        Pipeline("groupby", "`groupby(key).sum(value)` over 1,000 keys", "big", writes=False),
        Pipeline("sort_write", "sort by `value`, `write_parquet`", "big", writes=True),
        Pipeline(
            "small_count", "`read_parquet(small).count()` over 2,000 files", "small", writes=False
        ),
    ]
}

#: What a run produced: ``rows``, and per column ``<c>_sum`` / ``<c>_min`` / ``<c>_max`` of
#: numbers or ``<c>_len`` (total UTF-8 length) / ``<c>_min`` / ``<c>_max`` of strings.
Stats = dict[str, Any]


@dataclass(frozen=True)
class Paths:
    """Where a pipeline reads and writes."""

    big: str
    small: str
    #: Output directory of write pipelines; empty (and existing) when a run starts.
    out: str


#: A pipeline of one system: returns the statistics of its result (``None`` for writes).
PipelineFn = Callable[[Paths], "Stats | None"]


@dataclass
class System:
    """One system's implementation of the pipelines."""

    version: str
    pipelines: dict[str, PipelineFn]
    #: Starts the engine (a cluster, a runtime) before the warm-up; timed in a cold run only.
    start: Callable[[], None] = field(default=lambda: None)
    #: Stops what ``start`` started.
    stop: Callable[[], None] = field(default=lambda: None)


def batch_stats(batch: pa.Table | pa.RecordBatch) -> pa.Table:
    """The stats UDF: one row of statistics over every column of ``batch`` (see ``Stats``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    row: dict[str, list] = {"rows": [batch.num_rows]}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            row[f"{name}_len"] = [pc.sum(pc.utf8_length(column)).as_py() or 0]
        else:
            row[f"{name}_sum"] = [pc.sum(column).as_py()]
        low_high = pc.min_max(column)
        row[f"{name}_min"] = [low_high["min"].as_py()]
        row[f"{name}_max"] = [low_high["max"].as_py()]
    return pa.table(row)


def combine_stats(rows: Iterable[dict[str, Any]]) -> Stats:
    """The statistics of a whole result from per-batch rows of ``batch_stats`` (in any order
    and batching: sums add up, minima and maxima fold; nulls of empty batches are skipped)."""
    total: Stats = {}
    for row in rows:
        for k, v in row.items():
            if v is None:
                continue
            if k not in total:
                total[k] = v
            elif k.endswith("_min"):
                total[k] = min(total[k], v)
            elif k.endswith("_max"):
                total[k] = max(total[k], v)
            else:
                total[k] += v
    return total


def table_stats(batches: Iterable[pa.Table | pa.RecordBatch]) -> Stats:
    """The statistics of every column over ``batches`` (``rows`` 0 when they hold none)."""
    per_batch = (r for b in batches if b.num_rows for r in batch_stats(b).to_pylist())
    return combine_stats([count_stats(0), *per_batch])


def count_stats(rows: int) -> Stats:
    return {"rows": rows}


def groupby_stats(table: pa.Table) -> Stats:
    """The statistics of a groupby's output, its two columns renamed ``key`` and ``sum`` (each
    system names the sum its own way)."""
    if table.num_columns != 2:
        raise ValueError(f"groupby returned columns {table.column_names}, expected 2")
    key = table.column_names.index("key")
    return table_stats([table.select([key, 1 - key]).rename_columns(["key", "sum"])])


def keep_and_double_arrow(batch: pa.Table | pa.RecordBatch) -> pa.Table | pa.RecordBatch:
    """The pyarrow UDF: keeps the rows with ``value > KEEP_ABOVE``, then doubles ``value``."""
    import pyarrow.compute as pc

    batch = batch.filter(pc.greater(batch.column("value"), KEEP_ABOVE))
    i = batch.schema.get_field_index("value")
    return batch.set_column(i, "value", pc.multiply(batch.column(i), 2.0))


def keep_and_double_pandas(df: pd.DataFrame) -> pd.DataFrame:
    """The pandas UDF: keeps the rows with ``value > KEEP_ABOVE``, then doubles ``value``."""
    df = df[df["value"] > KEEP_ABOVE]
    return df.assign(value=df["value"] * 2.0)


def agree(a: Stats, b: Stats, rel_tol: float) -> list[str]:
    """The statistics on which ``a`` and ``b`` differ: integers and strings must be equal;
    floats to ``rel_tol`` (a sum, or a groupby's per-key sums, differs in its last bits with
    the summation order)."""
    diffs = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        same = (
            math.isclose(x, y, rel_tol=rel_tol)
            if isinstance(x, float) and isinstance(y, float | int)
            else x == y
        )
        if not same:
            diffs.append(f"{k}: {x!r} != {y!r}")
    return diffs


def child_main(load: Callable[[], System]) -> None:
    """Entry point of a ``pipelines_<system>.py`` child (see the module docstring).

    ``load`` imports the system and builds its ``System``; an ``ImportError`` there means the
    system is not installed, reported with exit status ``UNAVAILABLE``.
    """
    args = sys.argv[1:]
    try:
        system = load()
    except ImportError as e:
        print(f"not available: {e}", file=sys.stderr)
        sys.exit(UNAVAILABLE)
    if args == ["--check"]:
        print(json.dumps({"version": system.version}))
        return
    if len(args) != 4:
        sys.exit(f"usage: {sys.argv[0]} --check | PIPELINE DATA_DIR OUT_DIR RUNS|cold")
    name, data, out = args[0], Path(args[1]), Path(args[2])
    cold = args[3] == "cold"
    runs = 1 if cold else int(args[3])
    if name not in system.pipelines:
        sys.exit(f"{sys.argv[0]}: no pipeline {name!r} (known: {', '.join(system.pipelines)})")
    pipeline = system.pipelines[name]
    paths = Paths(big=str(data / "big"), small=str(data / "small"), out=str(out))

    def report(times: list[float], stats: Stats | None) -> None:
        print(json.dumps({"times_s": times, "stats": stats}), flush=True)

    system.start()
    try:
        times = []
        # Cold: the one run, reported at once. Warm: one warm-up, then the measured runs.
        for i in range(runs if cold else 1 + runs):
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            t = time.perf_counter()
            stats = pipeline(paths)
            elapsed = time.perf_counter() - t
            if cold or i > 0:
                times.append(elapsed)
            if cold:
                report(times, stats)
    finally:
        system.stop()
    if not cold:
        report(times, stats)
