"""The comparison's pipelines (``benches/compare/pipelines.py``) on Volley, checked against
pyarrow computed directly on the whole table: the statistics UDF over many small batches,
and the map UDF's filter and doubling. These are results, not times: the cross-system check
of ``make bench-compare`` relies on them."""

from __future__ import annotations

import math
import os
import sys

import cloudpickle
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import volley

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benches", "compare"))
import pipelines  # noqa: E402

# Workers get the UDFs by value: benches/compare is not on their path.
cloudpickle.register_pickle_by_value(pipelines)

#: Rows per file: uneven, so that batches of 1,024 rows cut across files and file ends.
FILE_ROWS = [1500, 1024, 7, 2600, 999]


def table(start: int, rows: int) -> pa.Table:
    """Rows with an int, a float, a short and a long string column; the text has multi-byte
    characters, so its length in characters differs from its length in bytes."""
    ids = list(range(start, start + rows))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "value": pa.array([((i * 7919) % 1000) / 1000.0 for i in ids], pa.float64()),
            "key": pa.array([f"key_{i % 37:02d}" for i in ids]),
            "text": pa.array([("é漢x" * (i % 5)) + str(i) for i in ids]),
        }
    )


@pytest.fixture
def dataset(tmp_path) -> tuple[str, pa.Table]:
    """A directory of parquet files, and their rows as one table."""
    parts, start = [], 0
    for n, rows in enumerate(FILE_ROWS):
        t = table(start, rows)
        pq.write_table(t, tmp_path / f"part-{n}.parquet")
        parts.append(t)
        start += rows
    return str(tmp_path), pa.concat_tables(parts)


def direct_stats(t: pa.Table) -> dict:
    """The statistics of ``t``, computed by pyarrow on the whole table at once."""
    out: dict = {"rows": t.num_rows}
    for name in t.column_names:
        c = t.column(name)
        if pa.types.is_string(c.type):
            out[f"{name}_len"] = pc.sum(pc.utf8_length(c)).as_py()
        else:
            out[f"{name}_sum"] = pc.sum(c).as_py()
        mm = pc.min_max(c)
        out[f"{name}_min"], out[f"{name}_max"] = mm["min"].as_py(), mm["max"].as_py()
    return out


def assert_stats_equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for k, v in want.items():
        if isinstance(v, float):
            assert math.isclose(got[k], v, rel_tol=1e-12), (k, got[k], v)
        else:
            assert got[k] == v, (k, got[k], v)


def test_the_stats_pipeline_gives_what_pyarrow_computes_directly(rt, dataset) -> None:
    path, whole = dataset
    ds = volley.data.read_parquet(path).map_batches(
        pipelines.batch_stats, batch_format="pyarrow", batch_size=pipelines.SCAN_BATCH_ROWS
    )
    rows = ds.take_all()
    # Many small batches: one statistics row per UDF call, none over the batch size.
    assert len(rows) >= math.ceil(whole.num_rows / pipelines.SCAN_BATCH_ROWS)
    assert all(0 < r["rows"] <= pipelines.SCAN_BATCH_ROWS for r in rows)
    got = pipelines.combine_stats(rows)
    want = direct_stats(whole)
    assert_stats_equal(got, want)
    # Characters, not bytes: the multi-byte text is counted as pyarrow counts it.
    assert got["text_len"] < pc.sum(pc.binary_length(whole.column("text"))).as_py()


def test_the_map_udf_writes_the_rows_pyarrow_keeps_and_doubles(rt, dataset, tmp_path) -> None:
    path, whole = dataset
    out = tmp_path / "out"
    volley.data.read_parquet(path).map_batches(
        pipelines.keep_and_double_arrow, batch_format="pyarrow"
    ).write_parquet(str(out))
    written = pq.read_table(out)
    kept = whole.filter(pc.greater(whole.column("value"), pipelines.KEEP_ABOVE))
    want = kept.set_column(1, "value", pc.multiply(kept.column("value"), 2.0))
    assert 0 < written.num_rows < whole.num_rows
    assert_stats_equal(pipelines.table_stats([written]), direct_stats(want))
    assert sorted(written.column("id").to_pylist()) == kept.column("id").to_pylist()


def test_the_cross_system_check_catches_a_mangled_column(dataset) -> None:
    _, whole = dataset
    good = pipelines.table_stats([whole])
    mangled = whole.set_column(3, "text", pc.utf8_slice_codeunits(whole.column("text"), 0, 10))
    assert pipelines.agree(good, pipelines.table_stats([whole]), 1e-9) == []
    diffs = pipelines.agree(good, pipelines.table_stats([mangled]), 1e-9)
    assert diffs and all(d.startswith("text_") for d in diffs), diffs
