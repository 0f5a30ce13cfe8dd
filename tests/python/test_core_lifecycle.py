"""Lifecycle: shutdown and a killed driver leave no processes and no segments behind.
(Its own module: it starts and stops runtimes itself.)"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
from conftest import children, shm_segments, wait_until


def test_shutdown_and_a_killed_driver_leave_nothing_behind(tmp_path):
    script = textwrap.dedent(
        """
        import os, sys, time
        import volley
        volley.init(num_cpus=2)

        @volley.remote
        def pid():
            return os.getpid()

        pids = volley.get([pid.remote() for _ in range(4)])
        big = volley.put(bytes(1 << 20) * 4)
        @volley.remote
        def size(b):
            return len(b)
        assert volley.get(size.remote(big)) == 4 << 20
        print(" ".join(map(str, sorted(set(pids)))), flush=True)
        if sys.argv[1] == "kill":
            time.sleep(60)
        volley.shutdown()
        """
    )
    path = tmp_path / "driver.py"
    path.write_text(script)
    before = shm_segments()
    for mode in ("shutdown", "kill"):
        p = subprocess.Popen([sys.executable, str(path), mode], stdout=subprocess.PIPE, text=True)
        pids = [int(x) for x in p.stdout.readline().split()]
        assert pids, "the driver ran its tasks"
        if mode == "kill":
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        # The workers notice their node is gone and exit.
        assert wait_until(
            lambda pids=pids: not any(os.path.exists(f"/proc/{q}") for q in pids), 20
        ), mode
        if mode == "shutdown":
            assert shm_segments() - before == set()
    # A killed driver cannot unlink its segments; the next init sweeps them.
    import volley

    volley.init(num_cpus=1)
    volley.shutdown()
    assert shm_segments() - before == set(), "segments of the killed driver were not swept"
    assert children(os.getpid()) == []


def test_volley_microbenchmark_reports_rays_metric_names():
    # The console script: `volley microbenchmark` measures the Python API, `--rust` the core.
    volley = shutil.which("volley", path=os.path.dirname(sys.executable))
    assert volley, "the volley console script is not installed"
    for extra, name in [
        ([], "1_1_actor_calls_sync"),
        (["--rust"], "single_client_tasks_async"),
    ]:
        out = subprocess.run(
            [volley, "microbenchmark", *extra, "--filter", name, "--duration", "0.1"]
            + ["--trials", "2"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        lines = [line for line in out.stdout.splitlines() if line.startswith(name + " ")]
        assert len(lines) == 1, out.stdout
        words = lines[0].split()
        assert words[1:3] == ["per", "second"] and float(words[3]) > 0, lines[0]


_PIPELINE_DRIVER = """
import os, sys, time
import pyarrow.compute as pc
import volley
volley.init(num_cpus=2)
held = [volley.put(bytes(1 << 20) * 2) for _ in range(3)]

def double(t):
    return t.set_column(0, "id", pc.multiply(t.column("id"), 2))

@volley.remote
def pid():
    return os.getpid()

pids = sorted(set(volley.get([pid.remote() for _ in range(4)])))
first = True
while True:
    ds = volley.data.range(400_000).map_batches(double, batch_format="pyarrow")
    assert ds.sum("id") == 2 * sum(range(400_000))
    if first:
        print(" ".join(map(str, pids)), flush=True)
        first = False
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_driver_killed_mid_pipeline_leaves_no_segment_and_no_worker(tmp_path, sig):
    import volley

    path = tmp_path / "driver.py"
    path.write_text(_PIPELINE_DRIVER)
    before = shm_segments()
    p = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    pids = [int(x) for x in p.stdout.readline().split()]
    assert pids, "the driver ran its tasks and a pipeline"
    assert shm_segments() - before, "the driver holds segments while it runs"
    p.send_signal(sig)
    code = p.wait(timeout=60)
    if sig == signal.SIGTERM:
        assert code == 128 + signal.SIGTERM, "SIGTERM is a clean shutdown, then exit 143"
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{q}") for q in pids), 20)
    if sig != signal.SIGKILL:
        # Shut down cleanly: nothing of the session is left, at once.
        assert shm_segments() - before == set(), sig
    # After SIGKILL the next init on the machine sweeps the dead session's segments.
    volley.init(num_cpus=1)
    volley.shutdown()
    assert shm_segments() - before == set(), sig


def test_sigterm_calls_a_handler_the_user_installed(tmp_path):
    script = textwrap.dedent(
        """
        import signal, sys, time
        import volley
        seen = []
        signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))
        volley.init(num_cpus=1)
        ref = volley.put(bytes(1 << 20))
        print("ready", flush=True)
        deadline = time.time() + 30
        while not seen and time.time() < deadline:
            time.sleep(0.05)
        # The user's handler ran and the runtime is still there.
        print(len(volley.get(ref)), seen == [signal.SIGTERM], flush=True)
        """
    )
    path = tmp_path / "user_handler.py"
    path.write_text(script)
    p = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    assert p.stdout.readline().split() == [str(1 << 20), "True"]
    assert p.wait(timeout=60) == 0


@pytest.fixture
def small_shm(tmp_path):
    """A 16 MiB tmpfs as the shared-memory directory (the suite runs as root, as CI does)."""
    d = tmp_path / "shm"
    d.mkdir()
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(d)], capture_output=True, text=True
    )
    assert out.returncode == 0, f"mounting a tmpfs (this test needs root): {out.stderr}"
    yield d
    subprocess.run(["umount", str(d)], check=False)


def test_a_full_shm_directory_is_a_clear_error_and_the_runtime_keeps_serving(small_shm):
    script = textwrap.dedent(
        """
        import numpy as np
        import volley
        volley.init(num_cpus=1, object_store_memory=256 << 20)
        @volley.remote
        def total(a):
            return int(a.sum())

        big = volley.put(np.ones(64 << 20, dtype=np.uint8))
        try:
            # The worker maps its argument: the object needs a segment, which cannot fit.
            print("task:", volley.get(total.remote(big)))
        except Exception as e:
            print("task:", type(e).__name__, str(e).replace("\\n", " "))
        del big
        print("then:", volley.get(total.remote(volley.put(np.arange(1000)))))
        def udf(t):
            return t
        rows = volley.data.range(3_000_000).map_batches(udf, batch_format="pyarrow").count()
        print("pipeline:", rows)
        volley.shutdown()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "VOLLEY_SHM_DIR": str(small_shm)},
    )
    assert out.returncode == 0, out.stderr
    # init says the budget cannot fit there.
    assert "larger than the free space" in out.stderr and str(small_shm) in out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    # An object larger than the directory: a clear error naming it and the size, no crash.
    task = lines["task"]
    assert task.startswith("VolleyIOError") and "No space left on device" in task, lines
    assert str(small_shm) in task and re.search(r"\((\d+) bytes\)", task), lines
    assert int(re.search(r"\((\d+) bytes\)", task).group(1)) >= 64 << 20
    assert lines["then"] == str(sum(range(1000)))
    assert lines["pipeline"] == "3000000"
    assert list(small_shm.iterdir()) == []


_KERNEL_CELL = """
import os
import volley
volley.init(num_cpus=2, ignore_reinit_error=True)
held = volley.put(bytes(4 << 20))

def double(t):
    return t

n = volley.data.range(300_000).map_batches(double, batch_format="pyarrow").count()

@volley.remote
def pid():
    return os.getpid()

print("kernel", os.getpid(), n, *sorted(set(volley.get([pid.remote() for _ in range(4)]))))
"""


def _run_cell(kc, code: str) -> str:
    out = []
    reply = kc.execute_interactive(
        code,
        timeout=120,
        output_hook=lambda msg: out.append(msg["content"].get("text", "")),
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out)


@pytest.mark.parametrize("now", [False, True], ids=["graceful", "killed"])
def test_a_jupyter_kernel_restart_leaves_nothing_behind(now):
    from jupyter_client import KernelManager

    before = shm_segments()
    km = KernelManager(kernel_name="python3")
    km.start_kernel()
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        first = _run_cell(kc, _KERNEL_CELL).split()
        assert first[0] == "kernel" and first[2] == "300000", first
        old_pids = [int(p) for p in first[1:2] + first[3:]]
        # A restart: a graceful shutdown of the kernel, or (now=True) a kill.
        km.restart_kernel(now=now)
        kc.wait_for_ready(timeout=60)
        assert wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in old_pids), 20)
        if not now:
            assert shm_segments() - before == set(), "the old kernel left segments"
        # The new kernel's init sweeps what a killed one left.
        second = _run_cell(kc, _KERNEL_CELL).split()
        new_pids = [int(p) for p in second[1:2] + second[3:]]
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=False)
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in new_pids), 20)
    assert shm_segments() - before == set(), "segments outlived the kernels"
