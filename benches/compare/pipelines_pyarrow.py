"""The pipelines on plain pyarrow (``pyarrow.dataset``, ``pyarrow.parquet``,
``pyarrow.compute``) as a user writes them on ``CPUS`` cores: pyarrow's thread pools set to
``CPUS``, and the Python UDF pipelines run by a pool of ``CPUS`` threads over the files (each
file's batches in turn; pyarrow's kernels release the GIL)."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

from pipelines import (
    CPUS,
    KEEP_ABOVE,
    SCAN_BATCH_ROWS,
    Paths,
    Stats,
    System,
    child_main,
    combine_stats,
    count_stats,
    groupby_stats,
    keep_and_double_arrow,
    keep_and_double_pandas,
    table_stats,
)


def load() -> System:
    """Plain pyarrow's pipelines."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    def start() -> None:
        pa.set_cpu_count(CPUS)
        pa.set_io_thread_count(CPUS)

    def files(path: str) -> list[str]:
        return sorted(ds.dataset(path, format="parquet").files)

    def over_files(path: str, fn):  # noqa: ANN001, ANN202
        with ThreadPoolExecutor(CPUS) as pool:
            return list(pool.map(fn, files(path)))

    def count(p: Paths) -> Stats:
        return count_stats(ds.dataset(p.big, format="parquet").count_rows())

    def small_count(p: Paths) -> Stats:
        return count_stats(ds.dataset(p.small, format="parquet").count_rows())

    def scan(path: str) -> Stats:
        def one(f: str) -> Stats:
            return table_stats(pq.ParquetFile(f).iter_batches(batch_size=SCAN_BATCH_ROWS))

        return combine_stats(over_files(path, one))

    def map_write(p: Paths, udf) -> None:  # noqa: ANN001
        def one(f: str) -> None:
            outputs = (udf(b) for b in pq.ParquetFile(f).iter_batches())
            first = next(outputs)
            # The UDF's output schema (its doubled column is nullable) is the file's.
            with pq.ParquetWriter(f"{p.out}/{f.rsplit('/', 1)[-1]}", first.schema) as w:
                # One batch at a time: the file's outputs are never all held at once.
                for b in itertools.chain([first], outputs):
                    w.write_batch(b)

        over_files(p.big, one)

    def pandas_udf(b: pa.RecordBatch) -> pa.RecordBatch:
        out = keep_and_double_pandas(b.to_pandas())
        return pa.RecordBatch.from_pandas(out, schema=b.schema, preserve_index=False)

    def map_native(p: Paths) -> None:
        value = pc.field("value")
        source = ds.dataset(p.big, format="parquet")
        columns = {n: pc.field(n) for n in source.schema.names} | {"value": value * 2.0}
        scanner = source.scanner(columns=columns, filter=value > KEEP_ABOVE)
        ds.write_dataset(scanner, p.out, format="parquet")

    def groupby(p: Paths) -> Stats:
        table = ds.dataset(p.big, format="parquet").to_table(columns=["key", "value"])
        return groupby_stats(table.group_by("key").aggregate([("value", "sum")]))

    def sort_write(p: Paths) -> None:
        table = ds.dataset(p.big, format="parquet").to_table().sort_by("value")
        # The writer runs threaded: keep the rows in the sorted order.
        ds.write_dataset(table, p.out, format="parquet", preserve_order=True)

    return System(
        version=pa.__version__,
        pipelines={
            "count": count,
            "full_scan": lambda p: scan(p.big),
            "small_files_scan": lambda p: scan(p.small),
            "map_write": lambda p: map_write(p, keep_and_double_arrow),
            "map_pandas_write": lambda p: map_write(p, pandas_udf),
            "map_native": map_native,
            "groupby": groupby,
            "sort_write": sort_write,
            "small_count": small_count,
        },
        start=start,
    )


if __name__ == "__main__":
    child_main(load)
