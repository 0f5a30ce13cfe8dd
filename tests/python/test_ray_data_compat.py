"""Behaviour tier: Ray Data as Ray users write it (issue 27) — column names exactly as the
table has them on every path, Ray's expression syntax in ``filter(expr=)``, Ray's argument
checks, and auto-init."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROWS = [
    {"A": i % 3, "B": i, "sepal.length": i / 4, "UserID": 100 + i, "key": "ab"[i % 2]}
    for i in range(12)
]


@pytest.fixture(scope="module")
def df():
    return pd.DataFrame(ROWS)


@pytest.fixture(scope="module")
def ds(rt):
    return rt.data.from_items(ROWS)


def test_groupby_and_aggregates_keep_the_exact_column_names(ds, df):
    got = {r["A"]: r["sum(B)"] for r in ds.groupby("A").sum("B").take_all()}
    assert got == df.groupby("A")["B"].sum().to_dict()
    counts = {r["UserID"]: r["count()"] for r in ds.groupby("UserID").count().take_all()}
    assert counts == {u: 1 for u in df["UserID"]}
    means = ds.groupby("A").mean(["B", "sepal.length"]).sort("A").take_all()
    expected = df.groupby("A")[["B", "sepal.length"]].mean()
    assert [r["mean(sepal.length)"] for r in means] == list(expected["sepal.length"])
    assert [r["mean(B)"] for r in means] == list(expected["B"])
    assert ds.sum("B") == df["B"].sum()
    assert ds.min("sepal.length") == df["sepal.length"].min()
    assert ds.max("UserID") == df["UserID"].max()
    assert ds.mean("B") == df["B"].mean()
    assert ds.std("B") == pytest.approx(df["B"].std())


def test_projections_renames_and_joins_keep_the_exact_column_names(rt, ds, df):
    rows = ds.select_columns(["UserID", "sepal.length"]).take_all()
    assert rows == df[["UserID", "sepal.length"]].to_dict("records")
    assert ds.drop_columns(["UserID"]).columns() == ["A", "B", "sepal.length", "key"]
    renamed = ds.rename_columns({"B": "Bee", "sepal.length": "SL"})
    assert renamed.columns() == ["A", "Bee", "SL", "UserID", "key"]
    assert [r["Bee"] for r in renamed.take_all()] == list(df["B"])
    assert [r["C"] for r in ds.with_column("C", "B * 2").take_all()] == list(df["B"] * 2)
    other = rt.data.from_items([{"A": 1, "Z": "one"}])
    joined = ds.join(other, join_type="inner", num_partitions=1, on=("A",)).take_all()
    assert sorted(r["B"] for r in joined) == sorted(df[df["A"] == 1]["B"])
    assert {r["Z"] for r in joined} == {"one"}
    assert [r["B"] for r in ds.sort("sepal.length", descending=True).take_all()] == list(
        df.sort_values("sepal.length", ascending=False)["B"]
    )


def test_parquet_reads_keep_the_exact_column_names(rt, df, tmp_path):
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "t.parquet")
    cols = rt.data.read_parquet(str(tmp_path), columns=["UserID", "sepal.length"])
    assert cols.take_all() == df[["UserID", "sepal.length"]].to_dict("records")
    pushed = rt.data.read_parquet(str(tmp_path)).filter(expr="UserID > 108")
    assert [r["B"] for r in pushed.take_all()] == list(df[df["UserID"] > 108]["B"])


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("B > 7", lambda d: d["B"] > 7),
        ("sepal.length > 2", lambda d: d["sepal.length"] > 2),  # a float column, an int
        ('key == "a"', lambda d: d["key"] == "a"),  # a string, as in Python
        ("key == 'b' and A != 0", lambda d: (d["key"] == "b") & (d["A"] != 0)),
        ("not B > 2 or UserID >= 110", lambda d: ~(d["B"] > 2) | (d["UserID"] >= 110)),
        ("A in [0, 2]", lambda d: d["A"].isin([0, 2])),
        ("A not in (0, 2)", lambda d: ~d["A"].isin([0, 2])),
        ("2 < B <= 5", lambda d: (d["B"] > 2) & (d["B"] <= 5)),
        ("B * 2 - 1 > 15", lambda d: d["B"] * 2 - 1 > 15),
        ("B > -1 and is_valid(key)", lambda d: d["B"] > -1),
        ("is_in(key, ['a'])", lambda d: d["key"] == "a"),
        # SQL, as Volley always accepted it, passes through.
        ("B > 3 AND key = 'a'", lambda d: (d["B"] > 3) & (d["key"] == "a")),
    ],
)
def test_filter_takes_rays_expression_syntax(ds, df, expr, expected):
    assert [r["B"] for r in ds.filter(expr=expr).take_all()] == list(df[expected(df)]["B"])


def test_filter_is_null_on_a_nullable_column(rt):
    ds = rt.data.from_items([{"x": 1.0}, {"x": None}, {"x": 3.0}])
    assert ds.filter(expr="is_null(x)").count() == 1
    assert [r["x"] for r in ds.filter(expr="is_valid(x)").take_all()] == [1.0, 3.0]


def test_filter_checks_its_arguments_as_ray_does(ds):
    with pytest.raises(ValueError, match="Exactly one of 'fn' or 'expr'"):
        ds.filter()
    with pytest.raises(ValueError, match="Exactly one of 'fn' or 'expr'"):
        ds.filter(fn=lambda r: True, expr="B > 1")
    with pytest.raises(ValueError, match="must be a UserDefinedFunction"):
        ds.filter(fn="B > 1")
    with pytest.raises(ValueError, match="unsupported call 'lower\\(key\\)'"):
        ds.filter(expr="lower(key) == 'a'")


def _run(script: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_first_call_that_needs_a_runtime_starts_one():
    script = """
        import volley
        import volley.data as vd
        assert not volley.is_initialized()
        print(vd.range(5).map_batches(lambda b: {"id": b["id"] * 2}).take_all())
        assert volley.is_initialized()
        """
    out = _run(script)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == str([{"id": 2 * i} for i in range(5)])
    for first in [
        "volley.get(volley.put(41)) + 1",
        "volley.get(volley.remote(lambda: 42).remote())",
        "int(volley.cluster_resources()['CPU'] > 0) * 42",
        "len(volley.get_runtime_context().get_node_id()) and 42",
    ]:
        out = _run(f"import volley\nprint({first})")
        assert (out.returncode, out.stdout.strip()) == (0, "42"), (first, out.stderr)


def test_auto_init_is_off_with_ray_enable_auto_connect_0():
    out = _run(
        """
        import volley, volley.data as vd
        from volley.exceptions import VolleyNotInitializedError
        for call in (lambda: volley.put(1), lambda: vd.range(3).take_all()):
            try:
                call()
            except VolleyNotInitializedError:
                print("refused")
        """,
        RAY_ENABLE_AUTO_CONNECT="0",
    )
    assert out.stdout.split() == ["refused", "refused"], out.stderr


# ---- ray.data.aggregate -----------------------------------------------------------------

AGG_ROWS = [
    {"g": i % 3, "x": (i - 6) if i % 5 != 4 else None, "s": "abc"[i % 4 % 3]} for i in range(40)
]


@pytest.fixture(scope="module")
def agg_df():
    return pd.DataFrame(AGG_ROWS)


def _quantile(values, q):
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k // 1), -int(-k // 1)
    return v[lo] if lo == hi else round(v[lo] * (hi - k) + v[hi] * (k - lo), 5)


def test_builtin_aggregations_match_pandas_natively_and_in_python(rt, agg_df):
    from volley.data.aggregate import (
        AbsMax,
        AggregateFn,
        Count,
        Max,
        Mean,
        Min,
        Quantile,
        Std,
        Sum,
        Unique,
    )

    # Several blocks, so each group spans blocks.
    ds = rt.data.from_items(AGG_ROWS).repartition(5)
    x = agg_df.groupby("g")["x"]
    native = [Count(), Sum("x"), Min("x"), Max("x"), Mean("x"), Std("x"), AbsMax("x")]
    native += [Quantile("x", q=0.3), Unique("s", alias_name="letters")]
    # A Count on a column counts its nulls by default (as Ray's); a custom aggregation in
    # the call sends every aggregation of it to Python.
    rows_fn = AggregateFn(
        init=lambda k: 0, accumulate_row=lambda a, r: a + 1, merge=lambda a, b: a + b, name="n"
    )
    python = [Count("x"), Count("x", ignore_nulls=True, alias_name="valid")] + native[1:]
    python.append(rows_fn)
    for aggs in (native, python):
        rows = ds.groupby("g").aggregate(*aggs).sort("g").take_all()
        assert [r["g"] for r in rows] == [0, 1, 2]
        for r in rows:
            vals = agg_df[agg_df["g"] == r["g"]]["x"].dropna()
            assert r["sum(x)"] == x.sum()[r["g"]]
            assert (r["min(x)"], r["max(x)"]) == (vals.min(), vals.max())
            assert r["mean(x)"] == pytest.approx(vals.mean())
            assert r["std(x)"] == pytest.approx(vals.std())
            assert r["abs_max(x)"] == vals.abs().max()
            assert r["quantile(x)"] == pytest.approx(_quantile(list(vals), 0.3))
            letters = set(agg_df[agg_df["g"] == r["g"]]["s"])
            assert sorted(r["letters"]) == sorted(letters)
        if aggs is native:
            assert [r["count()"] for r in rows] == list(agg_df.groupby("g").size())
        else:
            assert [r["count(x)"] for r in rows] == list(agg_df.groupby("g").size())
            assert [r["valid"] for r in rows] == list(x.count())
            assert [r["n"] for r in rows] == list(agg_df.groupby("g").size())
    # Count() beside Count("x") is one count in the engine, under both names.
    both = ds.groupby("g").aggregate(Count(), Count("x"), Sum("x")).sort("g")
    rows = both.take_all()
    assert [(r["count()"], r["count(x)"]) for r in rows] == [
        (n, n) for n in agg_df.groupby("g").size()
    ]
    assert list(rows[0]) == ["g", "count()", "count(x)", "sum(x)"]
    assert "HashAggregate" in both.stats() and "MapGroups" not in both.stats()
    n = len(AGG_ROWS)
    assert ds.aggregate(Count(), Count("x")) == {"count()": n, "count(x)": n}


def test_null_handling_and_ddof_as_ray_does(rt, agg_df):
    from volley.data.aggregate import Mean, Std, Sum

    ds = rt.data.from_items(AGG_ROWS)
    rows = ds.groupby("g").aggregate(Sum("x", ignore_nulls=False), Mean("x")).sort("g")
    has_null = agg_df.groupby("g")["x"].apply(lambda s: s.isna().any())
    for r in rows.take_all():
        assert (r["sum(x)"] is None) == bool(has_null[r["g"]])
    whole = ds.aggregate(Std("x", ddof=0), Sum("x"))
    assert whole["std(x)"] == pytest.approx(agg_df["x"].dropna().std(ddof=0))
    assert whole["sum(x)"] == agg_df["x"].sum()


def test_custom_aggregations_old_and_new_style(rt, agg_df):
    from volley.data.aggregate import AggregateFn, AggregateFnV2, Count

    ds = rt.data.from_items(AGG_ROWS).repartition(4)
    rows_per_letter = AggregateFn(
        init=lambda key: 0,
        accumulate_row=lambda acc, row: acc + 1,
        merge=lambda a, b: a + b,
        name="rows",
    )

    class Range(AggregateFnV2):
        def __init__(self, on):
            super().__init__(f"range({on})", lambda: None, on=on, ignore_nulls=True)

        def aggregate_block(self, block):
            vals = [v for v in block.column(self._target_col_name).to_pylist() if v is not None]
            return (min(vals), max(vals)) if vals else None

        def combine(self, a, b):
            return (min(a[0], b[0]), max(a[1], b[1]))

        def _finalize(self, acc):
            return acc[1] - acc[0]

    got = ds.groupby("s").aggregate(rows_per_letter, Range("x"), Count()).sort("s").take_all()
    by = agg_df.groupby("s")
    assert [r["rows"] for r in got] == list(by.size())
    assert [r["count()"] for r in got] == list(by.size())
    assert [r["range(x)"] for r in got] == list(by["x"].max() - by["x"].min())
    assert ds.aggregate(rows_per_letter) == {"rows": len(AGG_ROWS)}


def test_dataset_aggregate_and_unique(rt, agg_df):
    from volley.data.aggregate import Count, Max, Sum

    ds = rt.data.from_items(AGG_ROWS)
    assert ds.aggregate(Count(), Sum("x"), Max("x", alias_name="top")) == {
        "count()": len(AGG_ROWS),
        "sum(x)": agg_df["x"].sum(),
        "top": agg_df["x"].max(),
    }
    assert sorted(ds.unique("s")) == ["a", "b", "c"]
    with_null = ds.unique("x")
    assert None in with_null and len(with_null) == agg_df["x"].nunique() + 1
    assert None not in ds.unique("x", ignore_nulls=True)
    assert ds.filter(expr="g > 5").aggregate(Count()) is None
    with pytest.raises(TypeError, match="AggregateFn"):
        ds.aggregate("sum")
    with pytest.raises(ValueError, match="alias_name"):
        ds.aggregate(Sum("x"), Sum("x"))


# ---- modules and names Ray scripts import -----------------------------------------------


def test_ray_data_modules_and_names(rt):
    from volley.data import MaterializedDataset, Schema
    from volley.data.context import DataContext
    from volley.data.exceptions import UserCodeException

    assert DataContext.get_current() is rt.data.DataContext.get_current()
    assert issubclass(UserCodeException, Exception)
    ds = rt.data.from_items([{"id": 1, "sepal.length": 2.5}])
    schema = ds.schema()
    assert isinstance(schema, Schema)
    assert schema.names == ["id", "sepal.length"]
    assert schema.types == [pa.int64(), pa.float64()]
    assert schema == pa.schema([("id", pa.int64()), ("sepal.length", pa.float64())])
    assert repr(schema).splitlines() == [
        "Column        Type",
        "------        ----",
        "id            int64",
        "sepal.length  double",
    ]
    materialized = ds.materialize()
    assert isinstance(materialized, MaterializedDataset)
    assert materialized.take_all() == [{"id": 1, "sepal.length": 2.5}]


def test_a_udf_error_is_a_user_code_exception_caused_by_the_users_error(rt):
    from volley.data.exceptions import UserCodeException

    def bad_batch(batch):
        raise KeyError("no such thing")

    def bad_group(table):
        raise ZeroDivisionError("in a group")

    with pytest.raises(UserCodeException) as info:
        rt.data.range(10).map_batches(bad_batch).take_all()
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value.__cause__, KeyError)
    assert "KeyError" in str(info.value) and "bad_batch" in str(info.value)
    with pytest.raises(UserCodeException) as info:
        rt.data.range(10).groupby("id").map_groups(bad_group).take_all()
    assert isinstance(info.value, ZeroDivisionError)
    assert "ZeroDivisionError: in a group" in str(info.value)


def test_take_all_of_an_empty_result_of_a_user_function_is_empty(rt):
    def none_kept(batch):
        return {"id": batch["id"][batch["id"] > 50]}

    ds = rt.data.range(10).map_batches(none_kept)
    assert ds.take_all() == []
    assert ds.count() == 0
    assert len(ds.to_pandas()) == 0


# ---- more of Ray's names and arguments --------------------------------------------------


def test_from_refs_blocks_and_range_tensor(rt):
    import numpy as np

    t = pa.table({"a": [1, 2]})
    assert rt.data.from_arrow_refs([rt.put(t)]).take_all() == [{"a": 1}, {"a": 2}]
    assert rt.data.from_arrow_refs(rt.put(t)).count() == 2
    df = pd.DataFrame({"a": [3, 4]})
    assert rt.data.from_pandas_refs([rt.put(df)]).take_all() == [{"a": 3}, {"a": 4}]
    assert rt.data.from_numpy_refs([rt.put(np.arange(3))]).take_all() == [
        {"data": 0},
        {"data": 1},
        {"data": 2},
    ]
    blocks = rt.data.from_blocks([t, df]).take_all()
    assert blocks == [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}]
    tensors = rt.data.range_tensor(3, shape=(2, 2)).take_all()
    assert [r["data"].tolist() for r in tensors] == [[[i, i], [i, i]] for i in range(3)]
    ds = rt.data.from_items([{"a": i} for i in range(10)], override_num_blocks=3)
    assert len(ds.to_arrow_refs()) == 3
    arrays = [rt.get(r) for r in rt.data.range(6).to_numpy_refs()]
    assert sorted(int(v) for a in arrays for v in a["id"]) == list(range(6))
    frames = [rt.get(r) for r in rt.data.range(6).to_pandas_refs()]
    assert sorted(int(v) for f in frames for v in f["id"]) == list(range(6))


def test_zip_of_several_and_splits_at_indices(rt):
    ds = rt.data.range(10)
    zipped = ds.zip(ds.rename_columns({"id": "b"}), ds.rename_columns({"id": "c"})).take(2)
    assert zipped == [{"id": 0, "b": 0, "c": 0}, {"id": 1, "b": 1, "c": 1}]
    parts = ds.split_at_indices([2, 5, 20])
    assert [[r["id"] for r in p.take_all()] for p in parts] == [
        [0, 1],
        [2, 3, 4],
        list(range(5, 10)),
        [],
    ]
    with pytest.raises(ValueError, match="sorted"):
        ds.split_at_indices([5, 2])
    assert [p.count() for p in ds.split_proportionately([0.2, 0.3])] == [2, 3, 5]
    with pytest.raises(ValueError, match="sum to less than 1"):
        ds.split_proportionately([0.5, 0.5])


def test_schema_and_columns_without_fetching(rt):
    ds = rt.data.range(5)
    assert ds.columns(fetch_if_missing=False) == ["id"]
    mapped = ds.map_batches(lambda b: {"twice": b["id"] * 2})
    assert mapped.schema(fetch_if_missing=False) is None
    assert mapped.columns() == ["twice"]


def test_local_shuffle_of_iter_batches(rt):
    ds = rt.data.range(100)

    def ids(**kw):
        return [list(b["id"]) for b in ds.iter_batches(batch_size=10, **kw)]

    plain = ids()
    shuffled = ids(local_shuffle_buffer_size=30, local_shuffle_seed=7)
    assert [len(b) for b in shuffled] == [10] * 10
    assert sorted(v for b in shuffled for v in b) == list(range(100))
    assert shuffled != plain
    assert shuffled == ids(local_shuffle_buffer_size=30, local_shuffle_seed=7)
    with pytest.raises(ValueError, match="local_shuffle_buffer_size"):
        ids(local_shuffle_buffer_size=0)


def test_generator_functions_in_map_batches(rt):
    def twice(batch):
        yield {"id": batch["id"]}
        yield {"id": batch["id"] + 100}

    got = sorted(r["id"] for r in rt.data.range(4).map_batches(twice).take_all())
    assert got == [0, 1, 2, 3, 100, 101, 102, 103]


def test_function_concurrency_caps_the_tasks_running_at_once(rt, tmp_path):
    import time

    def probe(batch):
        # Each call records when it ran; at most `concurrency` overlap.
        start = time.monotonic()
        time.sleep(0.2)
        with open(tmp_path / f"{os.getpid()}-{start}", "w") as f:
            f.write(f"{start} {time.monotonic()}")
        return batch

    def overlap():
        spans = [tuple(map(float, p.read_text().split())) for p in tmp_path.iterdir()]
        for p in tmp_path.iterdir():
            p.unlink()
        return max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)

    ds = rt.data.range(8, override_num_blocks=8)
    assert ds.map_batches(probe, concurrency=1).count() == 8
    assert overlap() == 1
    assert ds.map_batches(probe, compute=rt.data.TaskPoolStrategy(size=1)).count() == 8
    assert overlap() == 1
    ds.map_batches(probe).count()
    assert overlap() == 2, "without a cap both CPUs run it"
    with pytest.raises(ValueError, match="concurrency"):
        ds.map_batches(probe, concurrency=(1, 2))


def test_naming_sizes_and_block_order(rt):
    ds = rt.data.range(100, override_num_blocks=10)
    ds.set_name("ids")
    assert ds.name == "ids"
    assert len(ds.get_dataset_id()) == 32 and ds.get_dataset_id() == ds.get_dataset_id()
    assert ds.context is rt.data.DataContext.get_current()
    assert ds.size_bytes() == 800
    shuffled = ds.randomize_block_order(seed=3)
    ids = [r["id"] for r in shuffled.take_all()]
    assert sorted(ids) == list(range(100)) and ids != list(range(100))
    assert ids == [r["id"] for r in ds.randomize_block_order(seed=3).take_all()]
    sample = ds.random_sample(0.5, seed=1)
    assert [r["id"] for r in sample.take_all()] == [r["id"] for r in sample.take_all()]
    assert 20 < sample.count() < 80


def test_grouped_aggregates_default_to_every_other_column_and_take_ignore_nulls(rt):
    ds = rt.data.from_items([{"k": i % 2, "a": i, "b": None if i == 3 else i} for i in range(6)])
    got = ds.groupby("k").sum().sort("k").take_all()
    assert got == [{"k": 0, "sum(a)": 6, "sum(b)": 6}, {"k": 1, "sum(a)": 9, "sum(b)": 6}]
    strict = ds.groupby("k").sum("b", ignore_nulls=False).sort("k").take_all()
    assert [r["sum(b)"] for r in strict] == [6, None]
    assert ds.groupby("k").std("a", ddof=0).sort("k").take_all()[0]["std(a)"] == pytest.approx(
        pd.Series([0, 2, 4]).std(ddof=0)
    )


def test_refused_names_say_so(rt):
    with pytest.raises(NotImplementedError, match="read_images"):
        _ = rt.data.read_images
    with pytest.raises(NotImplementedError, match="Dataset.to_dask"):
        rt.data.range(3).to_dask()
    with pytest.raises(AttributeError):
        _ = rt.data.range(3).no_such_method
    assert rt.data.DatasetContext is rt.data.DataContext
    assert isinstance(rt.data.range(3).iterator(), rt.data.DataIterator)


# ---- the README's compatibility table -----------------------------------------------------

#: Ray 2.60's public names (``ray.data.__all__`` and two more importable functions; the
#: public methods and properties of ``Dataset``, ``GroupedData`` and ``DataIterator``), read
#: from the ray 2.60.0 wheel.
RAY_2_60 = {
    "ray.data": """ActorPoolStrategy BlockBasedFileDatasink ClickHouseTableSettings Dataset
        DataContext DatasetContext DatasetSummary DataIterator DatasetIterator Datasink
        Datasource ExecutionOptions ExecutionResources FileShuffleConfig MixStoppingCondition
        NodeIdStr RandomSeedConfig ReadTask RowBasedFileDatasink Schema SinkMode SaveMode
        TaskPoolStrategy list_stats_summaries from_daft from_dask from_items from_arrow
        from_arrow_refs from_blocks from_mars from_modin from_numpy from_numpy_refs
        from_pandas from_pandas_refs from_spark from_tf from_torch from_huggingface range
        range_tensor read_audio read_avro read_text read_binary_files read_clickhouse read_csv
        read_datasource read_delta read_delta_sharing_tables read_kafka read_hudi read_iceberg
        read_images read_json read_lance read_lerobot read_mcap read_numpy read_mongo read_orc
        read_parquet read_snowflake read_sql read_tfrecords read_unity_catalog read_videos
        read_zarr read_webdataset CatalogAccessMode Catalog ReaderFormat ResolvedSource
        DatabricksUnityCatalog KafkaAuthConfig Preprocessor read_bigquery
        read_databricks_tables""",
    "Dataset": """copy map set_name name get_dataset_id map_batches map_batches_internal
        with_columns with_column add_column drop_columns select_columns rename_columns
        flat_map filter repartition random_shuffle randomize_block_order random_sample
        streaming_split split split_at_indices split_proportionately train_test_split
        streaming_train_test_split union mix join groupby unique aggregate sum min max mean
        std summary sort zip limit take_batch take take_all show count schema columns
        num_blocks size_bytes input_files write_parquet write_json write_iceberg write_delta
        write_images write_csv write_orc write_tfrecords write_webdataset write_numpy
        write_sql write_snowflake write_mongo write_bigquery write_clickhouse
        write_turbopuffer write_lance write_kafka write_datasink iterator iter_rows
        iter_batches iter_torch_batches iter_jax_batches iter_tf_batches to_tf to_daft
        to_dask to_mars to_modin to_spark to_pandas to_pandas_refs to_numpy_refs
        to_arrow_refs to_random_access_dataset materialize stats explain get_stats_summary
        iter_internal_ref_bundles get_internal_block_refs has_serializable_lineage
        serialize_lineage deserialize_lineage context""",
    "GroupedData": "aggregate map_groups with_column count sum min max mean std",
    "DataIterator": """iter_batches iter_rows stats schema get_context iter_torch_batches
        iter_tf_batches iter_jax_batches to_torch to_tf materialize""",
}


def _compat_table():
    import re

    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    section = readme.split("### Ray Data compatibility")[1].split("\n## ")[0]
    table = {}
    for item in section.split("\n- ")[1:]:
        m = re.match(r"`([\w.]+)` (supported|with differences|refused): (.*)", item, re.S)
        assert m, item
        where, status, body = m.groups()
        body = re.sub(r"\([^()]*\)", "", body)  # what a name's parentheses say of it
        names = [n for n in re.findall(r"`(\w+)`", body)]
        table.setdefault(where, {}).setdefault(status, []).extend(names)
    return table


def test_the_readme_compatibility_table_is_complete_and_true(rt):
    table = _compat_table()
    assert set(table) == set(RAY_2_60)
    ds = rt.data.range(3)
    owners = {
        "ray.data": (rt.data, rt.data),
        "Dataset": (rt.data.Dataset, ds),
        "GroupedData": (rt.data.GroupedData, ds.groupby("id")),
        "DataIterator": (rt.data.DataIterator, ds.iterator()),
    }
    for where, names in RAY_2_60.items():
        listed = [n for status in table[where].values() for n in status]
        assert sorted(listed) == sorted(set(names.split())), where
        cls, instance = owners[where]
        for status, listed_names in table[where].items():
            for name in listed_names:
                if status == "refused":
                    with pytest.raises(NotImplementedError, match=name):
                        value = getattr(instance, name)
                        value() if callable(value) else None
                else:
                    assert hasattr(cls, name), f"{where}.{name} is listed as supported"


# ---- write options and hive partitions -------------------------------------------------


def test_write_parquet_compression_and_hive_partitions_read_back(rt, tmp_path):
    import glob

    ds = rt.data.range(300, override_num_blocks=3).map_batches(
        lambda b: {"id": b["id"], "p": b["id"] % 3, "name": [f"n/{i % 2}" for i in b["id"]]}
    )
    ds.write_parquet(str(tmp_path / "zstd"), compression="zstd")
    for f in glob.glob(str(tmp_path / "zstd" / "*.parquet")):
        assert pq.ParquetFile(f).metadata.row_group(0).column(0).compression == "ZSTD"
    with pytest.raises(ValueError, match="brotli"):
        ds.write_parquet(str(tmp_path / "bad"), compression="brotli")

    ds.write_parquet(str(tmp_path / "hive"), partition_cols=["p", "name"])
    dirs = sorted(
        os.path.relpath(os.path.dirname(f), tmp_path / "hive")
        for f in glob.glob(str(tmp_path / "hive" / "**" / "*.parquet"), recursive=True)
    )
    assert sorted(set(dirs)) == [f"p={p}/name=n%2F{n}" for p in range(3) for n in range(2)]
    # The files hold the other columns only; pyarrow reads the partitions back the same.
    one = glob.glob(str(tmp_path / "hive" / "p=0" / "name=n%2F0" / "*.parquet"))[0]
    assert pq.read_schema(one).names == ["id"]
    got = rt.data.read_parquet(str(tmp_path / "hive"))
    assert got.columns() == ["id", "p", "name"]
    rows = sorted(got.take_all(), key=lambda r: r["id"])
    assert rows == [{"id": i, "p": i % 3, "name": f"n/{i % 2}"} for i in range(300)]
    picked = rt.data.read_parquet(str(tmp_path / "hive"), columns=["name", "id"])
    assert picked.columns() == ["name", "id"]
    assert rt.data.read_parquet(str(tmp_path / "hive")).filter(expr="p == 2").count() == 100
    with pytest.raises(ValueError, match="partition column"):
        ds.write_parquet(str(tmp_path / "nope"), partition_cols=["nope"])


def test_hive_partition_values_prune_the_files_a_filter_reads(rt, tmp_path):
    import glob

    ds = rt.data.range(300, override_num_blocks=3).map_batches(
        lambda b: {"id": b["id"], "p": b["id"] % 3}
    )
    ds.write_parquet(str(tmp_path), partition_cols=["p"])
    source = rt.data.read_parquet(str(tmp_path))  # the footers are read here
    kept = source.filter(expr="p == 2")
    wide = source.filter(expr="id >= 0")
    # The other partitions' files are gone: a read that opened them would fail.
    for f in glob.glob(str(tmp_path / "p=0" / "*")) + glob.glob(str(tmp_path / "p=1" / "*")):
        os.remove(f)
    assert kept.count() == 100
    assert kept.sum("id") == sum(range(2, 300, 3))
    with pytest.raises(Exception, match="p=0|p=1"):
        wide.count()


def test_write_min_rows_per_file(rt, tmp_path):
    import glob

    # One write task of one block: a file of all its rows, as in Ray.
    rt.data.range(1000).repartition(1).write_csv(str(tmp_path / "csv"), min_rows_per_file=400)
    files = glob.glob(str(tmp_path / "csv" / "*.csv"))
    assert [len(open(f).read().splitlines()) - 1 for f in files] == [1000]
    # Twenty blocks of 5 rows: Ray 2.60 writes files of 10, 30, 30 and 30 rows.
    rt.data.range(100, override_num_blocks=20).write_parquet(
        str(tmp_path / "pq"), min_rows_per_file=30
    )
    sizes = [pq.ParquetFile(f).metadata.num_rows for f in glob.glob(str(tmp_path / "pq" / "*"))]
    assert sorted(sizes) == [10, 30, 30, 30]
    got = rt.data.read_parquet(str(tmp_path / "pq")).sort("id").take_all()
    assert [r["id"] for r in got] == list(range(100))
    rt.data.range(100, override_num_blocks=20).write_json(
        str(tmp_path / "js"), min_rows_per_file=45
    )
    lines = [len(open(f).read().splitlines()) for f in glob.glob(str(tmp_path / "js" / "*"))]
    assert sorted(lines) == [10, 45, 45]
    with pytest.raises(ValueError, match="min_rows_per_file"):
        rt.data.range(10).write_json(str(tmp_path / "json"), min_rows_per_file=0)
    with pytest.raises(NotImplementedError, match="compression"):
        rt.data.range(10).write_csv(str(tmp_path / "gz"), compression="gzip")


def test_include_paths_adds_each_rows_file(rt, tmp_path):
    rt.data.range(30, override_num_blocks=3).write_parquet(str(tmp_path / "pq"))
    rt.data.range(30, override_num_blocks=3).write_csv(str(tmp_path / "csv"))
    rt.data.range(30, override_num_blocks=3).write_json(str(tmp_path / "json"))
    for read, sub in [
        (rt.data.read_parquet, "pq"),
        (rt.data.read_csv, "csv"),
        (rt.data.read_json, "json"),
    ]:
        ds = read(str(tmp_path / sub), include_paths=True)
        assert ds.columns() == ["id", "path"], sub
        rows = ds.take_all()
        files = sorted(os.listdir(tmp_path / sub))
        assert sorted({os.path.basename(r["path"]) for r in rows}) == files
        assert all(os.path.dirname(r["path"]) == str(tmp_path / sub) for r in rows)
        assert sorted(r["id"] for r in rows) == list(range(30))
    picked = rt.data.read_parquet(str(tmp_path / "pq"), include_paths=True, columns=["path"])
    assert picked.columns() == ["path"] and picked.count() == 30


def test_input_files_and_num_blocks(rt, tmp_path):
    rt.data.range(30, override_num_blocks=3).write_csv(str(tmp_path / "a"))
    rt.data.range(30, override_num_blocks=2).write_csv(str(tmp_path / "b"))
    a = rt.data.read_csv(str(tmp_path / "a"))
    b = rt.data.read_csv(str(tmp_path / "b"))
    files = a.union(b).map_batches(lambda batch: batch).input_files()
    expected = [str(tmp_path / d / f) for d in "ab" for f in sorted(os.listdir(tmp_path / d))]
    assert files == expected
    assert rt.data.range(3).input_files() == []
    assert rt.data.range(100).repartition(10).materialize().num_blocks() == 10
    with pytest.raises(NotImplementedError, match="MaterializedDataset"):
        rt.data.range(100).num_blocks()


def test_whole_dataset_aggregates_name_their_values_as_ray_does(rt):
    ds = rt.data.from_items([{"a": i, "b": None if i == 2 else i * 1.5} for i in range(6)])
    assert ds.sum(["a", "b"]) == {"sum(a)": 15, "sum(b)": 19.5}
    assert ds.std(["a"], ddof=0) == {"std(a)": pytest.approx(pd.Series(range(6)).std(ddof=0))}
    assert ds.sum("b", ignore_nulls=False) is None
    assert ds.max("b") == 7.5
    assert rt.data.range(10).filter(expr="id > 50").sum("id") is None


def _jsonl(path, rows):
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_json_lines_with_lists_nested_objects_and_mixed_numbers_read_as_pyarrow(rt, tmp_path):
    import pyarrow.json as pj

    # Integers for 200,000 rows, then one float: pyarrow reads the column as double
    # (the engine's first sample said int64 and truncated 0.5 to 0).
    _jsonl(tmp_path / "late.jsonl", [{"v": i} for i in range(200_000)] + [{"v": 0.5}])
    ds = rt.data.read_json(str(tmp_path / "late.jsonl"))
    assert ds.schema().types == [pa.float64()]
    assert ds.take_all()[-1] == {"v": 0.5}
    assert ds.sum("v") == pytest.approx(sum(range(200_000)) + 0.5)
    rows = [
        {"z": 1, "tags": ["a", "b"], "pt": {"y": 2, "x": 1}, "m": [1, 2.5]},
        {"z": 2, "tags": [], "pt": {"y": 3}, "m": None, "late": True},
        {"z": 3, "tags": None, "m": [3]},
    ]
    _jsonl(tmp_path / "mixed.jsonl", rows)
    want = pj.read_json(str(tmp_path / "mixed.jsonl"))
    got = rt.data.read_json(str(tmp_path / "mixed.jsonl"))
    # Columns (and struct fields) in the order their keys first appear, as pyarrow's.
    assert got.schema().names == want.schema.names == ["z", "tags", "pt", "m", "late"]
    assert got.schema().types == want.schema.types
    assert got.take_all() == want.to_pylist()
    # Mixed-case and dotted keys are columns as named; the integers and a float in
    # "sepal.length" are floats.
    rows = [{"UserID": 1, "sepal.length": 2.5}, {"UserID": 2, "sepal.length": 3}]
    _jsonl(tmp_path / "names.jsonl", rows)
    named = rt.data.read_json(str(tmp_path / "names.jsonl"))
    assert named.columns() == ["UserID", "sepal.length"]
    kept = named.filter(expr="sepal.length > 2.6").take_all()
    assert kept == [{"UserID": 2, "sepal.length": 3.0}]


def test_a_json_file_that_is_one_array_reads_as_ray_reads_it(rt, tmp_path):
    import json

    rows = [{"k": i, "tags": ["a", "]", "{"][: i % 4], "s": f'say "{i}"\n'} for i in range(50)]
    (tmp_path / "rows.json").write_text(json.dumps(rows, indent=2))
    (tmp_path / "more.json").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    ds = rt.data.read_json(str(tmp_path))
    assert ds.columns() == ["k", "tags", "s"]
    got = sorted(ds.take_all(), key=lambda r: (r["k"], len(r["tags"])))
    assert got == sorted(rows + rows[:3], key=lambda r: (r["k"], len(r["tags"])))
    (tmp_path / "bad.json").write_text('[{"k": 1}] trailing')
    with pytest.raises(Exception, match=r"bad\.json.*text after the JSON array"):
        rt.data.read_json(str(tmp_path / "bad.json")).count()


def test_json_files_with_different_columns_and_types_widen_or_fail_naming_the_file(rt, tmp_path):
    d = tmp_path / "multi"
    d.mkdir()
    _jsonl(d / "a.jsonl", [{"a": 1, "s": {"x": 1}}, {"a": 2}])
    _jsonl(d / "b.jsonl", [{"a": 1.5, "c": "z", "s": {"y": "q"}}])
    ds = rt.data.read_json(str(d))
    assert ds.columns() == ["a", "s", "c"]
    assert sorted(ds.take_all(), key=lambda r: r["a"]) == [
        {"a": 1.0, "s": {"x": 1, "y": None}, "c": None},
        {"a": 1.5, "s": {"x": None, "y": "q"}, "c": "z"},
        {"a": 2.0, "s": None, "c": None},
    ]
    _jsonl(d / "b.jsonl", [{"a": "text"}])
    with pytest.raises(Exception, match=r"b\.jsonl.*column \"a\" holds Utf8"):
        rt.data.read_json(str(d)).take_all()


def test_union_of_schemas_that_differ_only_in_nullability(rt, tmp_path):
    strict = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    pq.write_table(pa.table({"id": [1, 2]}, schema=strict), tmp_path / "strict.parquet")
    (tmp_path / "loose.csv").write_text("id\n3\n\n")  # a blank line: no row
    (tmp_path / "nulls.jsonl").write_text('{"id": 4}\n{"id": null}\n')
    parquet = rt.data.read_parquet(str(tmp_path / "strict.parquet"))
    assert not parquet.schema().base_schema.field("id").nullable
    both = parquet.union(rt.data.read_json(str(tmp_path / "nulls.jsonl")))
    assert both.schema().base_schema.field("id").nullable
    assert sorted(both.take_all(), key=lambda r: (r["id"] is None, r["id"])) == [
        {"id": 1},
        {"id": 2},
        {"id": 4},
        {"id": None},
    ]
    assert both.materialize().count() == 4
    assert parquet.union(rt.data.read_csv(str(tmp_path / "loose.csv"))).sum("id") == 6
    with pytest.raises(Exception, match="union of different schemas"):
        parquet.union(rt.data.from_items([{"id": "x"}])).take_all()


def test_numpy_tensor_columns_are_rays_tensor_types(rt):
    import numpy as np

    cube = np.arange(24, dtype=np.float32).reshape(3, 2, 4)
    ds = rt.data.from_numpy(cube)
    (field,) = ds.schema().base_schema
    assert field.name == "data"
    assert field.type.extension_name == "ray.data.arrow_tensor_v2"
    assert field.type.storage_type == pa.large_list(pa.float32())
    assert field.type.shape == (2, 4)
    batch = ds.take_batch(3, batch_format="numpy")["data"]
    assert batch.shape == (3, 2, 4) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, cube)
    np.testing.assert_array_equal(ds.take(2)[1]["data"], cube[1])
    # A function sees the tensor in its worker, and its arrays of ndim > 1 become tensors.
    out = ds.map_batches(lambda b: {"twice": b["data"] * 2, "sum": b["data"].sum(axis=(1, 2))})
    rows = out.take_all()
    np.testing.assert_array_equal(rows[2]["twice"], cube[2] * 2)
    assert [r["sum"] for r in rows] == [float(c.sum()) for c in cube]
    assert out.schema().base_schema.field("twice").type.shape == (2, 4)
    seen = ds.map_batches(
        lambda t: {"t": [t.schema.types[0].extension_name]}, batch_format="pyarrow"
    )
    assert seen.take_all() == [{"t": "ray.data.arrow_tensor_v2"}]
    df = ds.map_batches(lambda df: df.assign(n=[a.size for a in df["data"]]), batch_format="pandas")
    assert [r["n"] for r in df.take_all()] == [8, 8, 8]
    assert df.schema().base_schema.field("data").type.shape == (2, 4)
    np.testing.assert_array_equal(ds.to_pandas()["data"][1], cube[1])
    row_fn = ds.map(lambda r: {"x": r["data"] + 1}).take_all()
    np.testing.assert_array_equal(row_fn[0]["x"], cube[0] + 1)
    # from_items of arrays, and range_tensor, as Ray makes them.
    items = rt.data.from_items([{"a": np.zeros((2, 2))}, {"a": np.ones((2, 2))}])
    assert items.schema().base_schema.field("a").type.shape == (2, 2)
    tensor = rt.data.range_tensor(4, shape=(2, 3)).take_batch(4, batch_format="numpy")["data"]
    assert tensor.shape == (4, 2, 3) and (tensor[3] == 3).all()


def test_variable_shaped_tensors(rt):
    import numpy as np

    arrays = [np.ones((2, 2)), np.zeros((3, 1)), None]
    ds = rt.data.from_items([{"v": a} for a in arrays])
    t = ds.schema().base_schema.field("v").type
    assert t.extension_name == "ray.data.arrow_variable_shaped_tensor" and t.ndim == 2
    got = [r["v"] for r in ds.take_all()]
    np.testing.assert_array_equal(got[0], arrays[0])
    np.testing.assert_array_equal(got[1], arrays[1])
    assert got[2] is None
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.ones((2, 2)), np.ones((2, 3))
    sizes = rt.data.from_numpy(ragged).map_batches(
        lambda b: {"size": np.array([a.size for a in b["data"]])}
    )
    assert [r["size"] for r in sizes.take_all()] == [4, 6]
    # Arrays of different numbers of dimensions: no tensor type holds them (objects).
    mixed = rt.data.from_items([{"m": np.ones(2)}, {"m": np.ones((2, 2))}])
    assert mixed.schema().base_schema.field("m").type.extension_name == "volley.python_object"
    shapes = mixed.map_batches(lambda b: {"s": [str(a.shape) for a in b["m"]]}).take_all()
    assert shapes == [{"s": "(2,)"}, {"s": "(2, 2)"}]


def test_tensor_columns_round_trip_through_parquet_as_ray_writes_them(rt, tmp_path):
    import numpy as np

    cube = np.arange(12, dtype=np.int32).reshape(3, 2, 2)
    rt.data.from_numpy(cube).write_parquet(str(tmp_path / "fixed"))
    rt.data.from_items([{"v": np.ones((1, 2))}, {"v": np.zeros((3, 1))}]).write_parquet(
        str(tmp_path / "var")
    )
    # The files carry Ray's extension names and metadata: Ray reads them as its tensors.
    (f,) = pq.read_schema(next((tmp_path / "fixed").iterdir()))
    assert f.type.extension_name == "ray.data.arrow_tensor_v2"
    assert f.type.__arrow_ext_serialize__() == b"[2, 2]"
    (v,) = pq.read_schema(next((tmp_path / "var").iterdir()))
    assert v.type.extension_name == "ray.data.arrow_variable_shaped_tensor"
    assert v.type.__arrow_ext_serialize__() == b"2"
    back = rt.data.read_parquet(str(tmp_path / "fixed")).take_batch(3, batch_format="numpy")
    np.testing.assert_array_equal(back["data"], cube)
    var = [r["v"] for r in rt.data.read_parquet(str(tmp_path / "var")).take_all()]
    assert sorted(a.shape for a in var) == [(1, 2), (3, 1)]
    # A file as Ray 2.x's first tensor type wrote it (list<T>, 32-bit offsets).
    storage = pa.array([[1, 2, 3, 4], [5, 6, 7, 8]], pa.list_(pa.int64()))
    meta = {
        b"ARROW:extension:name": b"ray.data.arrow_tensor",
        b"ARROW:extension:metadata": b"[2, 2]",
    }
    field = pa.field("t", storage.type, metadata=meta)
    raw = pa.Table.from_arrays([storage], schema=pa.schema([field]))
    pq.write_table(raw, tmp_path / "v1.parquet")
    old = rt.data.read_parquet(str(tmp_path / "v1.parquet")).take_batch(2, batch_format="numpy")
    np.testing.assert_array_equal(old["t"], np.arange(1, 9).reshape(2, 2, 2))


def test_tensor_files_of_different_shapes_read_as_variable_shaped_as_ray_unifies(rt, tmp_path):
    import numpy as np

    squares = [np.arange(4.0).reshape(2, 2), np.ones((2, 2))]
    rt.data.from_items([{"v": a, "k": i} for i, a in enumerate(squares)]).write_parquet(
        str(tmp_path / "a")
    )
    rt.data.from_items([{"v": np.arange(3.0), "k": 2}]).write_parquet(str(tmp_path / "b"))
    # A file as Ray's first tensor type wrote it: list<T> of shape (1, 2).
    storage = pa.array([[7.0, 8.0]], pa.list_(pa.float64()))
    meta = {
        b"ARROW:extension:name": b"ray.data.arrow_tensor",
        b"ARROW:extension:metadata": b"[1, 2]",
    }
    schema = pa.schema([pa.field("v", storage.type, metadata=meta), pa.field("k", pa.int64())])
    pq.write_table(
        pa.Table.from_arrays([storage, pa.array([3])], schema=schema), tmp_path / "c.parquet"
    )

    ds = rt.data.read_parquet(
        [str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c.parquet")]
    )
    t = ds.schema().base_schema.field("v").type
    assert t.extension_name == "ray.data.arrow_variable_shaped_tensor" and t.ndim == 2
    got = {r["k"]: r["v"] for r in ds.take_all()}
    np.testing.assert_array_equal(got[0], squares[0])
    np.testing.assert_array_equal(got[1], squares[1])
    # A smaller shape gains a leading axis of 1, as Ray pads it.
    np.testing.assert_array_equal(got[2], np.arange(3.0).reshape(1, 3))
    np.testing.assert_array_equal(got[3], np.array([[7.0, 8.0]]))
    # Tensors of another value type still conflict, naming the file.
    rt.data.from_items([{"v": np.ones((2, 2), dtype=np.int32), "k": 4}]).write_parquet(
        str(tmp_path / "d")
    )
    with pytest.raises(Exception, match="conflicts with"):
        rt.data.read_parquet([str(tmp_path / "a"), str(tmp_path / "d")]).count()


def test_sort_boundaries_split_the_blocks_by_the_first_key(rt):
    def blocks(ds):
        return [[int(x) for x in b["id"]] for b in ds.iter_batches(batch_size=None)]

    ds = rt.data.range(15, override_num_blocks=4)
    # Deduplicated and ordered, as Ray does.
    assert blocks(ds.sort("id", boundaries=[10, 5, 5])) == [
        list(range(5)),
        list(range(5, 10)),
        list(range(10, 15)),
    ]
    assert blocks(ds.sort("id", descending=True, boundaries=[5, 10])) == [
        list(range(14, 9, -1)),
        list(range(9, 4, -1)),
        list(range(4, -1, -1)),
    ]
    assert ds.sort("id", boundaries=[2.5, 7]).materialize().num_blocks() == 3
    two = rt.data.from_items([{"k": i % 3, "j": -i} for i in range(9)])
    by_k = two.sort(["k", "j"], boundaries=[1]).select_columns(["j"])
    got = blocks(by_k.rename_columns({"j": "id"}))
    assert got == [[-6, -3, 0], [-7, -4, -1, -8, -5, -2]]
    with pytest.raises(ValueError, match="must be int or float"):
        ds.sort("id", boundaries=["x"])
    with pytest.raises(ValueError, match="numeric first key"):
        rt.data.from_items([{"s": "a"}]).sort("s", boundaries=[1]).take_all()


def test_a_dataset_is_not_iterable_as_in_ray(rt):
    ds = rt.data.range(3)
    with pytest.raises(TypeError, match="aren't iterable.*iter_rows"):
        list(ds)
    assert [r["id"] for r in ds.iter_rows()] == [0, 1, 2]


def test_a_materialized_datasets_stats_are_the_run_that_made_it(rt):
    ds = rt.data.range(100).map_batches(lambda b: b).materialize()
    assert "Operator 1 ReadRange->MapBatches(<lambda>): " in ds.stats()
    assert "* Output num rows per block: " in ds.stats()
    assert rt.data.range(3).stats() == "(not executed yet)"


def test_stats_name_the_executed_operators_in_rays_layout(rt):
    import re

    def double(b):
        return {"id": b["id"] * 2}

    ds = rt.data.range(1000).map_batches(double).filter(expr="id > 5").sort("id")
    assert len(ds.take_all()) == 997
    text = ds.stats()
    heads = re.findall(
        r"^Operator (\d+) (.+): (\d+) tasks executed, (\d+) blocks produced in ([\d.]+)s$",
        text,
        re.M,
    )
    assert [(n, name) for n, name, *_ in heads] == [
        ("1", "ReadRange->MapBatches(double)->Filter(id > Int64(5))"),
        ("2", "Sort"),
    ]
    first = text.split("Operator 2")[0]
    # The fused pipeline's output: 997 rows, in as many blocks as it says it produced.
    blocks = int(heads[0][3])
    rows = re.search(
        r"\* Output num rows per block: (\d+) min, (\d+) max, (\d+) mean, (\d+) total", first
    )
    assert rows is not None and int(rows.group(4)) == 997
    assert int(rows.group(1)) <= 997 // blocks <= int(rows.group(2))
    assert re.search(r"\* Output size bytes per block: .*, 7976 total", first)
    assert "* Remote cpu time: " in first and "\t* Total output num rows: 997 rows" in first
    assert re.search(
        r"^Dataset throughput:\n\t\* Volley throughput: [\d.]+ rows/s \(997 rows", text, re.M
    )
