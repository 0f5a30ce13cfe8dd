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
    with pytest.raises(ValueError, match="generator tasks"):
        rt.remote(num_returns="streaming")(g)
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
    assert wait_until(first.exists) and first.read_text() == "clean"
    with pytest.raises(exceptions.ActorDiedError):
        rt.get(a.pid.remote(), timeout=30)

    b = Leaver.remote(str(second))
    queued = [b.pid.remote() for _ in range(5)]
    b.__ray_terminate__.remote()
    assert len(set(rt.get(queued, timeout=30))) == 1  # calls sent before it still run
    assert wait_until(second.exists) and second.read_text() == "clean"
    with pytest.raises(TypeError, match="non-actor worker"):
        exit_actor()


def test_the_runtime_context_names_the_running_task(rt):
    @rt.remote
    def named():
        return rt.get_runtime_context().get_task_name()

    assert "my-task" in rt.get(named.options(name="my-task").remote())
