"""Fixtures of the Python suite.

Two tiers: unit tests (``test_unit_*.py``) never start a runtime; behaviour tests use the
``rt`` fixture, a local-mode runtime with 2 CPUs shared by a module, shut down (and checked
for leftovers) at its end.
"""

from __future__ import annotations

import glob
import os
import time

import pytest
import volley

# Workers import the suite's helper modules by name, as a user's workers import the user's
# own modules: this directory is on their path (they inherit the environment).
_HERE = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)


def shm_segments() -> set:
    return set(glob.glob("/dev/shm/volley-*"))


def children(pid: int) -> list:
    """Live (non-zombie) child processes of ``pid``."""
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, ppid = fields[0], int(fields[1])
        if ppid == pid and state != "Z":
            out.append(int(stat.split("/")[2]))
    return out


def wait_until(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.fixture(scope="module")
def rt():
    before = shm_segments()
    volley.init(num_cpus=2, object_store_memory=512 << 20)
    yield volley
    volley.shutdown()
    assert children(os.getpid()) == [], "worker processes outlived shutdown"
    assert shm_segments() - before == set(), "shared-memory segments outlived shutdown"
