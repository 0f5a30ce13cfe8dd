"""Every Ray keyword Volley accepts is honoured or refused by name (issue 19): one test per
option. The runtime gets 4 CPUs so a placement group can reserve two and leave two."""

import os
import threading

import numpy as np
import pyarrow as pa
import pytest
import volley
from conftest import children, shm_segments
from volley.util import placement_group, placement_group_table, remove_placement_group
from volley.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    NodeLabelSchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)


@pytest.fixture(scope="module")
def rt():
    before = shm_segments()
    volley.init(
        num_cpus=4,
        resources={"accelerator_type:T4": 1},
        runtime_env={"env_vars": {"VOLLEY_TEST_JOB": "job"}},
    )
    yield volley
    volley.shutdown()
    assert children(os.getpid()) == [], "worker processes outlived shutdown"
    assert shm_segments() - before == set(), "shared-memory segments outlived shutdown"


@volley.remote
def getenv(name):
    return os.environ.get(name)


@volley.remote
def node_and_job():
    ctx = volley.get_runtime_context()
    return ctx.get_node_id(), ctx.get_job_id()


@volley.remote
class Env:
    def get(self, name):
        return os.environ.get(name)

    def child(self, name):
        return volley.get(getenv.remote(name))


# ---- runtime_env --------------------------------------------------------------------------


def test_runtime_env_env_vars_per_task_and_job(rt):
    assert volley.get(getenv.remote("VOLLEY_TEST_JOB")) == "job"
    task = getenv.options(runtime_env={"env_vars": {"VOLLEY_TEST_X": "1"}})
    assert volley.get(task.remote("VOLLEY_TEST_X")) == "1"
    # The worker is reused: the next task without the variable does not see it.
    assert volley.get([getenv.remote("VOLLEY_TEST_X") for _ in range(4)]) == [None] * 4
    # A task's own value wins over the job's.
    over = getenv.options(runtime_env={"env_vars": {"VOLLEY_TEST_JOB": "task"}})
    assert volley.get(over.remote("VOLLEY_TEST_JOB")) == "task"
    assert "VOLLEY_TEST_X" not in os.environ and os.environ.get("VOLLEY_TEST_JOB") is None


def test_runtime_env_env_vars_of_an_actor_reach_its_child_tasks(rt):
    a = Env.options(runtime_env={"env_vars": {"VOLLEY_TEST_A": "actor"}}).remote()
    assert volley.get(a.get.remote("VOLLEY_TEST_A")) == "actor"
    assert volley.get(a.get.remote("VOLLEY_TEST_JOB")) == "job"
    assert volley.get(a.child.remote("VOLLEY_TEST_A")) == "actor"  # inherited, as in Ray
    volley.kill(a)


def test_runtime_env_other_fields_are_refused_by_name(rt):
    with pytest.raises(NotImplementedError, match="runtime_env\\['pip'\\]"):
        getenv.options(runtime_env={"pip": ["requests"]})
    with pytest.raises(NotImplementedError, match="working_dir"):
        Env.options(runtime_env={"working_dir": "."})
    with pytest.raises(TypeError, match="Dict\\[str, str\\]"):
        getenv.options(runtime_env={"env_vars": {"A": 1}})


# ---- scheduling_strategy and placement groups --------------------------------------------


def test_scheduling_strategy_strings(rt):
    assert (
        volley.get(getenv.options(scheduling_strategy="SPREAD").remote("VOLLEY_TEST_JOB")) == "job"
    )
    assert (
        volley.get(getenv.options(scheduling_strategy="DEFAULT").remote("VOLLEY_TEST_JOB")) == "job"
    )
    with pytest.raises(ValueError, match="Invalid scheduling_strategy"):
        getenv.options(scheduling_strategy="PACK")


def test_node_affinity_to_this_node_other_node_and_soft(rt):
    node_id = volley.get_runtime_context().get_node_id()
    here = NodeAffinitySchedulingStrategy(node_id, soft=False)
    assert volley.get(getenv.options(scheduling_strategy=here).remote("VOLLEY_TEST_JOB")) == "job"
    elsewhere = NodeAffinitySchedulingStrategy("00000000000000ab", soft=False)
    with pytest.raises(volley.exceptions.VolleyError, match="00000000000000ab"):
        volley.get(getenv.options(scheduling_strategy=elsewhere).remote("x"))
    soft = NodeAffinitySchedulingStrategy("00000000000000ab", soft=True)
    assert volley.get(getenv.options(scheduling_strategy=soft).remote("VOLLEY_TEST_JOB")) == "job"


def test_node_label_strategy_is_refused(rt):
    with pytest.raises(NotImplementedError, match="NodeLabelSchedulingStrategy"):
        getenv.options(scheduling_strategy=NodeLabelSchedulingStrategy({"zone": "a"}))


def test_placement_group_reserves_and_runs_tasks_and_actors_in_its_bundles(rt):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    assert volley.get(pg.ready(), timeout=30) == pg
    assert pg.wait(5) and placement_group_table(pg)["state"] == "CREATED"
    assert volley.available_resources()["CPU"] == 2.0  # two of four reserved
    in_pg = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=1)
    assert volley.get(getenv.options(scheduling_strategy=in_pg).remote("VOLLEY_TEST_JOB")) == "job"
    actor = Env.options(
        num_cpus=1, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)
    ).remote()
    assert volley.get(actor.get.remote("VOLLEY_TEST_JOB")) == "job"
    # The actor holds bundle 0; a task asking bundle 0 for a CPU waits, bundle 1 runs it.
    waiting = getenv.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote(
        "x"
    )
    ready, _ = volley.wait([waiting], timeout=0.5)
    assert ready == []
    volley.kill(actor)
    assert volley.get(waiting, timeout=30) is None
    with pytest.raises(ValueError, match="placement_group_bundle_index"):
        getenv.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 2))
    remove_placement_group(pg)
    assert placement_group_table(pg)["state"] == "REMOVED"
    assert volley.available_resources()["CPU"] == 4.0


def test_placement_group_checks_its_arguments(rt):
    with pytest.raises(ValueError, match="Invalid placement group strategy"):
        placement_group([{"CPU": 1}], strategy="TIGHT")
    with pytest.raises(ValueError, match="empty"):
        placement_group([{}])
    with pytest.raises(NotImplementedError, match="name"):
        placement_group([{"CPU": 1}], name="g")


def test_infeasible_placement_group_stays_pending(rt):
    pg = placement_group([{"CPU": 8}])
    ready, _ = volley.wait([pg.ready()], timeout=0.5)
    assert ready == [] and not pg.wait(0.1)
    assert placement_group_table(pg)["state"] == "PENDING"
    remove_placement_group(pg)


# ---- resources on every remote form -------------------------------------------------------


def test_accelerator_type_needs_a_node_that_has_it(rt):
    assert volley.get(getenv.options(accelerator_type="T4").remote("VOLLEY_TEST_JOB")) == "job"
    with pytest.raises(volley.exceptions.VolleyError, match="accelerator_type:A100"):
        volley.get(getenv.options(accelerator_type="A100").remote("x"))


def test_actor_memory_and_resources_are_held_for_its_life(rt):
    total = volley.cluster_resources()["memory"]
    a = Env.options(memory=1 << 30, resources={"accelerator_type:T4": 0.5}).remote()
    volley.get(a.get.remote("x"))
    free = volley.available_resources()
    assert free["memory"] == total - (1 << 30)
    assert free["accelerator_type:T4"] == 0.5
    volley.kill(a)
    with pytest.raises(volley.exceptions.VolleyError, match="memory"):
        Env.options(memory=int(total) * 2).remote()


def test_max_calls_is_refused_unless_zero(rt):
    assert volley.get(getenv.options(max_calls=0).remote("VOLLEY_TEST_JOB")) == "job"
    with pytest.raises(NotImplementedError, match="max_calls"):
        getenv.options(max_calls=1)


def test_actor_method_options_and_concurrency_groups(rt):
    a = Env.remote()
    assert volley.get(a.get.options(num_returns=1).remote("VOLLEY_TEST_JOB")) == "job"
    with pytest.raises(NotImplementedError, match="concurrency_group"):
        a.get.options(concurrency_group="io")
    with pytest.raises(NotImplementedError, match="concurrency_group"):
        volley.method(concurrency_group="io")
    volley.kill(a)


def test_put_owner_is_refused(rt):
    with pytest.raises(NotImplementedError, match="_owner"):
        volley.put(1, _owner=Env.remote())
    assert volley.get(volley.put(1, _owner=None)) == 1


# ---- init and the runtime context ---------------------------------------------------------


def test_node_and_job_ids_are_the_nodes(rt):
    node_id, job_id = volley.get(node_and_job.remote())
    ctx = volley.get_runtime_context()
    assert (ctx.get_node_id(), ctx.get_job_id()) == (node_id, job_id)
    assert job_id == "01000000" and len(node_id) == 16 and node_id != "local"
    assert [n["NodeID"] for n in volley.nodes()] == [node_id]


def test_init_refuses_what_it_does_not_do(rt):
    with pytest.raises(RuntimeError, match="Unknown keyword argument\\(s\\): _no_such"):
        volley.init(ignore_reinit_error=True, _no_such=1)
    with pytest.raises(NotImplementedError, match="local_mode"):
        volley.init(ignore_reinit_error=True, local_mode=True)
    with pytest.raises(NotImplementedError, match="log_to_driver"):
        volley.init(ignore_reinit_error=True, log_to_driver=False)
    with pytest.raises(NotImplementedError, match="runtime_env\\['conda'\\]"):
        volley.init(ignore_reinit_error=True, runtime_env={"conda": "env"})
    with pytest.warns(UserWarning, match="dashboard"):
        volley.init(ignore_reinit_error=True, include_dashboard=True)
    # Options left at their defaults pass.
    volley.init(ignore_reinit_error=True, local_mode=False, job_config=None)


def test_init_system_config_takes_the_keys_it_honours_and_refuses_the_rest(rt):
    # Honoured keys are checked in test_core_worker_pool.py (their own runtime).
    with pytest.raises(NotImplementedError, match="'object_spilling_config'"):
        volley.init(ignore_reinit_error=True, _system_config={"object_spilling_config": "{}"})
    with pytest.raises(ValueError, match="num_workers_soft_limit"):
        volley.init(ignore_reinit_error=True, _system_config={"num_workers_soft_limit": -1})
    with pytest.raises(TypeError, match="_system_config must be a dict"):
        volley.init(ignore_reinit_error=True, _system_config=[("a", 1)])


def test_init_logging_level_configures_the_volley_logger(rt):
    import logging

    volley.init(ignore_reinit_error=True, logging_level="WARNING")
    assert logging.getLogger("volley").level == logging.INFO  # already initialised: no-op
    volley.shutdown()
    try:
        volley.init(num_cpus=1, logging_level="WARNING")
        assert logging.getLogger("volley").level == logging.WARNING
    finally:
        volley.shutdown()
        logging.getLogger("volley").setLevel(logging.INFO)
        volley.init(
            num_cpus=4,
            resources={"accelerator_type:T4": 1},
            runtime_env={"env_vars": {"VOLLEY_TEST_JOB": "job"}},
        )


# ---- Volley Data --------------------------------------------------------------------------


def test_take_all_and_to_pandas_limit_raise_past_it(rt):
    ds = volley.data.range(10)
    assert len(ds.take_all(limit=10)) == 10 and len(ds.to_pandas(limit=12)) == 10
    with pytest.raises(ValueError, match="more than the given limit of 9 records"):
        ds.take_all(limit=9)
    with pytest.raises(ValueError, match="more than the given limit of 3 rows"):
        ds.to_pandas(limit=3)


def test_override_num_blocks(rt):
    ds = volley.data.range(100, override_num_blocks=7)
    assert len(ds.to_arrow_refs()) == 7 and ds.count() == 100
    with pytest.raises(ValueError, match="override_num_blocks"):
        volley.data.range(10, override_num_blocks=0)


def test_read_and_write_options(rt, tmp_path):
    pa_table = pa.table({"id": list(range(50)), "v": [float(i) for i in range(50)]})
    import pyarrow.parquet as pq

    pq.write_table(pa_table, tmp_path / "in.parquet")
    ds = volley.data.read_parquet(
        str(tmp_path / "in.parquet"), columns=["v"], override_num_blocks=3
    )
    assert ds.columns() == ["v"] and len(ds.to_arrow_refs()) == 3
    with pytest.raises(NotImplementedError, match="read_parquet\\(filesystem=...\\)"):
        volley.data.read_parquet(str(tmp_path / "in.parquet"), filesystem=None)
    with pytest.raises(NotImplementedError, match="write_parquet\\(filesystem=...\\)"):
        ds.write_parquet(str(tmp_path / "out"), filesystem=None)
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_repartition_shuffle(rt):
    ds = volley.data.range(1000)
    ordered = [r["id"] for r in ds.repartition(4).take_all()]
    shuffled = [r["id"] for r in ds.repartition(4, shuffle=True).take_all()]
    assert sorted(ordered) == sorted(shuffled) == list(range(1000))
    assert shuffled != ordered and shuffled != list(range(1000))
    assert len(ds.repartition(4, shuffle=True).to_arrow_refs()) == 4


def test_iter_batches_prefetch_and_drop_last(rt):
    ds = volley.data.range(1000)
    before = threading.active_count()
    sizes = [len(b["id"]) for b in ds.iter_batches(batch_size=300, prefetch_batches=3)]
    assert sizes == [300, 300, 300, 100]
    ids = [int(x) for b in ds.iter_batches(batch_size=300, prefetch_batches=4) for x in b["id"]]
    assert ids == list(range(1000))
    assert [len(b["id"]) for b in ds.iter_batches(batch_size=300, drop_last=True)] == [300] * 3
    it = ds.iter_batches(batch_size=10, prefetch_batches=5)
    next(it)
    it.close()  # an abandoned iterator ends its prefetch thread
    assert threading.active_count() == before
    with pytest.raises(ValueError, match="local_shuffle_buffer_size"):
        next(iter(ds.iter_batches(local_shuffle_seed=10)))
    with pytest.raises(ValueError, match="prefetch_batches"):
        next(iter(ds.iter_batches(prefetch_batches=-1)))


def test_streaming_split_honours_batch_size(rt):
    shards = volley.data.range(1000).streaming_split(2, equal=True)
    sizes = [[], []]

    def consume(i):
        sizes[i] = [len(b["id"]) for b in shards[i].iter_batches(batch_size=32)]

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in sizes:
        assert sum(s) == 500 and all(n == 32 for n in s[:-1]) and 0 < s[-1] <= 32


def test_map_batches_zero_copy_batch_and_remote_args(rt):
    ds = volley.data.range(100)

    def writable(batch):
        return {"w": np.array([batch["id"].flags.writeable] * len(batch["id"]))}

    assert all(r["w"] for r in ds.map_batches(writable, batch_format="numpy").take_all())
    out = ds.map_batches(lambda b: b, batch_format="numpy", zero_copy_batch=True).count()
    assert out == 100
    with pytest.raises(NotImplementedError, match="map_batches\\(max_restarts=...\\)"):
        ds.map_batches(lambda b: b, max_restarts=2)
    with pytest.raises(ValueError, match="compute"):
        ds.map_batches(lambda b: b, compute=volley.data.ActorPoolStrategy(size=1))
    with pytest.raises(NotImplementedError, match="random_shuffle\\(num_blocks=...\\)"):
        ds.random_shuffle(num_blocks=3)
    # Ray 2.60's "auto" batch size is refused by name; a bad size says which argument.
    with pytest.raises(NotImplementedError, match="batch_size='auto'"):
        ds.map_batches(lambda b: b, batch_size="auto")
    for bad in (0, -3, "12", 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            ds.map_batches(lambda b: b, batch_size=bad)
    assert ds.map_batches(lambda b: b, batch_size=np.int64(30)).count() == 100
