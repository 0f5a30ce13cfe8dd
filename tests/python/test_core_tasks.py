"""Behaviour tier: tasks, objects and errors through the Ray-style API."""

from __future__ import annotations

import os
import time

import numpy as np
import pyarrow as pa
import pytest
from volley import exceptions


def test_remote_functions_run_in_worker_processes(rt):
    @rt.remote
    def pid_and_square(x):
        return os.getpid(), x * x

    out = rt.get([pid_and_square.remote(i) for i in range(20)])
    assert [sq for _, sq in out] == [i * i for i in range(20)]
    pids = {p for p, _ in out}
    assert os.getpid() not in pids, "tasks must run in worker processes"
    assert len(pids) <= 2, "workers are reused (2 CPUs)"


def test_args_kwargs_refs_and_nested_refs(rt):
    @rt.remote
    def combine(a, b, *, scale=1, extra=None):
        return (a + b) * scale + sum(rt.get(extra or []))

    x = rt.put(10)
    parts = [rt.put(i) for i in range(3)]
    # A top-level ref is resolved; refs inside a list stay refs.
    assert rt.get(combine.remote(x, 5, scale=2, extra=parts)) == 30 + 3


def test_num_returns_and_options(rt):
    @rt.remote(num_returns=2)
    def two():
        return "a", "b"

    a, b = two.remote()
    assert rt.get([a, b]) == ["a", "b"]

    @rt.remote
    def one():
        return 1

    assert rt.get(one.options(name="renamed", num_cpus=0.5).remote()) == 1
    with pytest.raises(TypeError):
        one()
    with pytest.raises(ValueError, match="Invalid option keyword no_such_option"):
        one.options(no_such_option=1)
    with pytest.raises(exceptions.InfeasibleError):
        one.options(num_cpus=64).remote()


def test_tasks_submit_tasks_and_wait_inside_workers(rt):
    @rt.remote
    def leaf(i):
        return i

    @rt.remote
    def fan(n):
        refs = [leaf.remote(i) for i in range(n)]
        ready, _ = rt.wait(refs, num_returns=n, timeout=30)
        assert len(ready) == n
        return sum(rt.get(refs))

    @rt.remote
    def top():
        return rt.get([fan.remote(10), fan.remote(20)])

    # Three levels deep on 2 CPUs: blocked tasks hand their CPU back.
    assert rt.get(top.remote()) == [45, 190]


def test_put_get_wait_and_timeouts(rt):
    ref = rt.put({"k": [1, 2, 3]})
    assert rt.get(ref) == {"k": [1, 2, 3]}

    @rt.remote
    def slow(t):
        time.sleep(t)
        return t

    fast, late = slow.remote(0.0), slow.remote(5.0)
    ready, not_ready = rt.wait([fast, late], num_returns=1, timeout=10)
    assert ready == [fast] and not_ready == [late]
    with pytest.raises(exceptions.GetTimeoutError):
        rt.get(late, timeout=0.05)
    with pytest.raises(TimeoutError):
        rt.get(late, timeout=0.05)


def test_numpy_and_arrow_values_round_trip(rt):
    arr = np.arange(1_000_000, dtype=np.int64)
    table = pa.table({"x": np.arange(1000), "s": [str(i) for i in range(1000)]})

    @rt.remote
    def stats(a, t):
        return int(a.sum()), t.num_rows, t.column("s")[999].as_py()

    assert rt.get(stats.remote(arr, table)) == (int(arr.sum()), 1000, "999")

    @rt.remote
    def make():
        return pa.table({"y": [1.5, 2.5]})

    assert rt.get(make.remote()).column("y").to_pylist() == [1.5, 2.5]


def test_exceptions_are_the_users_class_with_one_traceback(rt):
    class BadInput(ValueError):
        pass

    @rt.remote
    def fails(x):
        def inner():
            raise BadInput(f"bad value {x}")

        inner()

    with pytest.raises(BadInput) as info:
        rt.get(fails.remote(7))
    err = info.value
    assert isinstance(err, exceptions.TaskError)
    assert isinstance(err, exceptions.RayTaskError)
    assert err.args == ("bad value 7",)
    text = str(err)
    assert "in inner" in text and "BadInput: bad value 7" in text
    assert text.count("Traceback (most recent call last)") == 1
    assert "_worker.py" not in text, "engine frames are not shown"


def test_a_failed_dependency_fails_its_dependents(rt):
    @rt.remote
    def boom():
        raise KeyError("missing")

    @rt.remote
    def after(x):
        return x

    with pytest.raises(KeyError):
        rt.get(after.remote(boom.remote()))


def test_retry_exceptions(rt):
    @rt.remote(max_retries=2, retry_exceptions=True)
    def flaky(path):
        n = int(open(path).read()) if os.path.exists(path) else 0
        with open(path, "w") as f:
            f.write(str(n + 1))
        if n < 2:
            raise RuntimeError(f"attempt {n}")
        return n

    path = f"/tmp/volley-flaky-{os.getpid()}"
    try:
        assert rt.get(flaky.remote(path)) == 2
    finally:
        os.remove(path)


def test_resources_and_nodes(rt):
    res = rt.cluster_resources()
    assert res["CPU"] == 2.0
    assert "object_store_memory" in res
    # As in Ray, a resource with nothing free is left out (tasks of earlier tests may hold
    # both CPUs for a moment).
    assert 0.0 <= rt.available_resources().get("CPU", 0.0) <= 2.0
    assert rt.nodes()[0]["Alive"] is True
    assert rt.is_initialized()


def test_await_an_object_ref(rt):
    import asyncio

    @rt.remote
    def seven():
        return 7

    async def main():
        return await seven.remote()

    assert asyncio.run(main()) == 7
    assert seven.remote().future().result(timeout=30) == 7


def test_get_object_locations_reports_copies_as_ray(tmp_path):
    """``ray.experimental.get_object_locations``: an object's owner says which nodes hold it
    in memory, its size and whether it spilled — in the driver and from a task; a pending
    output has no copy yet, a failed one is left out, and before ``init`` it is an error."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import json, time
        import numpy as np
        import volley
        from volley.experimental import get_local_object_locations, get_object_locations

        try:
            get_object_locations([])
            print("no error before init")
        except RuntimeError as e:
            before_init = str(e)
        volley.init(num_cpus=2, object_store_memory=48 << 20)
        node = volley.get_runtime_context().get_node_id()

        @volley.remote
        def slow():
            time.sleep(2)
            return 1

        @volley.remote
        def fails():
            raise ValueError("no")

        @volley.remote
        def where(refs):
            from volley.experimental import get_object_locations
            found = get_object_locations(refs)
            return [found.get(r) for r in refs]

        a = volley.put(np.ones(2 << 20, dtype=np.int64))  # 16 MiB
        pending, bad = slow.remote(), fails.remote()
        volley.wait([bad])
        first = get_object_locations([a, pending, bad])
        local = get_local_object_locations([a])
        from_task = volley.get(where.remote([a]))
        keep = [volley.put(np.zeros(2 << 20, dtype=np.int64)) for _ in range(3)]  # a spills
        spilled = get_object_locations([a])[a]
        assert int(volley.get(a)[0]) == 1
        print(json.dumps({
            "node": node, "before_init": before_init, "a": first[a], "local": local[a],
            "pending": first[pending], "bad_left_out": bad not in first,
            "from_task": from_task[0], "spilled": spilled,
        }))
        volley.shutdown()
        """
    )
    path = tmp_path / "driver.py"
    path.write_text(script)
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    r = json.loads(out.stdout.strip().splitlines()[-1])
    node = r["node"]
    assert r["before_init"] == "Ray hasn't been initialized."
    assert r["a"]["node_ids"] == [node] and r["a"]["did_spill"] is False
    assert (2 << 20) * 8 <= r["a"]["object_size"] < (2 << 20) * 8 + 4096
    assert r["local"] == r["a"] and r["from_task"] == r["a"]
    assert r["pending"] == {"node_ids": [], "object_size": 0, "did_spill": False}
    assert r["bad_left_out"] is True
    assert r["spilled"] == {
        "node_ids": [],
        "object_size": r["a"]["object_size"],
        "did_spill": True,
    }
