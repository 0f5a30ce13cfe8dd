"""Behaviour tier: Ray's semantics at the edges — argument binding at the call, option and
namespace checks, oversized functions, actor class attributes, actor subclassing, kill /
get_actor / wait argument checks, named actors from tasks, and an actor's own exit."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import wait_until
from volley import exceptions


def test_wrong_arguments_raise_type_error_at_the_call(rt):
    @rt.remote
    def f(x, *, scale=1):
        return x * scale

    with pytest.raises(TypeError, match="too many positional arguments"):
        f.remote(1, 2)
    with pytest.raises(TypeError, match="missing a required argument"):
        f.remote()
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        f.remote(1, nope=2)
    assert rt.get(f.remote(2, scale=3)) == 6

    @rt.remote
    class A:
        def __init__(self, a, b=0):
            self.v = a + b

        def add(self, k):
            return self.v + k

        @staticmethod
        def static(x, y):
            return x + y

        @classmethod
        def klass(cls, x):
            return x

    with pytest.raises(TypeError):
        A.remote()
    with pytest.raises(TypeError):
        A.remote(1, 2, 3)
    a = A.remote(1, b=2)
    with pytest.raises(TypeError):
        a.add.remote()
    with pytest.raises(TypeError):
        a.add.remote(1, 2)
    with pytest.raises(TypeError):
        a.static.remote(1)
    with pytest.raises(TypeError):
        a.klass.remote(1, 2)
    assert rt.get([a.add.remote(1), a.static.remote(1, 2), a.klass.remote(5)]) == [4, 3, 5]


def test_invalid_remote_options_raise_at_once(rt):
    def g():
        return 1

    with pytest.raises(ValueError, match="cannot be negative"):
        rt.remote(num_cpus=-1)(g)
    with pytest.raises(TypeError, match="The type of keyword 'num_returns'"):
        rt.remote(num_returns=1.5)(g)
    with pytest.raises(ValueError, match="'max_retries' only accepts"):
        rt.remote(max_retries=-2)(g)
    with pytest.raises(ValueError, match="num_cpus' and 'num_gpus' keyword instead"):
        rt.remote(resources={"CPU": 1})(g)
    with pytest.raises(ValueError, match="'dynamic'"):
        rt.remote(num_returns="dynamic")(g)
    with pytest.raises(ValueError, match="Invalid option keyword max_concurrency"):
        rt.remote(max_concurrency=2)(g)
    with pytest.raises(ValueError, match="not supported by Volley yet"):
        rt.remote(retry_exceptions=[KeyError])(g)
    with pytest.raises(ValueError, match="lifetime"):
        rt.remote(lifetime="forever")(type("C", (), {}))
    with pytest.raises(ValueError, match="max_task_retries"):
        rt.remote(max_task_retries=2)(type("C", (), {}))
    with pytest.raises(ValueError, match="empty string"):
        rt.remote(name="")(type("C", (), {}))
    with pytest.raises(ValueError, match="not a valid namespace"):
        rt.remote(namespace="")(type("C", (), {}))
    with pytest.raises(TypeError, match="The type of keyword 'namespace'"):
        rt.remote(type("C", (), {})).options(namespace=3)

    @rt.remote(num_returns=0)
    def nothing():
        return None

    assert nothing.remote() is None


def test_a_huge_remote_function_gets_rays_value_error(rt, monkeypatch):
    big = np.ones(3 << 20, dtype=np.uint8)

    @rt.remote
    def captures():
        return int(big.sum())

    @rt.remote
    class Holds:
        def size(self):
            return big.size

    monkeypatch.setenv("FUNCTION_SIZE_ERROR_THRESHOLD", str(2 << 20))
    with pytest.raises(ValueError, match=r"The remote function .*captures is too large \(3 MiB"):
        captures.remote()
    with pytest.raises(ValueError, match=r"The actor .*Holds is too large"):
        Holds.remote()
    monkeypatch.delenv("FUNCTION_SIZE_ERROR_THRESHOLD")
    assert rt.get(captures.remote()) == 3 << 20


def test_actor_class_and_static_attributes_are_reachable(rt):
    class Base:
        BASE = 2

        @staticmethod
        def base_static():
            return Base.BASE

    @rt.remote
    class Actor(Base):
        X = 3

        @staticmethod
        def f():
            assert Actor.BASE == 2 and Actor.base_static() == 2
            return 4

        @classmethod
        def c(cls):
            return cls.X

        def g(self):
            assert Actor.f() == 4 and Actor.c() == 3
            return Actor.X + Actor.BASE

    assert Actor.X == 3
    assert rt.get(Actor.remote().g.remote()) == 5


def test_subclassing_an_actor_class_is_rays_error(rt):
    @rt.remote
    class Parent:
        pass

    with pytest.raises(exceptions.ActorClassInheritanceException, match="Inheriting from actor"):

        class Child(Parent):  # noqa: F841 - the class statement itself raises
            pass


def test_kill_get_actor_and_wait_check_their_arguments(rt):
    ref = rt.put(1)
    with pytest.raises(ValueError, match="only supported for actors"):
        rt.kill(ref)
    with pytest.raises(TypeError, match="as a str"):
        rt.get_actor(3)
    with pytest.raises(ValueError, match="non-empty"):
        rt.get_actor("")
    with pytest.raises(ValueError, match="not a valid namespace"):
        rt.get_actor("x", namespace="")
    with pytest.raises(TypeError, match="namespace must be None or a string"):
        rt.get_actor("x", namespace=5)
    with pytest.raises(ValueError, match="Failed to look up actor"):
        rt.get_actor("no-such-actor")

    with pytest.raises(ValueError, match="unique object refs"):
        rt.wait([ref, ref])
    with pytest.raises(ValueError, match="Invalid number of objects to return 0"):
        rt.wait([ref], num_returns=0)
    with pytest.raises(ValueError, match="num_returns cannot be greater"):
        rt.wait([ref], num_returns=2)
    with pytest.raises(TypeError, match="got list containing"):
        rt.wait([ref, 1])
    with pytest.raises(TypeError, match="got a single"):
        rt.wait(ref)
    with pytest.raises(TypeError, match="expected a list"):
        rt.wait((ref,))
    with pytest.raises(ValueError, match="nonnegative"):
        rt.wait([ref], timeout=-1)
    assert rt.wait([]) == ([], [])
    assert rt.wait([ref]) == ([ref], [])


def test_named_actors_are_found_from_tasks_and_actors_and_by_namespace(rt):
    @rt.remote
    class Box:
        def __init__(self, v):
            self.v = v

        def get(self):
            return self.v

    keep = [
        Box.options(name="box").remote("default"),
        Box.options(name="box", namespace="ns").remote("ns"),
    ]

    @rt.remote
    def lookup(namespace):
        return rt.get(rt.get_actor("box", namespace=namespace).get.remote())

    @rt.remote
    class Finder:
        def find(self):
            return rt.get(rt.get_actor("box").get.remote())

    assert rt.get(lookup.remote(None)) == "default"
    assert rt.get(lookup.remote("ns")) == "ns"
    assert rt.get(Finder.remote().find.remote()) == "default"
    assert rt.get(rt.get_actor("box", namespace="ns").get.remote()) == "ns"
    with pytest.raises(ValueError, match="in namespace 'other'"):
        rt.get_actor("box", namespace="other")
    same = Box.options(name="box", namespace="ns", get_if_exists=True).remote("new")
    assert rt.get(same.get.remote()) == "ns"
    del keep


def test_exit_actor_and_ray_terminate_run_atexit_handlers(rt, tmp_path):
    from volley.actor import exit_actor

    @rt.remote
    class Leaver:
        def __init__(self, path):
            import atexit

            atexit.register(lambda: open(path, "w").write("clean"))

        def pid(self):
            return os.getpid()

        def leave(self):
            exit_actor()

    first, second = tmp_path / "first", tmp_path / "second"
    a = Leaver.remote(str(first))
    rt.get(a.pid.remote())
    with pytest.raises(exceptions.VolleyError):
        rt.get(a.leave.remote(), timeout=30)
    # The handler creates the file, then writes it: wait for the text, not the file.
    assert wait_until(lambda: first.exists() and first.read_text() == "clean")
    with pytest.raises(exceptions.ActorDiedError):
        rt.get(a.pid.remote(), timeout=30)

    b = Leaver.remote(str(second))
    queued = [b.pid.remote() for _ in range(5)]
    b.__ray_terminate__.remote()
    assert len(set(rt.get(queued, timeout=30))) == 1  # calls sent before it still run
    assert wait_until(lambda: second.exists() and second.read_text() == "clean")
    with pytest.raises(TypeError, match="non-actor worker"):
        exit_actor()

    # An intentional exit is not a crash: a restartable actor is not restarted.
    c = Leaver.options(max_restarts=3).remote(str(tmp_path / "third"))
    rt.get(c.pid.remote())
    with pytest.raises(exceptions.VolleyError):
        rt.get(c.leave.remote(), timeout=30)
    with pytest.raises(exceptions.ActorDiedError):
        rt.get(c.pid.remote(), timeout=30)
    assert c._native.state() == (False, 0)


def test_the_runtime_context_names_the_running_task(rt):
    @rt.remote
    def named():
        return rt.get_runtime_context().get_task_name()

    assert "my-task" in rt.get(named.options(name="my-task").remote())


@pytest.fixture
def signal(rt):
    @rt.remote(num_cpus=0, max_concurrency=8)
    class Signal:
        def __init__(self):
            import threading

            self.event = threading.Event()

        def wait(self):
            return self.event.wait(60)

        def send(self):
            self.event.set()

    return Signal.remote()


@pytest.mark.parametrize("force", [False, True])
def test_cancelling_in_a_chain_fails_that_task_and_those_after_it(rt, signal, force):
    @rt.remote
    def wait_for(t):
        return rt.get(t[0])

    o1 = wait_for.remote([signal.wait.remote()])
    o2 = wait_for.remote([o1])
    o3 = wait_for.remote([o2])
    o4 = wait_for.remote([o3])
    assert rt.wait([o3], timeout=0.2)[0] == []
    rt.cancel(o3, force=force)
    for o in (o3, o4):
        with pytest.raises(exceptions.TaskCancelledError):
            rt.get(o, timeout=20)
    for o in (o1, o2):
        with pytest.raises(exceptions.GetTimeoutError):
            rt.get(o, timeout=0.1)
    signal.send.remote()
    assert rt.get([o1, o2], timeout=20) == [True, True]


@pytest.mark.parametrize("force", [False, True])
def test_a_cancelled_running_task_and_its_children_give_their_cpus_back(rt, force):
    import time

    @rt.remote
    def inner():
        while True:
            time.sleep(0.05)

    @rt.remote
    def outer():
        _ = [inner.remote()]
        while True:
            time.sleep(0.05)

    @rt.remote
    def pid():
        return os.getpid()

    before = set(rt.get([pid.remote() for _ in range(4)]))
    o = outer.remote()
    # Queues of different shapes are served round robin, not in submission order: the
    # 2-CPU task goes in once outer and inner hold the 2 CPUs.
    assert wait_until(lambda: rt.available_resources().get("CPU", 0) == 0)
    both = pid.options(num_cpus=2).remote()
    with pytest.raises(exceptions.GetTimeoutError):
        rt.get(both, timeout=1)  # outer and inner hold the 2 CPUs
    rt.cancel(o, force=force, recursive=True)
    with pytest.raises(exceptions.TaskCancelledError):
        rt.get(o, timeout=10)
    # Both running tasks were stopped in their processes: the 2-CPU task runs.
    rt.get(both, timeout=30)
    after = set(rt.get([pid.remote() for _ in range(4)]))
    if not force:
        assert before & after, "an interrupted worker goes on serving"


def test_an_actor_handle_sent_to_a_pending_task_keeps_the_actor_alive(rt):
    import gc
    import time

    @rt.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def incr(self):
            self.n += 1
            return self.n

    @rt.remote
    def use_later(handle):
        time.sleep(0.5)
        return rt.get(handle.incr.remote())

    c = Counter.remote()
    assert rt.get(c.incr.remote()) == 1
    pending = use_later.remote(c)
    del c
    gc.collect()
    assert rt.get(pending, timeout=30) == 2

    # A handle that was put and fetched back calls the same actor, and keeps it alive.
    d = Counter.remote()
    ref = rt.put(d)
    again = rt.get(ref)
    assert rt.get(d.incr.remote()) == 1
    del d, ref
    gc.collect()
    assert rt.get(again.incr.remote(), timeout=30) == 2


def test_killing_an_actor_ends_the_actors_it_created_and_frees_their_resources(rt):
    @rt.remote(num_cpus=1)
    class Child:
        def ping(self):
            return os.getpid()

    @rt.remote(num_cpus=0)
    class Parent:
        def spawn(self, n):
            self.kids = [Child.remote() for _ in range(n)]
            # Two fit on the 2 CPUs (whichever start first); the third waits for resources.
            ready, _ = rt.wait([k.ping.remote() for k in self.kids], num_returns=2, timeout=20)
            return rt.get(ready)

    @rt.remote
    def one():
        return 1

    parent = Parent.remote()
    kid_pids = rt.get(parent.spawn.remote(3), timeout=30)
    assert len(kid_pids) == 2
    with pytest.raises(exceptions.GetTimeoutError):
        rt.get(one.remote(), timeout=0.5)
    rt.kill(parent)
    assert rt.get(one.remote(), timeout=30) == 1
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in kid_pids))

    @rt.remote
    def makes_a_child():
        return rt.get(Child.remote().ping.remote(), timeout=20)

    # An actor created in a task ends with the task's handle on it.
    pid = rt.get(makes_a_child.remote(), timeout=30)
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"))
    assert wait_until(lambda: rt.available_resources().get("CPU") == 2.0)


def test_generator_tasks_stream_their_outputs_as_they_are_yielded(rt, signal):
    import time

    @rt.remote
    def counts(n, pause):
        for i in range(n):
            yield np.full(i, i, dtype=np.int16)
            time.sleep(pause)

    gen = counts.remote(4, 0.0)
    assert isinstance(gen, rt.ObjectRefGenerator)
    got = [rt.get(r) for r in gen]
    assert [a.tolist() for a in got] == [[i] * i for i in range(4)]
    assert all(a.dtype == np.int16 for a in got)

    # The first output arrives while the task still runs: it waits for a signal the test
    # sends only once it has that output.
    @rt.remote
    def first_then_wait(signal):
        yield "first"
        rt.get(signal.wait.remote(), timeout=30)
        yield "second"

    gen = first_then_wait.remote(signal)
    assert rt.get(next(gen), timeout=30) == "first"
    signal.send.remote()
    assert [rt.get(r) for r in gen] == ["second"]

    @rt.remote
    def fails_after_one():
        yield 1
        raise KeyError("late")

    gen = fails_after_one.remote()
    assert rt.get(next(gen)) == 1
    with pytest.raises(KeyError, match="late"):
        next(gen)

    @rt.remote(num_returns="streaming")
    def not_a_generator():
        return 1

    with pytest.raises(TypeError, match="must be a generator function"):
        list(not_a_generator.remote())

    @rt.remote
    def submits_a_generator():
        return list(counts.remote(1, 0.0))

    with pytest.raises(ValueError, match="not supported yet"):
        rt.get(submits_a_generator.remote())
