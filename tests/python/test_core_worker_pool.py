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


@volley.remote(num_cpus=0.1)
def wait_for_release(d):
    open(os.path.join(d, f"started-{os.getpid()}"), "w").close()
    while not os.path.exists(os.path.join(d, "release")):
        time.sleep(0.01)
    return os.getpid()


def _threads_reading_a_socket():
    """This process's threads blocked reading a Unix socket: thread id -> name."""
    reading = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/wchan") as f:
                wchan = f.read()
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if wchan.startswith("unix_stream_read"):
            reading[int(tid)] = name
    return reading


def test_python_tasks_waiting_in_their_code_hold_no_node_thread(rt, tmp_path):
    """Python tasks are scheduled once: while a task's call runs in its worker process, no
    thread of the node waits on that worker's socket (the node's I/O runtime watches it),
    so a dozen tasks waiting in their own code cost no thread each."""
    import socket
    import threading

    # The probe sees a thread blocked reading a Unix socket (so an empty answer below means
    # something).
    a, b = socket.socketpair(socket.AF_UNIX)
    reader = threading.Thread(target=a.recv, args=(1,))
    reader.start()
    assert wait_until(lambda: reader.native_id in _threads_reading_a_socket(), timeout=10)
    b.send(b"x")
    reader.join()
    a.close()
    b.close()

    n = 12
    refs = [wait_for_release.remote(str(tmp_path)) for _ in range(n)]
    started = lambda: len([f for f in os.listdir(tmp_path) if f.startswith("started-")])  # noqa: E731
    assert wait_until(lambda: started() == n, timeout=120), started()
    time.sleep(0.3)
    assert _threads_reading_a_socket() == {}
    (tmp_path / "release").touch()
    assert len(set(volley.get(refs, timeout=60))) == n
