"""A Python worker killed with SIGKILL in the middle of ``map_batches`` costs a retry, not
the pipeline (issue 19): the call runs again in another worker (task pool) or in a restarted
instance (actor pool), and the output has every row, right."""

import os
import signal

import pytest
import volley


def _die_once(marker, batch):
    """SIGKILLs this worker the first time any worker sees a batch holding row 500."""
    if 500 in batch["id"] and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


def _expected():
    return [{"id": i, "double": 2 * i} for i in range(2000)]


def test_a_killed_task_pool_worker_is_retried(rt, tmp_path):
    marker = str(tmp_path / "killed")

    def double(batch):
        _die_once(marker, batch)
        return {"id": batch["id"], "double": batch["id"] * 2}

    ds = volley.data.range(2000, override_num_blocks=8).map_batches(double, batch_size=100)
    assert sorted(ds.take_all(), key=lambda r: r["id"]) == _expected()
    assert os.path.exists(marker), "no worker was killed"


def test_a_killed_actor_pool_worker_is_restarted(rt, tmp_path):
    marker = str(tmp_path / "killed")
    built = str(tmp_path / "built")

    class Double:
        def __init__(self):
            with open(built, "a") as f:
                f.write("x")

        def __call__(self, batch):
            _die_once(marker, batch)
            return {"id": batch["id"], "double": batch["id"] * 2}

    ds = volley.data.range(2000, override_num_blocks=8).map_batches(
        Double, batch_size=100, compute=volley.data.ActorPoolStrategy(size=1)
    )
    out = sorted(ds.take_all(), key=lambda r: r["id"])
    assert out == _expected()
    # The instance was constructed again in a new process after the kill.
    assert open(built).read() == "xx"


def test_a_worker_that_always_dies_fails_the_pipeline_after_its_retries(rt):
    def always(batch):
        os.kill(os.getpid(), signal.SIGKILL)

    ds = volley.data.range(10).map_batches(always)
    with pytest.raises(volley.exceptions.VolleyError, match="ran 4 times"):
        ds.take_all()
