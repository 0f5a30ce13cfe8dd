"""Behaviour tier: every value reaches every task intact — a property-based matrix of values
(``serialization_values.py``) through every path a value takes: put→get, return→get,
return→arg, put→arg, value→arg→return, actor argument and return, a nested task, several
returns, a generator task's streamed outputs, and Data's ``from_items``→``take_all``.

Examples per path: the ``ci`` profile (fixed seed) in ``make test``, ``long`` in ``make
test-long`` (``HYPOTHESIS_PROFILE``).
"""

from __future__ import annotations

import decimal
import os
import pickle
from typing import Any

import cloudpickle
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from serialization_values import INLINE_MAX, MainPoint, Ref, same, values

settings.register_profile(
    "ci",
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def blob(value: Any) -> bytes:
    """``value`` pickled in-band (protocol 4), outside Volley's serialization: how the
    tests hand a worker the value to build or to compare with."""
    return cloudpickle.dumps(value, protocol=4)


def check(value: Any, expected: bytes) -> Any:
    """Runs in a worker: ``None`` if ``value`` is what ``expected`` holds, else the
    difference."""
    return same(pickle.loads(expected), value)


def materialize(rt: Any, value: Any) -> Any:
    """``value`` with each :class:`Ref` marker replaced by a ref to its value (a ref at the
    top is put in a list: a ref is passed as itself, never put)."""
    if isinstance(value, Ref):
        return [_materialize(rt, value)]
    return _materialize(rt, value)


def _materialize(rt: Any, value: Any) -> Any:
    if isinstance(value, Ref):
        inner = _materialize(rt, value.value)
        return rt.put(inner) if not isinstance(inner, rt.ObjectRef) else inner
    if isinstance(value, list):
        return [_materialize(rt, v) for v in value]
    if isinstance(value, tuple):
        return tuple(_materialize(rt, v) for v in value)
    if isinstance(value, dict):
        return {k: _materialize(rt, v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def tasks(rt):
    @rt.remote
    def make(b):
        return pickle.loads(b)

    @rt.remote
    def identity(v):
        return v

    @rt.remote
    def checked(v, expected):
        return check(v, expected)

    @rt.remote
    def nested(b):
        # A task inside a task: the value goes to a grandchild and comes back.
        v = pickle.loads(b)
        return check(rt.get(identity.remote(v)), b)

    @rt.remote(num_returns=3)
    def three(b):
        v = pickle.loads(b)
        return v, [v], {"v": v}

    @rt.remote
    def streamed(b):
        v = pickle.loads(b)
        yield v
        yield [v]
        yield {"v": v}

    @rt.remote
    class Echo:
        def echo(self, v):
            return v

        def check(self, v, expected):
            return check(v, expected)

    return {
        "make": make,
        "identity": identity,
        "checked": checked,
        "nested": nested,
        "three": three,
        "streamed": streamed,
        "actor": Echo.remote(),
    }


def assert_same(a: Any, b: Any) -> None:
    diff = same(a, b)
    assert diff is None, diff


examples = given(values())


@examples
def test_put_then_get(rt, value):
    v = materialize(rt, value)
    assert_same(v, rt.get(rt.put(v)))


@examples
def test_returned_then_got(rt, tasks, value):
    v = materialize(rt, value)
    assert_same(v, rt.get(tasks["make"].remote(blob(v))))


@examples
def test_returned_then_passed(rt, tasks, value):
    v = materialize(rt, value)
    b = blob(v)
    assert rt.get(tasks["checked"].remote(tasks["make"].remote(b), b)) is None


@examples
def test_put_then_passed(rt, tasks, value):
    v = materialize(rt, value)
    assert rt.get(tasks["checked"].remote(rt.put(v), blob(v))) is None


@examples
def test_passed_by_value_then_returned(rt, tasks, value):
    v = materialize(rt, value)
    assert_same(v, rt.get(tasks["identity"].remote(v)))
    assert rt.get(tasks["checked"].remote(v, blob(v))) is None


@examples
def test_actor_argument_and_return(rt, tasks, value):
    v = materialize(rt, value)
    actor = tasks["actor"]
    assert_same(v, rt.get(actor.echo.remote(v)))
    assert rt.get(actor.check.remote(v, blob(v))) is None


@examples
def test_nested_task(rt, tasks, value):
    v = materialize(rt, value)
    assert rt.get(tasks["nested"].remote(blob(v))) is None


@examples
def test_several_returns(rt, tasks, value):
    v = materialize(rt, value)
    a, b, c = tasks["three"].remote(blob(v))
    got = rt.get([a, b, c])
    assert_same((v, [v], {"v": v}), tuple(got))


@examples
def test_streamed_outputs(rt, tasks, value):
    v = materialize(rt, value)
    refs = list(tasks["streamed"].remote(blob(v)))
    assert len(refs) == 3
    assert_same((v, [v], {"v": v}), tuple(rt.get(refs)))


@given(st.lists(values().filter(lambda v: not _holds_ref(v)), min_size=1, max_size=4))
# Found by this test: pyarrow refuses an infinite decimal with a TypeError.
@example(items=[decimal.Decimal("Infinity")])
def test_from_items_then_take_all(rt, items):
    rows = [{"id": i, "item": v} for i, v in enumerate(items)]
    back = rt.data.from_items(rows).take_all()
    assert [r["id"] for r in back] == list(range(len(items)))
    for v, r in zip(items, back):
        assert_same(v, r["item"])
    # Items that are not dicts are rows {"item": value}, as in Ray.
    plain = [v for v in items if not isinstance(v, dict)]
    if plain:
        assert_same(plain, [r["item"] for r in rt.data.from_items(plain).take_all()])


def _holds_ref(v: Any) -> bool:
    if isinstance(v, Ref):
        return True
    if isinstance(v, (list, tuple)):
        return any(_holds_ref(x) for x in v)
    if isinstance(v, dict):
        return any(_holds_ref(x) for x in v.values())
    return False


@pytest.mark.parametrize("nbytes", [0, 1, INLINE_MAX - 1, INLINE_MAX, INLINE_MAX + 1, 10 << 20])
def test_arrays_at_the_inline_threshold_on_every_path(rt, tasks, nbytes):
    a = np.arange(nbytes, dtype=np.uint64).astype(np.uint8)
    b = blob(a)
    assert_same(a, rt.get(rt.put(a)))
    assert_same(a, rt.get(tasks["make"].remote(b)))
    assert_same(a, rt.get(tasks["identity"].remote(a)))
    assert rt.get(tasks["checked"].remote(tasks["make"].remote(b), b)) is None
    assert rt.get(tasks["checked"].remote(rt.put(a), b)) is None
    assert_same(a, rt.get(tasks["actor"].echo.remote(a)))


def test_the_issue_s_reproduction(rt):
    @rt.remote
    def f():
        return np.zeros(1000, dtype=np.uint8)

    got = rt.get(f.remote())
    assert got.dtype == np.uint8 and got.shape == (1000,) and not got.any()
    # Small results come back writable, as an in-band pickle gives them.
    got[0] = 1


def test_objects_from_main_keep_their_class(rt, tasks):
    p = MainPoint(3, np.ones(4))
    back = rt.get(tasks["identity"].remote(p))
    assert type(back) is MainPoint and back.x == 3 and back.data.tolist() == [1.0] * 4
