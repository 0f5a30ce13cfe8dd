"""The pipelines on Daft (its default native runner, on ``CPUS`` threads). Daft's batch UDFs
map columns to columns of the same length, so a per-batch statistics UDF runs as a Daft user
writes it: over ``into_batches(n).to_arrow_iter()``; the map UDFs return the doubled
``value`` with nulls where the row goes, and Daft's filter drops those rows."""

from __future__ import annotations

from pipelines import (
    CPUS,
    KEEP_ABOVE,
    SCAN_BATCH_ROWS,
    Paths,
    Stats,
    System,
    child_main,
    count_stats,
    groupby_stats,
    table_stats,
)


def load() -> System:
    """Daft's pipelines."""
    import daft
    import pyarrow as pa
    import pyarrow.compute as pc
    from daft import DataType, Series, col

    @daft.func.batch(return_dtype=DataType.float64())
    def keep_and_double_arrow(value: Series):
        v = value.to_arrow()
        return pc.if_else(pc.greater(v, KEEP_ABOVE), pc.multiply(v, 2.0), None)

    @daft.func.batch(return_dtype=DataType.float64())
    def keep_and_double_pandas(value: Series):
        v = value.to_arrow().to_pandas()
        # pandas marks the dropped rows NaN: they become nulls (from_pandas), as Daft drops.
        return pa.array(v.where(v > KEEP_ABOVE) * 2.0, from_pandas=True)

    def count(p: Paths) -> Stats:
        return count_stats(daft.read_parquet(p.big).count_rows())

    def small_count(p: Paths) -> Stats:
        return count_stats(daft.read_parquet(p.small).count_rows())

    def scan(path: str) -> Stats:
        return table_stats(daft.read_parquet(path).into_batches(SCAN_BATCH_ROWS).to_arrow_iter())

    def map_udf(p: Paths, udf) -> None:
        df = daft.read_parquet(p.big)
        df = df.with_column("value", udf(df["value"])).where(col("value").not_null())
        df.write_parquet(p.out)

    def map_native(p: Paths) -> None:
        df = daft.read_parquet(p.big).where(col("value") > KEEP_ABOVE)
        df.with_column("value", col("value") * 2.0).write_parquet(p.out)

    def groupby(p: Paths) -> Stats:
        return groupby_stats(
            daft.read_parquet(p.big).groupby("key").agg(col("value").sum()).to_arrow()
        )

    def sort_write(p: Paths) -> None:
        daft.read_parquet(p.big).sort("value").write_parquet(p.out)

    return System(
        version=daft.__version__,
        start=lambda: daft.set_runner_native(num_threads=CPUS),
        pipelines={
            "count": count,
            "full_scan": lambda p: scan(p.big),
            "small_files_scan": lambda p: scan(p.small),
            "map_write": lambda p: map_udf(p, keep_and_double_arrow),
            "map_pandas_write": lambda p: map_udf(p, keep_and_double_pandas),
            "map_native": map_native,
            "groupby": groupby,
            "sort_write": sort_write,
            "small_count": small_count,
        },
    )


if __name__ == "__main__":
    child_main(load)
