"""Behaviour tier: actors (ordering, threaded, async, named, kill, restart)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from conftest import wait_until
from volley import exceptions


def test_calls_run_in_order_with_state(rt):
    @rt.remote
    class Counter:
        def __init__(self, start):
            self.n = start
            self.log = []

        def add(self, k):
            self.n += k
            self.log.append(k)
            return self.n

        def history(self):
            return self.log

    c = Counter.remote(100)
    refs = [c.add.remote(i) for i in range(50)]
    assert rt.get(refs)[-1] == 100 + sum(range(50))
    assert rt.get(c.history.remote()) == list(range(50))


def test_threaded_actor_runs_calls_concurrently(rt):
    @rt.remote(max_concurrency=3)
    class Meeting:
        def __init__(self):
            self.barrier = threading.Barrier(3, timeout=20)

        def meet(self):
            # Only completes if three calls run at the same time.
            return self.barrier.wait() >= 0

    m = Meeting.remote()
    assert rt.get([m.meet.remote() for _ in range(3)], timeout=60) == [True] * 3


def test_async_actor_interleaves_coroutines(rt):
    import asyncio

    @rt.remote
    class Async:
        def __init__(self):
            self.event = None

        async def wait_for_go(self):
            if self.event is None:
                self.event = asyncio.Event()
            await asyncio.wait_for(self.event.wait(), 20)
            return "released"

        async def go(self):
            if self.event is None:
                self.event = asyncio.Event()
            self.event.set()
            return "set"

    a = Async.remote()
    waiting = a.wait_for_go.remote()
    time.sleep(0.2)
    assert rt.get(a.go.remote(), timeout=30) == "set"
    assert rt.get(waiting, timeout=30) == "released"


def test_named_actors_and_handles_passed_to_tasks(rt):
    @rt.remote
    class Store:
        def __init__(self):
            self.d = {}

        def set(self, k, v):
            self.d[k] = v

        def get(self, k):
            return self.d.get(k)

    s = Store.options(name="kv").remote()
    rt.get(s.set.remote("a", 1))
    same = rt.get_actor("kv")
    assert rt.get(same.get.remote("a")) == 1
    with pytest.raises(ValueError):
        rt.get_actor("no-such-actor")

    @rt.remote
    def use(handle):
        rt.get(handle.set.remote("b", 2))
        return rt.get(handle.get.remote("b"))

    assert rt.get(use.remote(s)) == 2


def test_killed_actor_raises_actor_died(rt):
    @rt.remote
    class Victim:
        def pid(self):
            return os.getpid()

    v = Victim.remote()
    pid = rt.get(v.pid.remote())
    rt.kill(v)
    with pytest.raises(exceptions.ActorDiedError):
        rt.get(v.pid.remote())
    # Its worker process is gone (killed and reaped).
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10)


def test_actor_restarts_after_its_worker_is_killed(rt):
    @rt.remote(max_restarts=1)
    class Phoenix:
        def __init__(self):
            self.calls = 0

        def pid(self):
            self.calls += 1
            return os.getpid(), self.calls

    p = Phoenix.remote()
    pid, calls = rt.get(p.pid.remote())
    assert calls == 1
    os.kill(pid, signal.SIGKILL)
    # A call sent to the dead worker is lost with it (ActorDiedError, as in Ray without
    # max_task_retries); the next ones go to the new instance.
    deadline = time.monotonic() + 30
    lost = 0
    while True:
        try:
            new_pid, calls = rt.get(p.pid.remote(), timeout=30)
            if new_pid != pid:
                break
        except exceptions.ActorDiedError:
            lost += 1
        assert time.monotonic() < deadline
    assert lost <= 1
    assert calls == 1, "state was rebuilt by the constructor"
    # Out of restarts: the next death is final.
    os.kill(new_pid, signal.SIGKILL)
    with pytest.raises(exceptions.VolleyError):
        rt.get(p.pid.remote(), timeout=30)
    with pytest.raises(exceptions.ActorDiedError):
        rt.get(p.pid.remote(), timeout=30)


def test_pipelined_calls_keep_order_and_errors_stay_with_their_call(rt):
    @rt.remote
    class Picky:
        def __init__(self):
            self.seen = []

        def take(self, i):
            if i % 7 == 3:
                raise ValueError(f"no {i}")
            self.seen.append(i)
            return i * 10

        def seen_so_far(self):
            return self.seen

    a = Picky.remote()
    refs = [a.take.remote(i) for i in range(500)]
    for i, r in enumerate(refs):
        if i % 7 == 3:
            with pytest.raises(ValueError, match=f"no {i}"):
                rt.get(r)
        else:
            assert rt.get(r) == i * 10
    assert rt.get(a.seen_so_far.remote()) == [i for i in range(500) if i % 7 != 3]


def test_calls_lost_with_a_dead_worker_are_retried_in_order(rt, tmp_path):
    marker = tmp_path / "died-once"

    @rt.remote(max_restarts=1, max_task_retries=-1)
    class Fragile:
        def __init__(self):
            self.log = []

        def step(self, i):
            if i == 40 and not marker.exists():
                marker.write_text("x")
                os._exit(1)
            self.log.append(i)
            return i

        def log_(self):
            return self.log

    f = Fragile.remote()
    # Calls 41.. were sent ahead to the worker that died at 40: all run again, in order.
    refs = [f.step.remote(i) for i in range(200)]
    assert rt.get(refs, timeout=60) == list(range(200))
    assert marker.exists()
    assert rt.get(f.log_.remote()) == list(range(40, 200)), "the new instance ran 40.. in order"


def test_calls_lost_with_a_dead_worker_fail_without_retries(rt, tmp_path):
    @rt.remote
    class Doomed:
        def step(self, i):
            if i == 10:
                os._exit(1)
            return i

    d = Doomed.remote()
    refs = [d.step.remote(i) for i in range(100)]
    assert rt.get(refs[:10]) == list(range(10))
    for r in refs[10:]:
        with pytest.raises(exceptions.ActorDiedError):
            rt.get(r, timeout=30)


def test_constructor_error_kills_the_actor(rt):
    @rt.remote
    class Broken:
        def __init__(self):
            raise ValueError("no config")

        def ping(self):
            return 1

    b = Broken.remote()
    with pytest.raises(exceptions.ActorDiedError, match="no config"):
        rt.get(b.ping.remote(), timeout=30)


def test_actor_methods_with_several_returns(rt):
    @rt.remote
    class Splitter:
        @rt.method(num_returns=2)
        def halves(self, xs):
            mid = len(xs) // 2
            return xs[:mid], xs[mid:]

        def pair(self):
            return 1, 2

    s = Splitter.remote()
    a, b = s.halves.remote([1, 2, 3, 4, 5])
    assert rt.get(a) == [1, 2] and rt.get(b) == [3, 4, 5]
    x, y = s.pair.options(num_returns=2).remote()
    assert rt.get([x, y]) == [1, 2]
    # The wrong number of values fails every output of that call, not the actor.
    refs = s.pair.options(num_returns=3).remote()
    for r in refs:
        with pytest.raises(exceptions.VolleyError, match="num_returns=3"):
            rt.get(r)
    assert rt.get(s.pair.remote()) == (1, 2)


def test_pipelined_calls_with_large_arguments_and_results_do_not_deadlock(rt):
    # Each call and each result is about 90 KiB and travels inline in its frame: hundreds
    # sent ahead would fill both directions of the worker's socket.
    @rt.remote
    class Echo:
        def twice(self, b):
            return b + b[:1]

    e = Echo.remote()
    payload = bytes(90 * 1024)
    refs = [e.twice.remote(payload) for _ in range(300)]
    got = rt.get(refs, timeout=120)
    assert len(got) == 300 and all(len(g) == len(payload) + 1 for g in got)
