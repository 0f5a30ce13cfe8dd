"""The pipelines on Ray Data, written once against Ray's API so that they also run on any
package with the same API: ``pipelines_volley.py`` runs them on Volley's Python package
(``import volley as ray``)."""

from __future__ import annotations

from types import ModuleType

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


def ray_api_system(ray: ModuleType) -> System:
    """The pipelines on ``ray``: Ray itself, or a package with Ray's core and Data API."""
    data = ray.data
    keep = f"value > {KEEP_ABOVE}"

    def start() -> None:
        ray.init()
        data.DataContext.get_current().enable_progress_bars = False

    def count(p: Paths) -> Checksum:
        return Checksum(data.read_parquet(p.big).count())

    def full_scan(p: Paths) -> Checksum:
        ds = data.read_parquet(p.big)
        return scan_checksum(ds.iter_batches(batch_format="pyarrow", batch_size=None))

    def small_files_scan(p: Paths) -> Checksum:
        ds = data.read_parquet(p.small)
        return scan_checksum(ds.iter_batches(batch_format="pyarrow", batch_size=None))

    def map_write(p: Paths) -> None:
        ds = data.read_parquet(p.big).map_batches(double_value_arrow, batch_format="pyarrow")
        ds.filter(expr=keep).write_parquet(p.out)

    def map_pandas_write(p: Paths) -> None:
        ds = data.read_parquet(p.big).map_batches(double_value_pandas, batch_format="pandas")
        ds.filter(expr=keep).write_parquet(p.out)

    def groupby(p: Paths) -> Checksum:
        groups = data.read_parquet(p.big).groupby("key").sum("value").take_all()
        return Checksum(len(groups), sum(v for g in groups for k, v in g.items() if k != "key"))

    def sort_write(p: Paths) -> None:
        data.read_parquet(p.big).sort("value").write_parquet(p.out)

    return System(
        version=ray.__version__,
        pipelines={
            "count": count,
            "full_scan": full_scan,
            "small_files_scan": small_files_scan,
            "map_write": map_write,
            "map_pandas_write": map_pandas_write,
            "groupby": groupby,
            "sort_write": sort_write,
        },
        start=start,
        stop=ray.shutdown,
    )


def load() -> System:
    """Ray Data's pipelines."""
    import ray
    import ray.data  # noqa: F401  (a subpackage: imported for ray.data)

    return ray_api_system(ray)


if __name__ == "__main__":
    child_main(load)
