"""Behaviour tier: Ray's expressions (``ray.data.expressions``) in ``with_column``,
``with_columns`` and ``filter(expr=)`` — the values Ray's pyarrow kernels give, computed by
the engine natively."""

from __future__ import annotations

import datetime
import math

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from volley.data.datatype import DataType
from volley.data.expressions import col, lit

TABLE = pa.table(
    {
        "Id": pa.array([7, -7, 2, None, 9], pa.int64()),
        "x.y": pa.array([2.5, -7.5, 0.5, 1.25, None], pa.float64()),
        "s": pa.array(["ab", "Yz", None, " pad ", "abc"]),
        "t": pa.array(
            [datetime.datetime(2020 + i, 1 + i, 3, 4, 5, 6) for i in range(5)], pa.timestamp("us")
        ),
        "l": pa.array([[1, 2], [], None, [3], [4, 5, 6]], pa.list_(pa.int64())),
        "st": pa.array([{"f": i, "g": str(i)} for i in range(5)]),
    }
)


@pytest.fixture(scope="module")
def ds(rt):
    return rt.data.from_arrow(TABLE)


def column(ds, expr):
    return ds.with_column("out", expr).to_arrow().column("out").combine_chunks()


def test_arithmetic_gives_the_values_of_rays_pyarrow_kernels(ds):
    i, f = TABLE["Id"], TABLE["x.y"]
    expected = {
        "add": (col("Id") + 1, pc.add(i, 1)),
        "radd": (1 + col("x.y"), pc.add(1, f)),
        "sub": (col("Id") - col("Id"), pc.subtract(i, i)),
        "mul": (col("x.y") * 2, pc.multiply(f, 2)),
        "int_div": (col("Id") / 2, pc.divide(i, 2)),  # integers truncate, as pyarrow's
        "float_div": (col("x.y") / 2, pc.divide(f, 2)),
        "floordiv": (col("Id") // 2, pc.floor(pc.divide(i, 2))),
        "float_floordiv": (col("x.y") // 2, pc.floor(pc.divide(f, 2))),
        "mod": (col("Id") % 2, pc.subtract(i, pc.multiply(pc.floor(pc.divide(i, 2)), 2))),
        "float_mod": (col("x.y") % 2, pc.subtract(f, pc.multiply(pc.floor(pc.divide(f, 2)), 2))),
        "neg": (-col("Id"), pc.negate(i)),
        "abs": (col("Id").abs(), pc.abs(i)),
        "round": (col("x.y").round(), pc.round(f)),  # halves to even: 2.5 -> 2, -7.5 -> -8
        "ceil": (col("x.y").ceil(), pc.ceil(f)),
        "floor": (col("x.y").floor(), pc.floor(f)),
        "sqrt_by_power": (col("x.y").power(0.5), pc.power(f, 0.5)),
    }
    got = ds.with_columns({k: e for k, (e, _) in expected.items()}).to_arrow()
    for name, (_, want) in expected.items():
        have = got.column(name).combine_chunks()
        assert have.type == want.type, name
        assert have.to_pylist() == pytest.approx(want.to_pylist(), nan_ok=True), name
    assert got.column("round").to_pylist()[:2] == [2.0, -8.0]


def test_comparisons_and_logic_are_kleene_and_is_in_is_never_null(ds):
    i, f = TABLE["Id"], TABLE["x.y"]
    gt, lt = pc.greater(i, 0), pc.less(f, 1)
    cases = [
        ((col("Id") > 0) & (col("x.y") < 1), pc.and_kleene(gt, lt)),
        ((col("Id") > 0) | (col("x.y") < 1), pc.or_kleene(gt, lt)),
        (~(col("Id") > 0), pc.invert(gt)),
        (col("Id") == 7, pc.equal(i, 7)),
        (col("Id") != 7, pc.not_equal(i, 7)),
        (col("Id") >= 2, pc.greater_equal(i, 2)),
        (col("Id") <= 2, pc.less_equal(i, 2)),
        (col("Id").is_null(), pc.is_null(i)),
        (col("Id").is_not_null(), pc.is_valid(i)),
        (col("Id").is_in([7, 9]), pc.is_in(i, pa.array([7, 9]))),
        (col("Id").is_in([7, None]), pc.is_in(i, pa.array([7, None]))),
        (col("Id").not_in([7, 9]), pc.invert(pc.is_in(i, pa.array([7, 9])))),
        (col("Id").is_in([]), pc.is_in(i, pa.array([], pa.int64()))),
    ]
    for expr, want in cases:
        assert column(ds, expr).to_pylist() == want.to_pylist(), repr(expr)


def test_strings_concatenate_and_the_str_namespace_matches_pyarrow(ds):
    s = TABLE["s"]
    cases = [
        (col("s") + "!", pc.binary_join_element_wise(s, "!", "")),
        (col("s") + col("s"), pc.binary_join_element_wise(s, s, "")),
        (lit("<") + col("s"), pc.binary_join_element_wise("<", s, "")),
        (col("s").str.upper(), pc.utf8_upper(s)),
        (col("s").str.lower(), pc.utf8_lower(s)),
        (col("s").str.len(), pc.utf8_length(s)),
        (col("s").str.byte_len(), pc.binary_length(s)),
        (col("s").str.starts_with("a"), pc.starts_with(s, "a")),
        (col("s").str.ends_with("C", ignore_case=True), pc.ends_with(s, "c")),
        (col("s").str.contains("b"), pc.match_substring(s, "b")),
        (col("s").str.match("a%"), pc.match_like(s, "a%")),
        (col("s").str.replace("b", "B"), pc.replace_substring(s, "b", "B")),
        (col("s").str.strip(), pc.utf8_trim_whitespace(s)),
        (col("s").str.lpad(4, "*"), pc.utf8_lpad(s, 4, "*")),
        (col("s").str.rpad(4, "*"), pc.utf8_rpad(s, 4, "*")),
        (col("s").str.slice(1, 3), pc.utf8_slice_codeunits(s, 1, 3)),
        (col("s").str.reverse(), pc.utf8_reverse(s)),
        (col("s").str.capitalize(), pc.utf8_capitalize(s)),
    ]
    for expr, want in cases:
        assert column(ds, expr).to_pylist() == want.to_pylist(), repr(expr)


def test_casts_dates_lists_and_structs(ds):
    out = column(ds, col("Id").cast(DataType.float32()))
    assert out.type == pa.float32() and out.to_pylist() == [7.0, -7.0, 2.0, None, 9.0]
    assert column(ds, col("Id").cast(DataType.string())).to_pylist() == [
        "7",
        "-7",
        "2",
        None,
        "9",
    ]
    assert column(ds, col("t").dt.year()).to_pylist() == pc.year(TABLE["t"]).to_pylist()
    assert column(ds, col("t").dt.month()).to_pylist() == pc.month(TABLE["t"]).to_pylist()
    assert column(ds, col("t").dt.second()).to_pylist() == [6] * 5
    assert column(ds, col("l").list.len()).to_pylist() == [2, 0, None, 1, 3]
    assert column(ds, col("l").list.get(0)).to_pylist() == [1, None, None, 3, 4]
    assert column(ds, col("l").list.get(-1)).to_pylist() == [2, None, None, 3, 6]
    assert column(ds, col("st").struct.field("g")).to_pylist() == ["0", "1", "2", "3", "4"]
    assert column(ds, col("st").struct["f"] * 10).to_pylist() == [0, 10, 20, 30, 40]
    with pytest.raises(TypeError, match="target_type must be a .*DataType"):
        col("Id").cast(pa.float32())
    with pytest.raises(NotImplementedError, match="safe=False"):
        col("Id").cast(DataType.int8(), safe=False)
    with pytest.raises(Exception, match="Id"):
        column(ds, col("Id").cast(DataType.uint8()))  # -7 does not fit


def test_with_columns_is_one_projection_in_rays_column_order(ds):
    out = ds.with_columns({"Id": col("Id") * 10, "old": col("Id")}, {"k": lit(1)}).to_arrow()
    assert out.column_names == ["Id", "x.y", "s", "t", "l", "st", "old", "k"]
    assert out.column("Id").to_pylist() == [70, -70, 20, None, 90]
    assert out.column("old").to_pylist() == TABLE["Id"].to_pylist()
    assert out.column("k").to_pylist() == [1] * 5
    # An alias inside is named by the mapping's key, as in Ray.
    assert ds.with_column("d", (col("Id") + 1).alias("z")).columns()[-1] == "d"
    assert ds.with_columns({}).columns() == TABLE.column_names
    with pytest.raises(TypeError, match="must be mappings from column name to expression"):
        ds.with_columns(col("Id"))
    with pytest.raises(TypeError, match="must be an expression"):
        ds.with_column("d", 3)
    # Ray's string syntax and SQL are still accepted, names exact.
    assert column(ds, "Id * 2").to_pylist() == [14, -14, 4, None, 18]
    # One literal writer for both forms: an infinite constant is a float, not a name.
    assert column(ds, "Id < 1e999").to_pylist() == [True, True, True, None, True]
    with pytest.raises(Exception, match="No field named nope"):
        column(ds, col("nope") + 1)


def test_filter_takes_an_expression_and_pushes_it_into_parquet_reads(rt, tmp_path):
    pq.write_table(
        pa.table({"UserID": list(range(1000)), "sepal.length": [i / 8 for i in range(1000)]}),
        tmp_path / "p.parquet",
        row_group_size=100,
    )
    ds = rt.data.read_parquet(str(tmp_path))
    kept = ds.filter(expr=(col("UserID") >= 990) & (col("sepal.length") < 124.5))
    assert [r["UserID"] for r in kept.take_all()] == list(range(990, 996))
    assert "UserID" in kept.explain()
    assert ds.filter(expr=col("UserID").is_in([3, 5, 5000])).count() == 2


def test_expressions_print_as_rays_tree_and_refuse_what_volley_lacks(ds):
    assert repr(((col("a") + 1) * 2).alias("q")) == "\n".join(
        [
            "ALIAS('q')",
            "    └── MUL",
            "        ├── left: ADD",
            "        │   ├── left: COL('a')",
            "        │   └── right: LIT(1)",
            "        └── right: LIT(2)",
        ]
    )
    assert col("a").name == "a" and (col("a") + 1).name is None
    assert col("a").alias("z").name == "z"
    assert (col("a") + 1).structurally_equals(col("a") + 1)
    assert not (col("a") + 1).structurally_equals(col("a") + 2)
    with pytest.raises(TypeError, match="no truth value.*&"):
        (col("a") > 1) and (col("b") < 2)
    from volley.data import expressions

    with pytest.raises(NotImplementedError, match="udf is not supported.*map_batches"):
        expressions.udf(return_dtype=DataType.int64())
    with pytest.raises(NotImplementedError, match="Expr.str.swapcase"):
        col("s").str.swapcase()
    with pytest.raises(NotImplementedError, match=r"with_columns\(num_cpus=...\)"):
        ds.with_column("d", col("Id"), num_cpus=1)
    with pytest.raises(TypeError, match="literal of type object"):
        lit(object())
    assert math.isinf(column(ds, lit(float("inf"))).to_pylist()[0])
