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
