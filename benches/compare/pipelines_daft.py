"""The pipelines on Daft (its default native runner). Daft's UDFs take and return columns
(``daft.Series``), so the UDFs double the ``value`` column and Daft's own filter keeps the
rows, as Volley's Rust pipeline does."""

from __future__ import annotations

from pipelines import KEEP_ABOVE, Checksum, Paths, System, child_main, scan_checksum


def load() -> System:
    """Daft's pipelines."""
    import daft
    import pyarrow.compute as pc
    from daft import DataType, Series, col

    @daft.func.batch(return_dtype=DataType.float64())
    def double_arrow(value: Series):
        return pc.multiply(value.to_arrow(), 2.0)

    @daft.func.batch(return_dtype=DataType.float64())
    def double_pandas(value: Series):
        return (value.to_arrow().to_pandas() * 2.0).to_numpy()

    def count(p: Paths) -> Checksum:
        return Checksum(daft.read_parquet(p.big).count_rows())

    def full_scan(p: Paths) -> Checksum:
        return scan_checksum(daft.read_parquet(p.big).to_arrow_iter())

    def small_files_scan(p: Paths) -> Checksum:
        return scan_checksum(daft.read_parquet(p.small).to_arrow_iter())

    def map_write(p: Paths) -> None:
        df = daft.read_parquet(p.big)
        df = df.with_column("value", double_arrow(df["value"])).where(col("value") > KEEP_ABOVE)
        df.write_parquet(p.out)

    def map_pandas_write(p: Paths) -> None:
        df = daft.read_parquet(p.big)
        df = df.with_column("value", double_pandas(df["value"])).where(col("value") > KEEP_ABOVE)
        df.write_parquet(p.out)

    def groupby(p: Paths) -> Checksum:
        sums = daft.read_parquet(p.big).groupby("key").agg(col("value").sum()).to_arrow()
        return Checksum(sums.num_rows, pc.sum(sums.column("value")).as_py())

    def sort_write(p: Paths) -> None:
        daft.read_parquet(p.big).sort("value").write_parquet(p.out)

    return System(
        version=daft.__version__,
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
