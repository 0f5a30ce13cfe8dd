"""Behaviour tier: volley.data against pandas / pyarrow computed directly."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from volley import exceptions


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(7)
    n = 20_000
    return pa.table(
        {
            "id": np.arange(n, dtype=np.int64),
            "value": rng.random(n),
            "key": [f"k{i % 37}" for i in range(n)],
        }
    )


@pytest.fixture(scope="module")
def parquet_dir(table, tmp_path_factory):
    d = tmp_path_factory.mktemp("pq")
    for i, chunk in enumerate(range(0, table.num_rows, 5000)):
        pq.write_table(table.slice(chunk, 5000), d / f"part-{i}.parquet")
    return str(d)


def sorted_ids(rows):
    return sorted(r["id"] for r in rows)


def test_read_parquet_count_schema_and_rows(rt, parquet_dir, table):
    ds = rt.data.read_parquet(parquet_dir)
    assert ds.count() == table.num_rows
    assert ds.schema() == table.schema
    assert ds.columns() == ["id", "value", "key"]
    got = ds.to_arrow().sort_by("id")
    assert got.equals(table)


@pytest.mark.parametrize("fmt", ["pyarrow", "pandas", "numpy", "default"])
def test_map_batches_in_every_batch_format(rt, parquet_dir, table, tmp_path, fmt):
    def double(batch):
        if fmt == "pyarrow":
            return batch.set_column(1, "value", pc.multiply(batch["value"], 2.0))
        batch["value"] = batch["value"] * 2
        return batch

    out = str(tmp_path / "out")
    mapped = rt.data.read_parquet(parquet_dir).map_batches(double, batch_format=fmt)
    # Every format gives the columns back with their types (pandas' strings included).
    assert mapped.limit(10).to_arrow().schema == table.schema
    mapped.filter(expr="value > 0.5").write_parquet(out)
    got = pq.read_table(out).sort_by("id")
    want = table.set_column(1, "value", pc.multiply(table["value"], 2.0))
    want = want.filter(pc.greater(want["value"], 0.5))
    assert got.num_rows == want.num_rows
    assert got.column("id").equals(want.column("id"))
    assert np.allclose(got.column("value").to_numpy(), want.column("value").to_numpy())


def test_map_batches_fn_args_and_batch_size(rt):
    def shift(batch, k, *, scale):
        return {"id": batch["id"] * scale + k, "n": np.full(len(batch["id"]), len(batch["id"]))}

    ds = rt.data.range(1000).map_batches(
        shift, fn_args=(5,), fn_kwargs={"scale": 2}, batch_size=100
    )
    rows = ds.take_all()
    assert sorted(r["id"] for r in rows) == [i * 2 + 5 for i in range(1000)]
    # Batches of batch_size rows; a block's last batch may be shorter.
    sizes = [r["n"] for r in rows]
    assert max(sizes) == 100 and sizes.count(100) >= 0.5 * len(sizes)


def test_callable_class_runs_in_an_actor_pool(rt):
    class AddOffset:
        def __init__(self, offset):
            self.offset = offset
            self.pid = os.getpid()

        def __call__(self, batch):
            return {"id": batch["id"] + self.offset, "pid": np.full(len(batch["id"]), self.pid)}

    ds = rt.data.range(5000).map_batches(
        AddOffset, fn_constructor_args=(1000,), concurrency=2, batch_size=500
    )
    rows = ds.take_all()
    assert sorted(r["id"] for r in rows) == list(range(1000, 6000))
    pids = {r["pid"] for r in rows}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids


def test_row_functions_map_flat_map_filter_add_column(rt):
    ds = rt.data.from_items([{"x": i} for i in range(100)])
    assert [r["y"] for r in ds.map(lambda r: {"y": r["x"] * 3}).take_all()] == [
        i * 3 for i in range(100)
    ]
    flat = ds.flat_map(lambda r: [{"x": r["x"]}] * (r["x"] % 3))
    assert flat.count() == sum(i % 3 for i in range(100))
    assert ds.filter(lambda r: r["x"] % 10 == 0).count() == 10
    added = ds.add_column("sq", lambda df: df["x"] ** 2).take_all()
    assert [r["sq"] for r in added] == [i * i for i in range(100)]
    assert ds.with_column("z", "x + 1").take(3) == [
        {"x": 0, "z": 1},
        {"x": 1, "z": 2},
        {"x": 2, "z": 3},
    ]


def test_columns_limit_union_zip(rt, table):
    ds = rt.data.from_arrow(table)
    assert ds.select_columns(["key", "id"]).columns() == ["key", "id"]
    assert ds.drop_columns(["value"]).columns() == ["id", "key"]
    assert ds.rename_columns({"value": "v"}).columns() == ["id", "v", "key"]
    assert ds.limit(7).count() == 7
    assert ds.union(ds).count() == 2 * table.num_rows
    z = rt.data.range(5).zip(rt.data.range(5).with_column("sq", "id * id").select_columns("sq"))
    assert z.take_all() == [{"id": i, "sq": i * i} for i in range(5)]


def test_groupby_aggregates_match_pandas(rt, table):
    df = table.to_pandas()
    ds = rt.data.from_arrow(table)
    got = ds.groupby("key").sum("value").to_pandas().sort_values("key").reset_index(drop=True)
    want = (
        df.groupby("key", as_index=False)["value"].sum().sort_values("key").reset_index(drop=True)
    )
    assert list(got["key"]) == list(want["key"])
    assert np.allclose(got.iloc[:, 1], want["value"])
    counts = ds.groupby("key").count().to_pandas().set_index("key").iloc[:, 0].to_dict()
    assert counts == df.groupby("key").size().to_dict()
    means = ds.groupby("key").mean("value").to_pandas().set_index("key").iloc[:, 0]
    assert np.allclose(means.sort_index(), df.groupby("key")["value"].mean().sort_index())
    stds = ds.groupby("key").std("value").to_pandas().set_index("key").iloc[:, 0]
    assert np.allclose(stds.sort_index(), df.groupby("key")["value"].std().sort_index())


def test_map_groups_gets_whole_groups(rt, table):
    def summarize(g):
        return {"key": [g["key"][0]], "n": [len(g["key"])], "top": [g["value"].max()]}

    got = rt.data.from_arrow(table).groupby("key").map_groups(summarize).to_pandas()
    df = table.to_pandas()
    want = df.groupby("key").agg(n=("value", "size"), top=("value", "max"))
    got = got.set_index("key").sort_index()
    assert got["n"].to_dict() == want["n"].to_dict()
    assert np.allclose(got["top"], want["top"].sort_index())


def test_sort_shuffle_repartition(rt, table):
    ds = rt.data.from_arrow(table)
    vals = [r["value"] for r in ds.sort("value", descending=True).take_all()]
    assert vals == sorted(table.column("value").to_pylist(), reverse=True)
    shuffled = ds.random_shuffle(seed=3)
    assert sorted_ids(shuffled.take_all()) == list(range(table.num_rows))
    assert [r["id"] for r in shuffled.take(50)] != list(range(50))
    assert ds.repartition(4).count() == table.num_rows


def test_split_streaming_split_and_train_test_split(rt):
    ds = rt.data.range(1000)
    parts = ds.split(3, equal=True)
    assert [p.count() for p in parts] == [333, 333, 333]
    shards = ds.streaming_split(2, equal=True)
    import threading

    got = [None, None]

    def consume(i):
        got[i] = [int(x) for b in shards[i].iter_batches(batch_format="numpy") for x in b["id"]]

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got[0]) == len(got[1]) == 500
    assert sorted(got[0] + got[1]) == list(range(1000))
    train, test = ds.train_test_split(0.2, shuffle=True, seed=1)
    assert (train.count(), test.count()) == (800, 200)
    assert sorted_ids(train.take_all() + test.take_all()) == list(range(1000))


def test_iterators_take_and_conversions(rt, table):
    ds = rt.data.from_arrow(table)
    sizes = [len(b["id"]) for b in ds.iter_batches(batch_size=3000)]
    assert sum(sizes) == table.num_rows and max(sizes) == 3000
    assert sum(1 for _ in ds.limit(100).iter_rows()) == 100
    assert ds.take(2) == table.slice(0, 2).to_pylist()
    batch = ds.take_batch(5, batch_format="pandas")
    assert isinstance(batch, pd.DataFrame) and len(batch) == 5
    assert ds.to_pandas().shape == (table.num_rows, 3)
    refs = ds.to_arrow_refs()
    assert sum(rt.get(r).num_rows for r in refs) == table.num_rows
    m = ds.materialize()
    assert m.count() == table.num_rows
    assert "FromRefs" in m.explain()
    assert "Dataset(schema={id: int64" in repr(ds)
    assert "<pre>" in ds._repr_html_()


def test_explain_and_stats(rt, parquet_dir):
    ds = rt.data.read_parquet(parquet_dir).filter(expr="id < 100").select_columns(["id"])
    plan = ds.explain()
    assert "filter=" in plan and "columns=[id]" in plan
    assert ds.count() == 100
    assert "rows" in ds.stats()


def test_csv_and_json_round_trip(rt, tmp_path, table):
    ds = rt.data.from_arrow(table.slice(0, 1000))
    ds.write_csv(str(tmp_path / "csv"))
    ds.write_json(str(tmp_path / "json"))
    assert sorted_ids(rt.data.read_csv(str(tmp_path / "csv")).take_all()) == list(range(1000))
    assert sorted_ids(rt.data.read_json(str(tmp_path / "json")).take_all()) == list(range(1000))


def test_udf_errors_raise_the_users_exception_naming_the_operator(rt):
    class BadRow(ValueError):
        pass

    def explode(batch):
        raise BadRow("row 3 is bad")

    with pytest.raises(BadRow) as info:
        rt.data.range(10).map_batches(explode).take_all()
    assert isinstance(info.value, exceptions.TaskError)
    text = str(info.value)
    assert "row 3 is bad" in text and "in explode" in text
    assert text.count("Traceback (most recent call last)") == 1


def test_many_small_batches_each_get_their_own_call_in_order(rt):
    # The node sends a task's small batches to the worker in groups (one round trip for
    # many calls); each call still sees its own batch of batch_size rows.
    def ids_of(batch):
        return pa.table({"ids": [batch["id"].to_pylist()]})

    calls = [
        r["ids"]
        for r in rt.data.range(10_000, override_num_blocks=3)
        .map_batches(ids_of, batch_format="pyarrow", batch_size=7)
        .take_all()
    ]
    assert sorted(i for ids in calls for i in ids) == list(range(10_000))
    # Only a task's last batch may be short.
    assert sum(len(ids) != 7 for ids in calls) <= 3
    assert len(calls) <= 10_000 // 7 + 3


def test_grouped_calls_around_the_group_bounds_and_empty_batches(rt):
    # 1,000-row batches fill a group (64 Ki rows) at the 66th: 200 batches cross the bound
    # three times; each call still gets its 1,000 rows, every id once.
    def ids_of(batch):
        return pa.table({"ids": [batch["id"].to_pylist()]})

    calls = [
        r["ids"]
        for r in rt.data.range(200_000, override_num_blocks=1)
        .map_batches(ids_of, batch_format="pyarrow", batch_size=1000)
        .take_all()
    ]
    assert sorted(i for ids in calls for i in ids) == list(range(200_000))
    assert sum(len(ids) != 1000 for ids in calls) <= 1
    # A batch alone past the group's byte bound (16 MiB of int64) is one call.
    big = rt.data.range(2_000_000, override_num_blocks=1).map_batches(
        lambda b: pa.table({"n": [b.num_rows]}), batch_format="pyarrow", batch_size=2_000_000
    )
    assert [r["n"] for r in big.take_all()] == [2_000_000]
    # An empty block is no call (as Ray's batcher skips empty blocks).
    blocks = [pa.table({"id": pa.array(ids, pa.int64())}) for ids in ([], [1, 2], [])]
    ds = rt.data.from_arrow(blocks)
    assert ds.map_batches(ids_of, batch_format="pyarrow").take_all() == [{"ids": [1, 2]}]
    # Small batches in the numpy and pandas formats through a group.
    for fmt in ("numpy", "pandas"):
        sizes = [
            r["n"]
            for r in rt.data.range(100, override_num_blocks=1)
            .map_batches(lambda b: {"n": [len(b["id"])]}, batch_format=fmt, batch_size=3)
            .take_all()
        ]
        assert sorted(sizes) == [1] + [3] * 33, (fmt, sizes)


def test_a_udf_whose_output_schema_changes_between_calls_is_named(rt):
    def flip(batch):
        first = batch["id"][0].as_py()
        return pa.table({"x": [first] if first % 20 else [str(first)]})

    with pytest.raises(Exception, match="flip") as info:
        rt.data.range(100).map_batches(flip, batch_format="pyarrow", batch_size=10).take_all()
    assert "schema" in str(info.value)


def test_bad_input_errors_name_the_file(rt, tmp_path):
    with pytest.raises(exceptions.VolleyNotFoundError):
        rt.data.read_parquet(str(tmp_path / "missing"))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(exceptions.VolleyDataError, match="bad.parquet"):
        rt.data.read_parquet(str(bad)).count()


def _mapping_finder():
    """A function telling the file mapped at an address of its process ("" for anonymous
    memory); made here so that it is pickled by value into workers."""

    def mapping_of(address):
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                lo, hi = (int(v, 16) for v in parts[0].split("-"))
                if lo <= address < hi:
                    return parts[-1] if len(parts) >= 6 else ""
        return ""

    return mapping_of


def test_a_100_mib_batch_reaches_the_udf_without_a_copy(rt):
    n = 100 * (1 << 20) // 8
    table = pa.table({"x": pa.array(np.arange(n, dtype=np.int64))})

    mapping_of = _mapping_finder()

    def where(batch):
        addr = batch.column("x").chunk(0).buffers()[1].address
        return pa.table({"mapping": [mapping_of(addr)], "rows": [batch.num_rows]})

    rows = rt.data.from_arrow(table).map_batches(where, batch_format="pyarrow").take_all()
    assert sum(r["rows"] for r in rows) == n
    assert all(r["mapping"].startswith("/dev/shm/volley-") for r in rows), rows


def test_a_worker_s_batches_share_one_reused_shared_memory_file(rt):
    # Each call's batch is written into the worker's argument arena, not a new segment: a
    # worker sees its batches at the same addresses of one /dev/shm file.
    mapping_of = _mapping_finder()

    def where(batch):
        address = batch.column("id").chunk(0).buffers()[1].address
        return pa.table({"mapping": [mapping_of(address)], "address": [address]})

    rows = (
        rt.data.range(200_000)
        .map_batches(where, batch_format="pyarrow", batch_size=10_000)
        .take_all()
    )
    assert len(rows) == 20
    files = {r["mapping"] for r in rows}
    assert all(f.startswith("/dev/shm/volley-") for f in files), files
    # One per worker (2 CPUs: at most 2 workers), however many calls.
    assert len(files) <= 2, files
    # The batches of one call (a group of them) lie side by side; the next call's are
    # written over them: far fewer addresses than calls.
    assert len({r["address"] for r in rows}) <= len(rows) // 2


def test_batches_a_udf_keeps_are_never_overwritten(rt):
    # A function that keeps its batches past the call must find them unchanged later: the
    # node does not rewrite memory a worker still uses.
    class Keeper:
        def __init__(self, mapping_of):
            self.kept = []
            self.mapping_of = mapping_of

        def __call__(self, batch):
            self.kept.append((batch["id"][0].as_py(), batch))
            intact = all(
                b["id"].to_pylist() == list(range(first, first + b.num_rows))
                for first, b in self.kept
            )
            address = batch.column("id").chunk(0).buffers()[1].address
            return pa.table(
                {
                    "first": [self.kept[-1][0]],
                    "intact": [intact],
                    "mapping": [self.mapping_of(address)],
                }
            )

    rows = (
        rt.data.range(200_000)
        .map_batches(
            Keeper,
            fn_constructor_args=(_mapping_finder(),),
            batch_format="pyarrow",
            batch_size=10_000,
            concurrency=1,
        )
        .take_all()
    )
    assert sorted(r["first"] for r in rows) == list(range(0, 200_000, 10_000))
    assert all(r["intact"] for r in rows), rows
    # Kept batches pin their file: each call got a fresh one.
    assert len({r["mapping"] for r in rows}) == 20


@pytest.fixture
def data_context(rt):
    """The process's DataContext, restored after the test."""
    ctx = rt.data.DataContext.get_current()
    saved = (ctx.target_max_block_size, ctx.execution_options)
    ctx.execution_options = rt.data.ExecutionOptions()
    yield ctx
    ctx.target_max_block_size, ctx.execution_options = saved


def _rows_per_call(rt, n):
    def sizes(batch):
        return {"n": np.full(len(batch["id"]), len(batch["id"]))}

    return {r["n"] for r in rt.data.range(n).map_batches(sizes, batch_size=None).take_all()}


def test_data_context_target_max_block_size_sizes_blocks(rt, data_context):
    # range(1M) (8 MB of int64) is read in fragments of at most one block: 4 by default
    # (twice the CPUs), read in batches of 65,536 rows ...
    assert max(_rows_per_call(rt, 1_000_000)) == 65_536
    # ... and 80 of 12,500 rows with 100 kB blocks.
    data_context.target_max_block_size = 100_000
    assert max(_rows_per_call(rt, 1_000_000)) == 12_500
    data_context.target_max_block_size = 0
    with pytest.raises(ValueError, match="target_max_block_size"):
        rt.data.range(10).take_all()


def test_data_context_resource_limits(rt, data_context):
    def spans(batch):
        import time

        start = time.monotonic()
        time.sleep(0.05)
        n = len(batch["id"])
        return {"start": np.full(n, start), "end": np.full(n, time.monotonic())}

    # Small blocks: the store's budget would let 4 tasks run at once (2 per CPU).
    data_context.target_max_block_size = 1 << 20
    data_context.execution_options.resource_limits = rt.data.ExecutionResources(cpu=1)
    rows = rt.data.range(8_000).repartition(8).map_batches(spans, batch_size=None).take_all()
    assert len(rows) == 8_000
    calls = sorted({(r["start"], r["end"]) for r in rows})
    assert len(calls) >= 8
    for (_, end), (start, _) in zip(calls, calls[1:]):
        assert start >= end, "two UDF calls overlapped under resource_limits.cpu=1"
    # A pipeline budget below one block still runs, a task at a time.
    data_context.execution_options.resource_limits = rt.data.ExecutionResources(
        object_store_memory=1 << 16
    )
    assert rt.data.range(100_000).map_batches(spans).count() == 100_000
    # Limits Volley does not enforce say so.
    data_context.execution_options.resource_limits = rt.data.ExecutionResources(gpu=1)
    with pytest.warns(UserWarning, match="resource_limits.gpu is not enforced"):
        assert rt.data.range(10).count() == 10


def test_whole_dataset_aggregates_match_pandas(rt, table):
    df = table.to_pandas()
    ds = rt.data.from_arrow(table)
    assert ds.sum("id") == df["id"].sum()
    assert ds.min("value") == df["value"].min() and ds.max("value") == df["value"].max()
    assert ds.mean("value") == pytest.approx(df["value"].mean())
    assert ds.std("value") == pytest.approx(df["value"].std())
    both = ds.sum(["id", "value"])
    assert both["sum(id)"] == df["id"].sum()
    assert both["sum(value)"] == pytest.approx(df["value"].sum())


@pytest.mark.parametrize(
    "join_type, how",
    [("inner", "inner"), ("left_outer", "left"), ("right_outer", "right"), ("full_outer", "outer")],
)
def test_join_matches_pandas_merge(rt, table, join_type, how):
    left = table.select(["id", "key"])
    right = pa.table(
        {
            "id": np.arange(10_000, 30_000, dtype=np.int64),
            "key": [f"r{i % 5}" for i in range(20_000)],
            "score": np.arange(20_000, dtype=np.float64),
        }
    )
    got = (
        rt.data.from_arrow(left)
        .join(rt.data.from_arrow(right), join_type, num_partitions=4, on=("id",))
        .to_pandas()
    )
    want = left.to_pandas().merge(right.to_pandas(), on="id", how=how, suffixes=("", "_1"))
    assert list(got.columns) == ["id", "key", "key_1", "score"]
    got = got.sort_values("id").reset_index(drop=True)
    want = want[["id", "key", "key_1", "score"]].sort_values("id").reset_index(drop=True)
    assert len(got) == len(want)
    assert got["id"].tolist() == want["id"].tolist()
    assert got["key"].fillna("-").tolist() == want["key"].fillna("-").tolist()
    assert got["key_1"].fillna("-").tolist() == want["key_1"].fillna("-").tolist()
    assert np.allclose(got["score"].fillna(-1.0), want["score"].fillna(-1.0))
    with pytest.raises(exceptions.VolleyError, match="is not a column of the right"):
        rt.data.from_arrow(left).join(
            rt.data.from_arrow(right), "inner", on=("id",), right_on=("nope",)
        )
