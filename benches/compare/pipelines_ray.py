"""The pipelines on Ray Data, written once against Ray's API so that they also run on any
package with the same API: ``pipelines_volley.py`` runs them on Volley's Python package
(``import volley as ray``)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from pipelines import (
    CPUS,
    KEEP_ABOVE,
    SCAN_BATCH_ROWS,
    Paths,
    Stats,
    System,
    batch_stats,
    child_main,
    combine_stats,
    count_stats,
    groupby_stats,
    keep_and_double_arrow,
    keep_and_double_pandas,
)

#: ``map_native``'s doubling of ``value``: each system's own expression (Ray's ``Expr``,
#: Volley's SQL text).
DoubleValue = Callable[[Any], Any]


def ray_api_system(ray: ModuleType, double_value: DoubleValue) -> System:
    """The pipelines on ``ray``: Ray itself, or a package with Ray's core and Data API."""
    import pyarrow as pa

    data = ray.data

    def start() -> None:
        ray.init(num_cpus=CPUS)
        data.DataContext.get_current().enable_progress_bars = False

    def count(p: Paths) -> Stats:
        return count_stats(data.read_parquet(p.big).count())

    def small_count(p: Paths) -> Stats:
        return count_stats(data.read_parquet(p.small).count())

    def scan(path: str) -> Stats:
        ds = data.read_parquet(path).map_batches(
            batch_stats, batch_format="pyarrow", batch_size=SCAN_BATCH_ROWS
        )
        return combine_stats(ds.take_all())

    def map_write(p: Paths) -> None:
        ds = data.read_parquet(p.big).map_batches(keep_and_double_arrow, batch_format="pyarrow")
        ds.write_parquet(p.out)

    def map_pandas_write(p: Paths) -> None:
        ds = data.read_parquet(p.big).map_batches(keep_and_double_pandas, batch_format="pandas")
        ds.write_parquet(p.out)

    def map_native(p: Paths) -> None:
        ds = data.read_parquet(p.big).filter(expr=f"value > {KEEP_ABOVE}")
        double_value(ds).write_parquet(p.out)

    def groupby(p: Paths) -> Stats:
        groups = data.read_parquet(p.big).groupby("key").sum("value").take_all()
        return groupby_stats(pa.Table.from_pylist(groups))

    def sort_write(p: Paths) -> None:
        data.read_parquet(p.big).sort("value").write_parquet(p.out)

    return System(
        version=ray.__version__,
        pipelines={
            "count": count,
            "full_scan": lambda p: scan(p.big),
            "small_files_scan": lambda p: scan(p.small),
            "map_write": map_write,
            "map_pandas_write": map_pandas_write,
            "map_native": map_native,
            "groupby": groupby,
            "sort_write": sort_write,
            "small_count": small_count,
        },
        start=start,
        stop=ray.shutdown,
    )


def load() -> System:
    """Ray Data's pipelines."""
    import ray
    import ray.data  # noqa: F401  (a subpackage: imported for ray.data)
    from ray.data.expressions import col

    return ray_api_system(ray, lambda ds: ds.with_column("value", col("value") * 2.0))


if __name__ == "__main__":
    child_main(load)
