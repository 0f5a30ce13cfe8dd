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
        ("key == \"a\"", lambda d: d["key"] == "a"),  # a string, as in Python
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
    from volley.data.aggregate import AbsMax, Count, Max, Mean, Min, Quantile, Std, Sum, Unique

    # Several blocks, so each group spans blocks.
    ds = rt.data.from_items(AGG_ROWS).repartition(5)
    x = agg_df.groupby("g")["x"]
    native = [Count(), Sum("x"), Min("x"), Max("x"), Mean("x"), Std("x"), AbsMax("x")]
    native += [Quantile("x", q=0.3), Unique("s", alias_name="letters")]
    # A Count on a column counts its nulls by default (as Ray's): with Count() in the same
    # call the engine cannot name both, and every aggregation runs in Python.
    python = [Count("x"), Count("x", ignore_nulls=True, alias_name="valid")] + native[1:]
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
