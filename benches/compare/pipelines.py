"""The benchmark pipelines: their catalogue, the checksum each run returns, the UDFs every
system applies, and the entry point of the child process that times one pipeline.

Each ``pipelines_<system>.py`` implements every pipeline of ``PIPELINES`` for one system and
ends with ``child_main(load)``. ``run.py`` starts it once per (system, pipeline) in a fresh
process:

    python pipelines_<system>.py PIPELINE DATA_DIR OUT_DIR RUNS

which starts the system, runs the pipeline once as a warm-up and then RUNS times, and prints
one JSON line: ``{"times_s": [...], "rows": n, "sum": s}`` (the checksum of the last run;
write pipelines print ``null`` for both, and ``run.py`` reads what they wrote instead).

    python pipelines_<system>.py --check

prints ``{"version": "..."}``, or exits with ``UNAVAILABLE`` when the system is not installed.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd
    import pyarrow as pa

#: Exit status of a child whose system cannot be imported.
UNAVAILABLE = 3

#: Rows are kept when their doubled ``value`` is above this.
KEEP_ABOVE = 0.5


@dataclass(frozen=True)
class Pipeline:
    """One benchmark pipeline."""

    name: str
    #: Heading in the results file.
    title: str
    #: The dataset it reads: ``"big"`` (20 x 1M rows) or ``"small"`` (2,000 x 1,000 rows).
    input: str
    #: Whether it writes parquet (then its checksum is read back from what it wrote).
    writes: bool


PIPELINES: dict[str, Pipeline] = {
    p.name: p
    for p in [
        Pipeline("count", "count", "big", writes=False),
        Pipeline("full_scan", "full scan of all columns", "big", writes=False),
        Pipeline("small_files_scan", "small-files scan (all columns)", "small", writes=False),
        Pipeline(
            "map_write",
            "map_batches with a pyarrow UDF (value*2), keep value > 0.5, write_parquet",
            "big",
            writes=True,
        ),
        Pipeline(
            "map_pandas_write",
            "map_batches with a pandas UDF (value*2), keep value > 0.5, write_parquet",
            "big",
            writes=True,
        ),
        Pipeline("groupby", "groupby(key).sum(value)", "big", writes=False),
        Pipeline("sort_write", "sort by value, write_parquet", "big", writes=True),
    ]
}


@dataclass(frozen=True)
class Checksum:
    """What a run produced: rows counted, scanned, written or grouped, and a sum over a
    numeric column (scans: ``id``, exact; groupby: the per-key sums of ``value``; written
    output: ``value``), ``None`` where the pipeline returns no data (count)."""

    rows: int
    sum: int | float | None = None


@dataclass(frozen=True)
class Paths:
    """Where a pipeline reads and writes."""

    big: str
    small: str
    #: Output directory of write pipelines; empty (and existing) when a run starts.
    out: str


#: A pipeline of one system: returns the checksum of its result (``None`` for writes).
PipelineFn = Callable[[Paths], "Checksum | None"]


@dataclass
class System:
    """One system's implementation of the pipelines."""

    version: str
    pipelines: dict[str, PipelineFn]
    #: Starts the engine (a cluster, a runtime) before the warm-up; not timed.
    start: Callable[[], None] = field(default=lambda: None)
    #: Stops what ``start`` started.
    stop: Callable[[], None] = field(default=lambda: None)


def double_value_arrow(batch: pa.Table | pa.RecordBatch) -> pa.Table | pa.RecordBatch:
    """The pyarrow UDF: ``value * 2``, the other columns unchanged."""
    import pyarrow.compute as pc

    i = batch.schema.get_field_index("value")
    return batch.set_column(i, "value", pc.multiply(batch.column(i), 2.0))


def double_value_pandas(df: pd.DataFrame) -> pd.DataFrame:
    """The pandas UDF: ``value * 2``, the other columns unchanged."""
    df["value"] = df["value"] * 2.0
    return df


def scan_checksum(batches: Iterable[pa.Table | pa.RecordBatch]) -> Checksum:
    """Rows and the exact sum of ``id`` over batches that carry every column."""
    import pyarrow.compute as pc

    rows = ids = 0
    for b in batches:
        rows += b.num_rows
        ids += pc.sum(b.column("id")).as_py() or 0
    return Checksum(rows, ids)


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
        sys.exit(f"usage: {sys.argv[0]} --check | PIPELINE DATA_DIR OUT_DIR RUNS")
    name, data, out, runs = args[0], Path(args[1]), Path(args[2]), int(args[3])
    if name not in system.pipelines:
        sys.exit(f"{sys.argv[0]}: no pipeline {name!r} (known: {', '.join(system.pipelines)})")
    pipeline = system.pipelines[name]
    paths = Paths(big=str(data / "big"), small=str(data / "small"), out=str(out))

    system.start()
    try:
        times = []
        for i in range(1 + runs):  # one warm-up, then the measured runs
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            t = time.perf_counter()
            checksum = pipeline(paths)
            elapsed = time.perf_counter() - t
            if i > 0:
                times.append(elapsed)
    finally:
        system.stop()
    print(
        json.dumps(
            {
                "times_s": times,
                "rows": checksum.rows if checksum else None,
                "sum": checksum.sum if checksum else None,
            }
        ),
        flush=True,
    )
