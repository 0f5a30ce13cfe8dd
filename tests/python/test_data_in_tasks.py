"""Datasets inside tasks and actors (issue 19): a task or an actor in a worker process builds
and runs ``volley.data`` pipelines through its node, which holds its datasets and runs them;
a dataset built in the driver can be passed to a task or an actor."""

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import volley
import volley.data


def _write_parts(tmp_path, parts=3, rows=400):
    src = tmp_path / "src"
    src.mkdir()
    for p in range(parts):
        ids = list(range(p * rows, (p + 1) * rows))
        t = pa.table({"id": ids, "value": [i * 0.5 for i in ids], "text": [f"r{i}" for i in ids]})
        pq.write_table(t, src / f"part-{p}.parquet")
    return src, parts * rows


def _keep_even_and_double(batch):
    keep = batch["id"] % 2 == 0
    return {"id": batch["id"][keep], "value": batch["value"][keep] * 2, "text": batch["text"][keep]}


@volley.remote
def pipeline_in_a_task(src, dst):
    import volley.data

    ds = volley.data.read_parquet(src).map_batches(_keep_even_and_double)
    ds.write_parquet(dst)
    return os.getpid(), ds.count()


def test_a_read_map_write_pipeline_runs_inside_a_task(rt, tmp_path):
    src, rows = _write_parts(tmp_path)
    dst = tmp_path / "out"
    pid, counted = volley.get(pipeline_in_a_task.remote(str(src), str(dst)), timeout=120)
    assert pid != os.getpid()
    assert counted == rows // 2
    out = pq.read_table(dst).sort_by("id")
    assert out.column("id").to_pylist() == list(range(0, rows, 2))
    assert out.column("value").to_pylist() == [float(i) for i in range(0, rows, 2)]
    assert out.column("text").to_pylist() == [f"r{i}" for i in range(0, rows, 2)]


@volley.remote
class Analyst:
    def summary(self):
        import volley.data

        ds = volley.data.from_items([{"k": i % 3, "v": i} for i in range(30)])
        by_key = ds.groupby("k").sum("v").sort("k").take_all()
        return os.getpid(), [(r["k"], r["sum(v)"]) for r in by_key]

    def count_big(self, ds):
        return ds.filter(expr="id >= 900").count()

    def doubled(self, ds):
        return [r["id"] for r in ds.map_batches(lambda b: {"id": b["id"] * 2}).take_all()]


def test_a_dataset_runs_inside_an_actor(rt):
    a = Analyst.remote()
    pid, sums = volley.get(a.summary.remote(), timeout=120)
    assert pid != os.getpid()
    assert sums == [(k, sum(i for i in range(30) if i % 3 == k)) for k in range(3)]
    volley.kill(a)


def test_a_dataset_built_in_the_driver_is_passed_to_an_actor_and_a_task(rt):
    ds = volley.data.range(1000).map_batches(lambda b: {"id": b["id"] + 0})
    a = Analyst.remote()
    assert volley.get(a.count_big.remote(ds), timeout=120) == 100
    small = volley.data.range(5)
    assert volley.get(a.doubled.remote(small), timeout=120) == [0, 2, 4, 6, 8]

    @volley.remote
    def rows(ds):
        return ds.take_all()

    # The driver's handle can go: the task's copy keeps the dataset.
    ref = rows.remote(volley.data.from_items([{"x": 1}, {"x": 2}]))
    assert volley.get(ref, timeout=120) == [{"x": 1}, {"x": 2}]
    volley.kill(a)


def test_a_task_holding_every_cpu_runs_a_pipeline_that_needs_cpus(rt):
    # The task's CPUs go back to the node while its pipeline runs (its waits are `get`s):
    # without that, the pipeline's map tasks would wait for them forever.
    @volley.remote(num_cpus=2)
    def greedy():
        import volley.data

        return (
            volley.data.range(2000, override_num_blocks=8)
            .map_batches(lambda b: {"id": b["id"] * 3})
            .sum("id")
        )

    assert volley.get(greedy.remote(), timeout=120) == 3 * sum(range(2000))


def test_datasets_combine_materialize_and_split_inside_a_task(rt):
    @volley.remote
    def combine():
        import volley.data

        a = volley.data.range(10)
        b = volley.data.from_items([{"id": i, "sq": i * i} for i in range(10)])
        m = a.union(volley.data.range(3)).materialize()
        parts = volley.data.range(10).split(2)
        train, test = volley.data.range(10).train_test_split(0.3)
        joined = a.join(b, "inner", on=("id",)).sort("id").take_all()
        mapped = a.map_batches(lambda batch: batch)
        before = mapped.stats()
        mapped.take_all()
        return (
            m.count(),
            m.count(),
            [p.count() for p in parts],
            (train.count(), test.count()),
            [r["sq"] for r in joined],
            a.zip(volley.data.range(10).select_columns(["id"]).rename_columns({"id": "id2"})).take(
                2
            ),
            a.schema().names,
            "Range" in a.explain() or "range" in a.explain().lower(),
            (before, "MapBatches" in mapped.stats()),
        )

    out = volley.get(combine.remote(), timeout=120)
    assert out[0] == out[1] == 13
    assert out[2] == [5, 5]
    assert out[3] == (7, 3)
    assert out[4] == [i * i for i in range(10)]
    assert out[5] == [{"id": 0, "id2": 0}, {"id": 1, "id2": 1}]
    assert out[6] == ["id"]
    assert out[7]
    assert out[8] == ("(not executed yet)", True)


@volley.remote
class Trainer:
    def consume(self, shard, batch_size):
        sizes, ids = [], []
        for batch in shard.iter_batches(batch_size=batch_size):
            sizes.append(len(batch["id"]))
            ids.extend(int(i) for i in batch["id"])
        return sizes, ids


def test_a_task_splits_a_dataset_and_feeds_two_actors(rt):
    @volley.remote
    def coordinator():
        import volley.data

        shards = volley.data.range(1000, override_num_blocks=5).streaming_split(2, equal=True)
        actors = [Trainer.remote(), Trainer.remote()]
        return volley.get([a.consume.remote(s, 32) for a, s in zip(actors, shards)])

    outs = volley.get(coordinator.remote(), timeout=120)
    for sizes, ids in outs:
        assert len(ids) == 500
        assert all(n == 32 for n in sizes[:-1]) and 0 < sizes[-1] <= 32, sizes
    assert sorted(outs[0][1] + outs[1][1]) == list(range(1000))


def test_iterating_inside_a_task_honours_batch_size(rt):
    @volley.remote
    def sizes():
        import volley.data

        ds = volley.data.range(100, override_num_blocks=3)
        return [len(b["id"]) for b in ds.iter_batches(batch_size=32)], [
            r["id"] for r in ds.iter_rows()
        ]

    got, rows = volley.get(sizes.remote(), timeout=120)
    assert got == [32, 32, 32, 4]
    assert sorted(rows) == list(range(100))


def test_a_udf_error_inside_a_task_s_pipeline_reaches_the_driver(rt):
    def broken(batch):
        raise ZeroDivisionError("bad batch from the user's udf")

    @volley.remote(max_retries=0)
    def run():
        import volley.data

        return volley.data.range(10).map_batches(broken).take_all()

    with pytest.raises(Exception) as info:
        volley.get(run.remote(), timeout=120)
    text = str(info.value)
    assert "bad batch from the user's udf" in text
    assert "broken" in text  # the user's own frame


def test_a_bad_column_inside_a_task_names_the_column(rt):
    @volley.remote(max_retries=0)
    def run():
        import volley.data

        return volley.data.range(10).select_columns(["nope"]).count()

    with pytest.raises(Exception, match="nope"):
        volley.get(run.remote(), timeout=120)


def test_tasks_holding_every_cpu_read_their_shards(rt):
    # Two 1-CPU tasks hold both CPUs while they wait for their shards: the CPUs go back to
    # the node while they wait, or the pipeline feeding the shards could never run.
    @volley.remote(num_cpus=1)
    def consume(shard):
        return sorted(int(i) for b in shard.iter_batches(batch_size=50) for i in b["id"])

    shards = (
        volley.data.range(600, override_num_blocks=6)
        .map_batches(lambda b: {"id": b["id"] + 1})
        .streaming_split(2, equal=True)
    )
    a, b = volley.get([consume.remote(s) for s in shards], timeout=120)
    assert sorted(a + b) == list(range(1, 601))
