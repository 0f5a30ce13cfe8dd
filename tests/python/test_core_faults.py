"""Behaviour tier: worker death, and Arrow arguments and results without copies."""

from __future__ import annotations

import os
import re
import signal

import pyarrow as pa


def test_a_worker_killed_mid_task_is_retried(rt, tmp_path):
    marker = tmp_path / "attempts"

    @rt.remote(max_retries=2)
    def dies_once(path):
        attempts = int(open(path).read()) if os.path.exists(path) else 0
        with open(path, "w") as f:
            f.write(str(attempts + 1))
        if attempts == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return attempts

    assert rt.get(dies_once.remote(str(marker)), timeout=60) == 1
    assert marker.read_text() == "2"


def test_exhausted_retries_raise_worker_crashed(rt):
    from volley import exceptions

    @rt.remote(max_retries=0)
    def always_dies():
        os.kill(os.getpid(), signal.SIGKILL)

    try:
        rt.get(always_dies.remote(), timeout=60)
    except exceptions.WorkerCrashedError as e:
        assert "died" in str(e)
    else:
        raise AssertionError("expected WorkerCrashedError")


def test_a_100_mib_arrow_table_reaches_the_task_without_a_copy(rt):
    n = 100 * (1 << 20) // 8
    table = pa.table({"x": pa.array(range(n), type=pa.int64())})
    ref = rt.put(table)

    @rt.remote
    def where(t):
        addr = t.column("x").chunk(0).buffers()[1].address
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                lo, hi = (int(v, 16) for v in parts[0].split("-"))
                if lo <= addr < hi:
                    return (
                        parts[-1] if len(parts) >= 6 else "",
                        t.num_rows,
                        t.column("x")[n - 1].as_py(),
                    )
        return ("", t.num_rows, None)

    mapping, rows, last = rt.get(where.remote(ref), timeout=60)
    assert rows == n and last == n - 1
    assert mapping.startswith("/dev/shm/volley-"), f"the column was copied (it lies in {mapping!r})"


def _mapping_of(addr):
    """The file mapped at ``addr`` in this process ('' for anonymous memory)."""
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            lo, hi = (int(v, 16) for v in parts[0].split("-"))
            if lo <= addr < hi:
                return parts[5].strip() if len(parts) == 6 else ""
    return ""


def test_columns_a_result_keeps_from_its_argument_are_not_copied(rt):
    import pyarrow.compute as pc

    n = 100 * (1 << 20) // 8
    table = pa.table({"x": pa.array(range(n), type=pa.int64())})
    ref = rt.put(table)

    @rt.remote
    def add_doubled(t):
        return t.append_column("y", pc.multiply(t.column("x"), 2))

    out = rt.get(add_doubled.remote(ref), timeout=60)
    assert out.column_names == ["x", "y"] and out.num_rows == n
    assert out.column("x")[n - 1].as_py() == n - 1 and out.column("y")[n - 1].as_py() == 2 * (n - 1)
    # `x` is the very memory that was put: the worker read it from shared memory and sent a
    # reference back, which the node resolved to the object's own buffer.
    x = out.column("x").chunk(0).buffers()[1].address
    assert x == table.column("x").chunk(0).buffers()[1].address, "x was copied"
    # Only the new column `y` crossed, in a segment the worker handed over.
    y = os.path.basename(_mapping_of(out.column("y").chunk(0).buffers()[1].address))
    assert re.match(r"^volley-.+-w\d+-\d+ \(deleted\)$", y), f"y lies in {y!r}"
    del out
    assert rt.get(ref).column("x")[n - 1].as_py() == n - 1


def test_a_100_mib_arrow_result_reaches_the_driver_without_a_copy(rt):
    n = 100 * (1 << 20) // 8

    @rt.remote
    def make():
        return pa.table({"x": pa.array(range(n), type=pa.int64())})

    table = rt.get(make.remote(), timeout=60)
    assert table.num_rows == n and table.column("x")[n - 1].as_py() == n - 1
    mapping = _mapping_of(table.column("x").chunk(0).buffers()[1].address)
    # The worker wrote the result into a segment the node took over (and unlinked at once).
    assert mapping.startswith("/dev/shm/volley-") and mapping.endswith("(deleted)"), (
        f"the result was copied (it lies in {mapping!r})"
    )
    handed = re.compile(r"^volley-.+-w\d+-\d+$")
    assert not [p for p in os.listdir("/dev/shm") if handed.match(p)], "a handed-over file stayed"


def test_a_lost_python_task_output_is_rebuilt_from_its_spec(tmp_path):
    """A Python task's spec is data (its function by id, its arguments, its options): when
    its output's only copy is lost (spilled, then the spill file deleted), its owner runs it
    again from the spec; a ``put`` has no spec and stays lost."""
    import subprocess
    import sys
    import textwrap

    spill = tmp_path / "spill"
    spill.mkdir()
    script = textwrap.dedent(
        """
        import os, pathlib, sys
        import numpy as np
        import volley
        from volley import exceptions

        spill, runs = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
        volley.init(num_cpus=1, object_store_memory=48 << 20)

        @volley.remote
        def block(i):
            with open(runs, "a") as f:
                f.write(f"{i}\\n")
            return np.full(2 << 20, i, dtype=np.int64)  # 16 MiB

        put = volley.put(np.ones(2 << 20, dtype=np.int64))
        refs = [block.remote(i) for i in range(6)]
        volley.wait(refs, num_returns=6)
        for _ in range(3):
            volley.put(np.zeros(2 << 20, dtype=np.int64))  # room made by spilling
        lost = [p for p in spill.rglob("*") if p.is_file()]
        assert lost, "nothing spilled"
        for p in lost:
            p.unlink()
        before = runs.read_text().split()
        for i, r in enumerate(refs):
            a = volley.get(r)
            assert a.shape == (2 << 20,) and int(a[0]) == i and int(a[-1]) == i
        rerun = runs.read_text().split()[len(before):]
        try:
            volley.get(put)
            put_lost = False
        except exceptions.ObjectLostError:
            put_lost = True
        print(len(lost), sorted(set(rerun)) == sorted(rerun), len(rerun), put_lost, flush=True)
        volley.shutdown()
        """
    )
    path = tmp_path / "driver.py"
    path.write_text(script)
    env = dict(os.environ, VOLLEY_SPILL_URL=f"file://{spill}")
    out = subprocess.run(
        [sys.executable, str(path), str(spill), str(tmp_path / "runs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    n_lost, once_each, n_rerun, put_lost = out.stdout.split()
    assert int(n_rerun) >= 1, out.stdout
    assert once_each == "True", "each lost output's task ran again once"
    # The put, the oldest object, spilled first: it has no spec and stays lost; every
    # other lost file was a task's output, rebuilt.
    assert put_lost == "True", out.stdout
    assert int(n_lost) == int(n_rerun) + 1, out.stdout
