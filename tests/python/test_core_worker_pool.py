"""The node's task worker processes (issue 19): idle workers beyond Ray's
``num_workers_soft_limit`` are stopped once idle for ``idle_worker_killing_time_threshold_ms``;
those within it stay for reuse. Both set through ``init(_system_config=...)``, as in Ray."""

import os
import time

import pytest
import volley
from conftest import children, shm_segments, wait_until


@pytest.fixture(scope="module")
def rt():
    before = shm_segments()
    volley.init(
        num_cpus=2,
        _system_config={
            "num_workers_soft_limit": 1,
            "idle_worker_killing_time_threshold_ms": 300,
            "max_direct_call_object_size": 2000,
        },
    )
    yield volley
    volley.shutdown()
    assert children(os.getpid()) == [], "worker processes outlived shutdown"
    assert shm_segments() - before == set(), "shared-memory segments outlived shutdown"


@volley.remote(num_cpus=0.5)
def slow_pid():
    time.sleep(0.5)
    return os.getpid()


def test_idle_workers_past_the_soft_limit_are_stopped_and_the_rest_reused(rt):
    pids = set(volley.get([slow_pid.remote() for _ in range(4)], timeout=60))
    assert len(pids) == 4  # four at once: four worker processes
    assert set(children(os.getpid())) >= pids
    # Idle past the threshold: all but the soft limit's one are stopped.
    assert wait_until(lambda: len(children(os.getpid())) == 1, timeout=15), children(os.getpid())
    kept = children(os.getpid())
    assert set(kept) <= pids
    time.sleep(1.0)  # the soft limit's worker is kept however long it is idle
    assert children(os.getpid()) == kept
    assert volley.get(slow_pid.remote(), timeout=60) == kept[0]  # reused, not a new one


def test_system_config_sets_the_inline_threshold(rt):
    from volley import _serialization

    assert _serialization.INLINE_MAX == 2000
