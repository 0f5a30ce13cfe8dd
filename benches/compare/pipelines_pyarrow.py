"""The pipelines on plain pyarrow (``pyarrow.dataset``, ``pyarrow.compute``): the
single-process reference the other systems' results are checked against."""

from __future__ import annotations

from pipelines import (
    KEEP_ABOVE,
    Checksum,
    Paths,
    System,
    child_main,
    double_value_arrow,
    double_value_pandas,
    scan_checksum,
)


def load() -> System:
    """Plain pyarrow's pipelines."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    def keep(batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch.filter(pc.greater(batch.column("value"), KEEP_ABOVE))

    def count(p: Paths) -> Checksum:
        return Checksum(ds.dataset(p.big, format="parquet").count_rows())

    def full_scan(p: Paths) -> Checksum:
        return scan_checksum(ds.dataset(p.big, format="parquet").to_batches())

    def small_files_scan(p: Paths) -> Checksum:
        return scan_checksum(ds.dataset(p.small, format="parquet").to_batches())

    def map_write(p: Paths) -> None:
        source = ds.dataset(p.big, format="parquet")
        batches = (keep(double_value_arrow(b)) for b in source.to_batches())
        ds.write_dataset(batches, p.out, schema=source.schema, format="parquet")

    def map_pandas_write(p: Paths) -> None:
        source = ds.dataset(p.big, format="parquet")
        batches = (
            keep(
                pa.RecordBatch.from_pandas(
                    double_value_pandas(b.to_pandas()), schema=source.schema, preserve_index=False
                )
            )
            for b in source.to_batches()
        )
        ds.write_dataset(batches, p.out, schema=source.schema, format="parquet")

    def groupby(p: Paths) -> Checksum:
        table = ds.dataset(p.big, format="parquet").to_table(columns=["key", "value"])
        sums = table.group_by("key").aggregate([("value", "sum")])
        return Checksum(sums.num_rows, pc.sum(sums.column("value_sum")).as_py())

    def sort_write(p: Paths) -> None:
        table = ds.dataset(p.big, format="parquet").to_table().sort_by("value")
        # The writer runs threaded: keep the rows in the sorted order.
        ds.write_dataset(table, p.out, format="parquet", preserve_order=True)

    return System(
        version=pa.__version__,
        pipelines={
            "count": count,
            "full_scan": full_scan,
            "small_files_scan": small_files_scan,
            "map_write": map_write,
            "map_pandas_write": map_pandas_write,
            "groupby": groupby,
            "sort_write": sort_write,
        },
    )


if __name__ == "__main__":
    child_main(load)
